/**
 * Triton's generate extension (`POST .../generate` and `.../generate_stream`):
 * a flat JSON object whose keys name the model's inputs (`text_input`, ...),
 * answered with a flat JSON object whose keys name its outputs
 * (`text_output`, ...). Keys that are not inputs, and the `parameters`
 * object, become request parameters.
 */
import { invalidArg } from "../../core/errors.js";
import type { InferenceRequest, InferenceResponse } from "../../core/requests/inference.js";
import type { ModelSpec } from "../../core/repository/model-spec.js";
import type { Parameters } from "../../core/tensors/tensor.js";
import { flatten, jsonToRaw, rawToJsonText } from "./json-tensor.js";

export function decodeGenerateRequest(body: Record<string, unknown>, model: string, version: string | undefined, spec: ModelSpec): InferenceRequest {
  const request: InferenceRequest = { model_name: model, model_version: version, inputs: [] };
  const parameters: Parameters = {};
  for (const [key, value] of Object.entries(body)) {
    if (key === "id") {
      if (typeof value !== "string") throw invalidArg(`'id' of the generate request for model '${model}' must be a string`);
      request.id = value;
      continue;
    }
    if (key === "parameters") {
      if (!value || typeof value !== "object" || Array.isArray(value)) throw invalidArg(`'parameters' of the generate request for model '${model}' must be an object`);
      for (const [k, v] of Object.entries(value as Record<string, unknown>)) parameters[k] = parameterValue(k, v, model);
      continue;
    }
    const input = spec.input.get(key);
    if (!input) {
      parameters[key] = parameterValue(key, value, model);
      continue;
    }
    const values = flatten(value);
    const shape = spec.maxBatchSize > 0 ? [1, values.length] : [values.length];
    request.inputs.push({ name: key, datatype: input.datatype, shape, data: jsonToRaw(values, input.datatype, `input '${key}' for model '${model}'`) });
  }
  if (Object.keys(parameters).length) request.parameters = parameters;
  return request;
}

function parameterValue(key: string, v: unknown, model: string): string | number | boolean {
  if (typeof v === "string" || typeof v === "number" || typeof v === "boolean") return v;
  throw invalidArg(`generate request for model '${model}': '${key}' is neither an input of the model nor a string, number or boolean parameter`);
}

/** One response as the generate extension's JSON: each output by name, a single element as itself. */
export function encodeGenerateResponse(res: InferenceResponse): string {
  let json = "{";
  if (res.id !== undefined) json += `"id":${JSON.stringify(res.id)},`;
  json += `"model_name":${JSON.stringify(res.model_name)},"model_version":${JSON.stringify(res.model_version)}`;
  for (const t of res.outputs) {
    const text = rawToJsonText(t.data, t.datatype);
    const single = t.shape.reduce((a, b) => a * b, 1) === 1;
    // "[x]" → "x": a one-element output is its value (text_output is a string, not a list).
    json += `,${JSON.stringify(t.name)}:${single ? text.slice(1, -1) : text}`;
  }
  return json + "}";
}
