/**
 * Between the generated gRPC messages and the client's shared shapes:
 * inference requests with raw input contents, responses from raw or typed
 * contents, parameters, and messages printed in the JSON form of Triton's
 * HTTP answers (proto field names, 64-bit integers as numbers).
 */
import { create, toJson, ScalarType, type DescMessage, type JsonObject, type JsonValue, type Message } from "@bufbuild/protobuf";
import { InferenceServerError } from "./errors.js";
import {
  ModelInferRequestSchema,
  type InferParameter,
  type InferTensorContents,
  type ModelInferRequest,
  type ModelInferResponse,
} from "./gen/inference/grpc_service_pb.js";
import { requestParameters } from "./http-infer-codec.js";
import { InferResult, type InferOutput } from "./infer-result.js";
import { decodeRaw, normalizeInput, rawBytes } from "./tensors.js";
import type { InferInput, InferOptions, OutputData, Parameters, SharedMemoryRef } from "./types.js";

type ParameterChoice = InferParameter["parameterChoice"];

const INT64_MAX = (1n << 63n) - 1n;

/** A parameter value as the protocol's oneof: integers as int64 (uint64 beyond its range), fractions as double. */
export function toParameter(value: string | number | boolean | bigint): { parameterChoice: ParameterChoice } {
  if (typeof value === "boolean") return { parameterChoice: { case: "boolParam", value } };
  if (typeof value === "string") return { parameterChoice: { case: "stringParam", value } };
  if (typeof value === "bigint") return { parameterChoice: value > INT64_MAX ? { case: "uint64Param", value } : { case: "int64Param", value } };
  if (Number.isInteger(value)) return { parameterChoice: { case: "int64Param", value: BigInt(value) } };
  return { parameterChoice: { case: "doubleParam", value } };
}

/** Parameters of the client's shape as the protocol's map. */
export function toParameters(p: Parameters | undefined): Record<string, { parameterChoice: ParameterChoice }> {
  return Object.fromEntries(Object.entries(p ?? {}).map(([k, v]) => [k, toParameter(v)]));
}

/** The protocol's parameter map in the client's shape (64-bit integers as numbers while they fit, bigints beyond). */
export function fromParameters(map: Record<string, InferParameter>): Parameters | undefined {
  const entries = Object.entries(map);
  if (!entries.length) return undefined;
  const out: Parameters = {};
  for (const [k, p] of entries) {
    const v = p.parameterChoice.value;
    if (v === undefined) continue;
    out[k] = typeof v === "bigint" && v <= BigInt(Number.MAX_SAFE_INTEGER) && v >= BigInt(Number.MIN_SAFE_INTEGER) ? Number(v) : v;
  }
  return out;
}

function shmParameters(ref: SharedMemoryRef): Parameters {
  return { shared_memory_region: ref.region, shared_memory_byte_size: ref.byteSize, ...(ref.offset ? { shared_memory_offset: ref.offset } : {}) };
}

/** Builds a ModelInferRequest; tensor data goes in `raw_input_contents`, the fast path. */
export function encodeGrpcInfer(model: string, inputs: InferInput[], options: InferOptions): ModelInferRequest {
  const raw: Uint8Array[] = [];
  const params = requestParameters(options);
  if (params?.sequence_id !== undefined && typeof options.sequenceId === "bigint") params.sequence_id = options.sequenceId;
  return create(ModelInferRequestSchema, {
    modelName: model,
    modelVersion: options.modelVersion ?? "",
    id: options.requestId ?? "",
    parameters: toParameters(params),
    inputs: inputs.map((input) => {
      const p: Parameters = { ...input.parameters };
      if (input.sharedMemory) Object.assign(p, shmParameters(input.sharedMemory));
      else if (input.data === undefined) throw new InferenceServerError("INVALID_ARGUMENT", `input '${input.name}' has neither data nor a shared memory region`);
      else raw.push(rawBytes(normalizeInput(input.name, input.datatype, input.shape, input.data)));
      return { name: input.name, datatype: input.datatype, shape: input.shape.map((d) => BigInt(d)), parameters: toParameters(p) };
    }),
    outputs: (options.outputs ?? []).map((o) => {
      const p: Parameters = { ...o.parameters };
      if (o.sharedMemory) Object.assign(p, shmParameters(o.sharedMemory));
      if (o.classification !== undefined) p.classification = o.classification;
      return { name: o.name, parameters: toParameters(p) };
    }),
    rawInputContents: raw,
  });
}

/** Typed `contents` (a server that does not answer raw) as the datatype's array. */
function fromContents(datatype: string, c: InferTensorContents): OutputData {
  switch (datatype) {
    case "BOOL": return [...c.boolContents];
    case "INT8": return Int8Array.from(c.intContents);
    case "INT16": return Int16Array.from(c.intContents);
    case "INT32": return Int32Array.from(c.intContents);
    case "INT64": return BigInt64Array.from(c.int64Contents);
    case "UINT8": return Uint8Array.from(c.uintContents);
    case "UINT16": return Uint16Array.from(c.uintContents);
    case "UINT32": return Uint32Array.from(c.uintContents);
    case "UINT64": return BigUint64Array.from(c.uint64Contents);
    case "FP32": return Float32Array.from(c.fp32Contents);
    case "FP64": return Float64Array.from(c.fp64Contents);
    case "BYTES": return [...c.bytesContents];
    default: throw new InferenceServerError("INTERNAL", `${datatype} output came as typed contents, which cannot carry it`);
  }
}

/** A ModelInferResponse as an {@link InferResult}. */
export function decodeGrpcInfer(res: ModelInferResponse): InferResult {
  const outputs: InferOutput[] = res.outputs.map((o, i) => {
    const raw = res.rawOutputContents[i];
    const data = raw !== undefined ? decodeRaw(o.datatype, raw) : o.contents ? fromContents(o.datatype, o.contents) : decodeRaw(o.datatype, new Uint8Array(0));
    const out: InferOutput = { name: o.name, datatype: o.datatype, shape: o.shape.map(Number), data };
    const parameters = fromParameters(o.parameters);
    if (parameters) out.parameters = parameters;
    return out;
  });
  return new InferResult(res.modelName, res.modelVersion, outputs, res.id === "" ? undefined : res.id, fromParameters(res.parameters));
}

const INT64_TYPES = new Set([ScalarType.INT64, ScalarType.UINT64, ScalarType.SINT64, ScalarType.FIXED64, ScalarType.SFIXED64]);

/**
 * A message in the JSON form of Triton's HTTP answers: proto field names,
 * every field printed (defaults too), enums by name, and 64-bit integers as
 * numbers where protobuf JSON would quote them.
 */
export function messageJson<D extends DescMessage>(desc: D, message: Message): JsonObject {
  return int64AsNumbers(desc, toJson(desc, message as never, { useProtoFieldName: true, alwaysEmitImplicit: true })) as JsonObject;
}

function int64AsNumbers(desc: DescMessage, json: JsonValue): JsonValue {
  if (json === null || typeof json !== "object" || Array.isArray(json)) return json;
  const num = (v: JsonValue): JsonValue => (typeof v === "string" && /^-?\d+$/.test(v) ? Number(v) : v);
  const out: JsonObject = {};
  for (const [key, value] of Object.entries(json)) {
    const field = desc.fields.find((f) => f.name === key);
    out[key] = value;
    if (!field || value === null) continue;
    if (field.fieldKind === "scalar" && INT64_TYPES.has(field.scalar)) out[key] = num(value);
    else if (field.fieldKind === "message") out[key] = int64AsNumbers(field.message, value);
    else if (field.fieldKind === "list" && field.listKind === "scalar" && INT64_TYPES.has(field.scalar)) out[key] = (value as JsonValue[]).map(num);
    else if (field.fieldKind === "list" && field.listKind === "message") out[key] = (value as JsonValue[]).map((v) => int64AsNumbers(field.message, v));
    else if (field.fieldKind === "map") {
      const m: JsonObject = {};
      for (const [k, v] of Object.entries(value as JsonObject)) {
        m[k] = field.mapKind === "message" ? int64AsNumbers(field.message, v) : field.mapKind === "scalar" && INT64_TYPES.has(field.scalar) ? num(v) : v;
      }
      out[key] = m;
    }
  }
  return out;
}
