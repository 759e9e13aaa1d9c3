/**
 * Inference requests and responses in HTTP/REST form: a JSON header,
 * followed (binary tensor data extension) by the tensors' raw bytes, the
 * header's length in `Inference-Header-Content-Length`.
 */
import { InferenceServerError } from "./errors.js";
import { InferResult, type InferOutput } from "./infer-result.js";
import { decodeJson, decodeRaw, normalizeInput, rawBytes, toJsonData } from "./tensors.js";
import type { InferInput, InferOptions, Parameters, RequestedOutput, SharedMemoryRef } from "./types.js";

const encoder = new TextEncoder();
const decoder = new TextDecoder();

/** The request as it goes on the wire. */
export interface EncodedHttpRequest {
  body: Uint8Array;
  /** Bytes of JSON at the head of `body`; undefined when the body is JSON only. */
  headerLength?: number;
}

function shmParameters(ref: SharedMemoryRef): Parameters {
  return { shared_memory_region: ref.region, shared_memory_byte_size: ref.byteSize, ...(ref.offset ? { shared_memory_offset: ref.offset } : {}) };
}

/** The request-level parameters an {@link InferOptions} stands for. */
export function requestParameters(options: InferOptions): Parameters | undefined {
  const p: Parameters = { ...options.parameters };
  if (options.sequenceId !== undefined && options.sequenceId !== 0 && options.sequenceId !== "") {
    p.sequence_id = typeof options.sequenceId === "bigint" ? Number(options.sequenceId) : options.sequenceId;
    p.sequence_start = options.sequenceStart ?? false;
    p.sequence_end = options.sequenceEnd ?? false;
  }
  if (options.priority) p.priority = options.priority;
  if (options.timeout !== undefined) p.timeout = options.timeout;
  return Object.keys(p).length ? p : undefined;
}

function jsonParameters(p: Parameters): Record<string, string | number | boolean> {
  return Object.fromEntries(Object.entries(p).map(([k, v]) => [k, typeof v === "bigint" ? Number(v) : v]));
}

/**
 * Encodes an inference request. `binaryDefault` is the client's choice for
 * tensors that do not say (true: the binary extension both ways).
 */
export function encodeHttpInfer(inputs: InferInput[], options: InferOptions, binaryDefault: boolean): EncodedHttpRequest {
  const header: Record<string, unknown> = {};
  if (options.requestId !== undefined) header.id = options.requestId;
  const params = requestParameters(options);
  const tensors: Uint8Array[] = [];
  header.inputs = inputs.map((input) => {
    const entry: Record<string, unknown> = { name: input.name, shape: input.shape, datatype: input.datatype };
    const p: Parameters = { ...input.parameters };
    if (input.sharedMemory) {
      Object.assign(p, shmParameters(input.sharedMemory));
    } else {
      if (input.data === undefined) throw new InferenceServerError("INVALID_ARGUMENT", `input '${input.name}' has neither data nor a shared memory region`);
      const data = normalizeInput(input.name, input.datatype, input.shape, input.data);
      const binary = (input.binaryData ?? binaryDefault) || input.datatype === "FP16" || input.datatype === "BF16";
      if (binary) {
        const raw = rawBytes(data);
        p.binary_data_size = raw.byteLength;
        tensors.push(raw);
      } else {
        entry.data = toJsonData(input.datatype, data);
      }
    }
    if (Object.keys(p).length) entry.parameters = jsonParameters(p);
    return entry;
  });
  if (options.outputs?.length) {
    header.outputs = options.outputs.map((o: RequestedOutput) => {
      const p: Parameters = { ...o.parameters };
      if (o.sharedMemory) Object.assign(p, shmParameters(o.sharedMemory));
      else p.binary_data = o.binaryData ?? binaryDefault;
      if (o.classification !== undefined) p.classification = o.classification;
      return { name: o.name, parameters: jsonParameters(p) };
    });
  }
  // With no outputs named, one request-level switch asks for every output binary.
  const all = !options.outputs?.length && binaryDefault ? { ...params, binary_data_output: params?.binary_data_output ?? true } : params;
  if (all) header.parameters = jsonParameters(all);

  const json = encoder.encode(JSON.stringify(header));
  if (!tensors.length) return { body: json };
  const body = new Uint8Array(json.byteLength + tensors.reduce((n, t) => n + t.byteLength, 0));
  body.set(json, 0);
  let at = json.byteLength;
  for (const t of tensors) {
    body.set(t, at);
    at += t.byteLength;
  }
  return { body, headerLength: json.byteLength };
}

interface JsonOutput {
  name: string;
  datatype: string;
  shape: number[];
  parameters?: Record<string, string | number | boolean>;
  data?: unknown;
}

interface JsonResponse {
  model_name: string;
  model_version: string;
  id?: string;
  parameters?: Parameters;
  outputs?: JsonOutput[];
}

/** Decodes a response body (with its `Inference-Header-Content-Length`, if any) into an {@link InferResult}. */
export function decodeHttpInfer(body: Uint8Array, headerLength: number | undefined): InferResult {
  const jsonEnd = headerLength ?? body.byteLength;
  if (jsonEnd > body.byteLength) throw new InferenceServerError("INTERNAL", `Inference-Header-Content-Length ${jsonEnd} is beyond the body's ${body.byteLength} bytes`);
  let header: JsonResponse;
  try {
    header = JSON.parse(decoder.decode(body.subarray(0, jsonEnd))) as JsonResponse;
  } catch (e) {
    throw new InferenceServerError("INTERNAL", `the inference response is not JSON: ${(e as Error).message}`);
  }
  let at = jsonEnd;
  const outputs: InferOutput[] = (header.outputs ?? []).map((o) => {
    const { binary_data_size: size, ...rest } = o.parameters ?? {};
    let data;
    if (typeof size === "number") {
      if (at + size > body.byteLength) throw new InferenceServerError("INTERNAL", `output '${o.name}' claims ${size} bytes beyond the body's end`);
      data = decodeRaw(o.datatype, body.subarray(at, at + size));
      at += size;
    } else {
      data = o.data === undefined ? decodeRaw(o.datatype, new Uint8Array(0)) : decodeJson(o.datatype, o.data);
    }
    const out: InferOutput = { name: o.name, datatype: o.datatype, shape: o.shape, data };
    if (Object.keys(rest).length) out.parameters = rest;
    return out;
  });
  return new InferResult(header.model_name, header.model_version, outputs, header.id, header.parameters);
}
