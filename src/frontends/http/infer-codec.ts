import { elementCount, elementSize, isDataType } from "../../core/tensors/datatypes.js";
import { invalidArg } from "../../core/errors.js";
import type { InferenceRequest, InferenceResponse, RequestedOutput } from "../../core/requests/inference.js";
import type { ModelSpec } from "../../core/repository/model-spec.js";
import { isSharedMemoryTensor } from "../../core/shared-memory.js";
import type { Parameters, Tensor } from "../../core/tensors/tensor.js";
import { flatten, jsonToRaw, rawToJsonText } from "./json-tensor.js";

/** The decoded request plus what the response encoder needs to know. */
export interface DecodedInfer {
  request: InferenceRequest;
  /** Output name → send as binary. */
  binaryOutputs: Map<string, boolean>;
  /** `binary_data_output` at request level (default for outputs not listed). */
  binaryDefault: boolean;
}

type Json = Record<string, unknown>;

/**
 * Decodes `POST .../infer`: a JSON header, optionally followed by binary
 * tensor data (`Inference-Header-Content-Length` says where the JSON ends).
 * `headerLength` 0 is Triton's raw binary mode: the whole body is the data of
 * the model's only input, batch 1.
 */
export function decodeInferRequest(
  body: Buffer,
  headerLength: number | undefined,
  modelName: string,
  modelVersion: string | undefined,
  rawSpec: () => ModelSpec,
): DecodedInfer {
  if (headerLength === 0) return decodeRawBinary(body, modelName, modelVersion, rawSpec());
  if (headerLength !== undefined && (headerLength < 0 || headerLength > body.byteLength)) {
    throw invalidArg(`Inference-Header-Content-Length ${headerLength} is larger than the request body (${body.byteLength} bytes) for model '${modelName}'`);
  }
  const jsonEnd = headerLength ?? body.byteLength;
  let header: unknown;
  try {
    header = JSON.parse(body.toString("utf8", 0, jsonEnd));
  } catch (e) {
    throw invalidArg(`failed to parse the request JSON buffer: ${(e as Error).message}`);
  }
  if (!header || typeof header !== "object" || Array.isArray(header)) {
    throw invalidArg("failed to parse the request JSON buffer: the request must be a JSON object");
  }
  const h = header as Json;
  const request: InferenceRequest = { model_name: modelName, model_version: modelVersion, inputs: [] };
  if (h.id !== undefined) {
    if (typeof h.id !== "string") throw invalidArg(`'id' of the request for model '${modelName}' must be a string`);
    request.id = h.id;
  }
  const params = readParameters(h.parameters, `request for model '${modelName}'`);
  if (params) request.parameters = params;
  if (!Array.isArray(h.inputs)) throw invalidArg(`request for model '${modelName}' must have an 'inputs' array`);

  let offset = jsonEnd;
  for (const [i, raw] of h.inputs.entries()) {
    if (!raw || typeof raw !== "object") throw invalidArg(`input ${i} of the request for model '${modelName}' must be an object`);
    const t = raw as Json;
    if (typeof t.name !== "string") throw invalidArg(`input ${i} of the request for model '${modelName}' must have a string 'name'`);
    const where = `input '${t.name}' for model '${modelName}'`;
    if (!isDataType(t.datatype)) throw invalidArg(`${where} has invalid datatype '${String(t.datatype)}'`);
    if (!Array.isArray(t.shape) || !t.shape.every((d) => Number.isInteger(d) && d >= 0)) {
      throw invalidArg(`${where} must have a 'shape' of non-negative integers`);
    }
    const shape = t.shape as number[];
    const tparams = readParameters(t.parameters, where);
    const binarySize = tparams?.binary_data_size;
    let data: Uint8Array;
    const shm = tparams?.shared_memory_region !== undefined;
    if (shm) {
      // Triton's ValidateInputContentType: exactly one source of data.
      if (t.data !== undefined || binarySize !== undefined) {
        throw invalidArg(
          "Input must set only one of the following fields: 'data', 'binary_data_size' in 'parameters', 'shared_memory_region' in 'parameters'. " +
            `But set${t.data !== undefined ? " 'data'" : ""}${binarySize !== undefined ? " 'binary_data_size'" : ""} 'shared_memory_region'`,
        );
      }
      // Core reads it from the region once the model is known.
      data = new Uint8Array(0);
    } else if (binarySize !== undefined) {
      if (typeof binarySize !== "number" || !Number.isInteger(binarySize) || binarySize < 0) {
        throw invalidArg(`${where}: 'binary_data_size' must be a non-negative integer`);
      }
      if (t.data !== undefined) throw invalidArg(`${where} has both 'data' and 'binary_data_size'`);
      if (offset + binarySize > body.byteLength) {
        throw invalidArg(`${where}: binary data is truncated: expected ${binarySize} bytes, ${body.byteLength - offset} remain in the request body`);
      }
      data = body.subarray(offset, offset + binarySize);
      offset += binarySize;
    } else {
      if (t.data === undefined) throw invalidArg(`${where} has neither 'data' nor 'binary_data_size'`);
      const values = flatten(t.data);
      const expected = elementCount(shape);
      if (values.length !== expected) {
        throw invalidArg(`unexpected number of elements for ${where}: shape [${shape.join(",")}] needs ${expected}, 'data' has ${values.length}`);
      }
      data = jsonToRaw(values, t.datatype, where);
    }
    const tensor: Tensor = { name: t.name, datatype: t.datatype, shape, data };
    if (tparams) {
      delete tparams.binary_data_size;
      if (Object.keys(tparams).length) tensor.parameters = tparams;
    }
    request.inputs.push(tensor);
  }
  if (offset !== body.byteLength) {
    throw invalidArg(`request for model '${modelName}' has ${body.byteLength - offset} bytes of binary data that no input claims`);
  }

  const binaryDefault = params?.binary_data_output === true;
  const binaryOutputs = new Map<string, boolean>();
  if (h.outputs !== undefined) {
    if (!Array.isArray(h.outputs)) throw invalidArg(`'outputs' of the request for model '${modelName}' must be an array`);
    const outputs: RequestedOutput[] = [];
    for (const [i, raw] of h.outputs.entries()) {
      const o = raw as Json;
      if (!o || typeof o.name !== "string") throw invalidArg(`output ${i} of the request for model '${modelName}' must have a string 'name'`);
      const op = readParameters(o.parameters, `output '${o.name}' for model '${modelName}'`);
      const requested: RequestedOutput = { name: o.name };
      if (op?.classification !== undefined) {
        if (typeof op.classification !== "number") throw invalidArg(`output '${o.name}' for model '${modelName}': 'classification' must be an integer`);
        requested.classification = op.classification;
      }
      if (op?.shared_memory_region !== undefined && op.binary_data === true) {
        throw invalidArg("Output can't set both 'shared_memory_region' and 'binary_data'");
      }
      if (op?.binary_data !== undefined) binaryOutputs.set(o.name, op.binary_data === true);
      if (op) requested.parameters = op;
      outputs.push(requested);
    }
    if (outputs.length) request.outputs = outputs;
  }
  return { request, binaryOutputs, binaryDefault };
}

function decodeRawBinary(body: Buffer, modelName: string, modelVersion: string | undefined, spec: ModelSpec): DecodedInfer {
  if (spec.inputs.length !== 1) {
    throw invalidArg(`raw binary request (Inference-Header-Content-Length: 0) needs a model with exactly one input; model '${modelName}' has ${spec.inputs.length}`);
  }
  const input = spec.inputs[0]!;
  const dims = [...(spec.maxBatchSize > 0 ? [1] : []), ...input.dims];
  const variable = dims.filter((d) => d < 0).length;
  if (variable > 0) {
    const size = elementSize(input.datatype);
    const fixed = dims.filter((d) => d > 0).reduce((a, b) => a * b, 1);
    if (variable > 1 || size === 0 || body.byteLength % (fixed * size) !== 0) {
      throw invalidArg(`raw binary request for model '${modelName}': the shape of input '${input.name}' cannot be derived from ${body.byteLength} bytes`);
    }
    dims[dims.indexOf(-1)] = body.byteLength / (fixed * size);
  }
  return {
    request: { model_name: modelName, model_version: modelVersion, inputs: [{ name: input.name, datatype: input.datatype, shape: dims, data: body }] },
    binaryOutputs: new Map(),
    binaryDefault: true,
  };
}

function readParameters(v: unknown, where: string): Parameters | undefined {
  if (v === undefined || v === null) return undefined;
  if (typeof v !== "object" || Array.isArray(v)) throw invalidArg(`'parameters' of ${where} must be an object`);
  const out: Parameters = {};
  for (const [k, x] of Object.entries(v as Json)) {
    if (typeof x !== "string" && typeof x !== "number" && typeof x !== "boolean") {
      throw invalidArg(`parameter '${k}' of ${where} must be a string, number or boolean`);
    }
    out[k] = x;
  }
  return out;
}

/** An encoded response: the body parts and the JSON header length when binary. */
export interface EncodedInfer {
  chunks: Uint8Array[];
  /** Set when the body carries binary tensors after the JSON. */
  headerLength?: number;
}

/**
 * Encodes a response in Triton's JSON key order; outputs asked for as binary
 * carry `parameters.binary_data_size` and follow the JSON as raw bytes.
 */
export function encodeInferResponse(res: InferenceResponse, decoded: Pick<DecodedInfer, "binaryOutputs" | "binaryDefault">): EncodedInfer {
  const binary: Uint8Array[] = [];
  const outputs = res.outputs.map((t) => {
    const asBinary = decoded.binaryOutputs.get(t.name) ?? decoded.binaryDefault;
    const head = `{"name":${JSON.stringify(t.name)},"datatype":"${t.datatype}","shape":[${t.shape.join(",")}]`;
    // An output written to shared memory: no data, as Triton answers it.
    if (isSharedMemoryTensor(t)) return `${head}}`;
    if (asBinary) {
      binary.push(t.data);
      return `${head},"parameters":{"binary_data_size":${t.data.byteLength}}}`;
    }
    return `${head},"data":${rawToJsonText(t.data, t.datatype)}}`;
  });
  let json = "{";
  if (res.id !== undefined) json += `"id":${JSON.stringify(res.id)},`;
  json += `"model_name":${JSON.stringify(res.model_name)},"model_version":${JSON.stringify(res.model_version)},`;
  if (res.parameters && Object.keys(res.parameters).length) {
    json += `"parameters":${JSON.stringify(res.parameters, (_k, v) => (typeof v === "bigint" ? Number(v) : v))},`;
  }
  json += `"outputs":[${outputs.join(",")}]}`;
  const head = Buffer.from(json, "utf8");
  if (binary.length === 0) return { chunks: [head] };
  return { chunks: [head, ...binary], headerLength: head.byteLength };
}
