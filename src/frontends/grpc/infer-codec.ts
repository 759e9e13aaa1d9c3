import { create } from "@bufbuild/protobuf";
import { elementSize, isDataType, type DataType } from "../../core/tensors/datatypes.js";
import { invalidArg } from "../../core/errors.js";
import { isSharedMemoryTensor } from "../../core/shared-memory.js";
import type { InferenceRequest, InferenceResponse, RequestedOutput } from "../../core/requests/inference.js";
import { decodeBytesElements, encodeBytesElements, type Parameters, type Tensor } from "../../core/tensors/tensor.js";
import {
  InferParameterSchema,
  InferTensorContentsSchema,
  ModelInferResponseSchema,
  ModelInferResponse_InferOutputTensorSchema,
  type InferParameter,
  type InferTensorContents,
  type ModelInferRequest,
  type ModelInferResponse,
} from "../../gen/inference/grpc_service_pb.js";

/**
 * Translation between gRPC's ModelInferRequest/Response and core's
 * InferenceRequest/Response. Core tensors are raw little-endian bytes, which
 * is exactly `raw_input_contents` / `raw_output_contents`: the raw path is a
 * view, not a copy. Typed `contents` are converted here, with Triton's rules
 * and messages (`InferGRPCToInput` in Triton's `infer_handler.cc`).
 */

/** How outputs are sent back. */
export type OutputContents =
  /** Always `raw_output_contents`: what Triton does, whatever the request used. */
  | "raw"
  /** Typed `contents` when the request sent typed contents and every output has a typed field; raw otherwise. */
  | "as-request";

/** A decoded request plus what the response encoder needs to know. */
export interface DecodedInfer {
  request: InferenceRequest;
  /** True when inputs came as typed `contents` (none as raw). */
  typedInput: boolean;
}

/** Request parameters that Triton interprets itself, with the oneof cases it accepts. */
const RESERVED_REQUEST_PARAMS: Record<string, readonly InferParameter["parameterChoice"]["case"][]> = {
  sequence_id: ["int64Param", "stringParam"],
  sequence_start: ["boolParam"],
  sequence_end: ["boolParam"],
  priority: ["int64Param", "uint64Param"],
  timeout: ["int64Param"],
  triton_enable_empty_final_response: ["boolParam"],
};
const TRITON_RESERVED = ["triton_enable_empty_final_response"];
const CASE_NAMES: Record<string, string> = {
  boolParam: "bool_param", int64Param: "int64_param", stringParam: "string_param", doubleParam: "double_param", uint64Param: "uint64_param",
};

export function decodeInferRequest(msg: ModelInferRequest): DecodedInfer {
  const model = msg.modelName;
  const request: InferenceRequest = { model_name: model, inputs: [] };
  if (msg.modelVersion !== "") request.model_version = msg.modelVersion;
  if (msg.id !== "") request.id = msg.id;
  const params = decodeRequestParameters(msg.parameters);
  if (params) request.parameters = params;

  const raw = msg.rawInputContents;
  let rawIndex = 0;
  let typedInput = false;
  for (const io of msg.inputs) {
    const where = `input '${io.name}' for model '${model}'`;
    if (!isDataType(io.datatype)) throw invalidArg(`${where} has invalid datatype '${io.datatype}'`);
    const datatype = io.datatype;
    const tparams = decodeParameters(io.parameters);
    let data: Uint8Array;
    if (tparams && tparams.shared_memory_region !== undefined) {
      // Core reads it from the region; it takes no raw_input_contents entry.
      if (io.contents !== undefined) {
        throw invalidArg(`unexpected 'contents' provided when using shared memory for input tensor '${io.name}' for model '${model}'`);
      }
      data = new Uint8Array(0);
    } else if (io.contents !== undefined && raw.length > 0) {
      throw invalidArg(`contents field must not be specified when using raw_input_contents for '${io.name}' for model '${model}'`);
    } else if (io.contents !== undefined) {
      data = contentsToRaw(io.contents, datatype, io.name, model);
      typedInput = true;
    } else if (rawIndex < raw.length) {
      data = raw[rawIndex++]!;
    } else {
      throw invalidArg(`unable to find data for input tensor '${io.name}' for model '${model}' in request.`);
    }
    const tensor: Tensor = { name: io.name, datatype, shape: io.shape.map(Number), data };
    if (tparams) tensor.parameters = tparams;
    request.inputs.push(tensor);
  }
  if (rawIndex < raw.length) {
    throw invalidArg(
      `request for model '${model}' has ${raw.length} raw_input_contents but only ${rawIndex} of its ${msg.inputs.length} inputs take raw data; ` +
        "raw_input_contents must hold exactly one entry per input, in order",
    );
  }

  if (msg.outputs.length > 0) {
    request.outputs = msg.outputs.map((o) => {
      const requested: RequestedOutput = { name: o.name };
      const oparams = decodeParameters(o.parameters);
      if (oparams) {
        const k = o.parameters.classification;
        if (k !== undefined) {
          if (k.parameterChoice.case !== "int64Param") {
            throw invalidArg("invalid value type for 'classification' parameter, expected int64_param.");
          }
          requested.classification = Number(k.parameterChoice.value);
        }
        requested.parameters = oparams;
      }
      return requested;
    });
  }
  return { request, typedInput };
}

/**
 * Request-level parameters. Keys Triton interprets itself must carry the
 * type it expects (its messages); other keys take any type.
 */
function decodeRequestParameters(map: { [key: string]: InferParameter }): Parameters | undefined {
  for (const [key, p] of Object.entries(map)) {
    const allowed = RESERVED_REQUEST_PARAMS[key];
    if (key.startsWith("triton_") && !TRITON_RESERVED.includes(key)) {
      throw invalidArg(
        `parameter keys starting with 'triton_' are reserved for Triton usage. Only the following keys starting with 'triton_' are allowed: ${TRITON_RESERVED.join(" ")}`,
      );
    }
    if (allowed && !allowed.includes(p.parameterChoice.case)) {
      const names = allowed.map((c) => CASE_NAMES[c!]!);
      throw invalidArg(`invalid value type for '${key}' parameter, expected ${names.join(" or ")}.`);
    }
    if (key === "priority" && p.parameterChoice.case === "int64Param" && p.parameterChoice.value < 0n) {
      throw invalidArg("invalid value for 'priority', expected value >= 0.");
    }
  }
  const params = decodeParameters(map);
  // Triton takes an int64 sequence_id as the uint64 correlation id it stands for.
  const seq = map.sequence_id?.parameterChoice;
  if (params && seq?.case === "int64Param" && seq.value < 0n) params.sequence_id = BigInt.asUintN(64, seq.value);
  return params;
}

/** InferParameter oneof → core parameter values (64-bit integers as numbers when exact). */
export function decodeParameters(map: { [key: string]: InferParameter }): Parameters | undefined {
  const keys = Object.keys(map);
  if (keys.length === 0) return undefined;
  const out: Parameters = {};
  for (const key of keys) {
    const c = map[key]!.parameterChoice;
    switch (c.case) {
      case "boolParam":
      case "stringParam":
      case "doubleParam":
        out[key] = c.value;
        break;
      case "int64Param":
      case "uint64Param":
        out[key] = c.value >= BigInt(Number.MIN_SAFE_INTEGER) && c.value <= BigInt(Number.MAX_SAFE_INTEGER) ? Number(c.value) : c.value;
        break;
      case undefined:
        throw invalidArg(`parameter '${key}' has no value (none of the InferParameter fields is set)`);
    }
  }
  return out;
}

/** Core parameter values → InferParameter oneof (integers as int64_param, other numbers as double_param). */
export function encodeParameters(params: Parameters | undefined): { [key: string]: InferParameter } {
  const out: { [key: string]: InferParameter } = {};
  if (!params) return out;
  for (const [key, v] of Object.entries(params)) {
    let choice: InferParameter["parameterChoice"];
    if (typeof v === "boolean") choice = { case: "boolParam", value: v };
    else if (typeof v === "string") choice = { case: "stringParam", value: v };
    else if (typeof v === "bigint") choice = v < 0n || v < 2n ** 63n ? { case: "int64Param", value: v } : { case: "uint64Param", value: v };
    else if (Number.isSafeInteger(v)) choice = { case: "int64Param", value: BigInt(v) };
    else choice = { case: "doubleParam", value: v };
    out[key] = create(InferParameterSchema, { parameterChoice: choice });
  }
  return out;
}

/**
 * Typed contents → raw bytes. Each non-empty field must match the input's
 * datatype (INT8/INT16 travel in `int_contents`, UINT8/UINT16 in
 * `uint_contents`, as in Triton); FP16 and BF16 have no typed field.
 */
export function contentsToRaw(c: InferTensorContents, datatype: DataType, input: string, model: string): Uint8Array {
  let data: Uint8Array | undefined;
  const take = (fieldType: DataType, make: () => Uint8Array): void => {
    if (data !== undefined && data.byteLength !== 0) {
      throw invalidArg(`unexpected explicit tensor data for input tensor '${input}' for model '${model}', binary data was already supplied.`);
    }
    if (fieldType !== datatype) {
      throw invalidArg(
        `unexpected explicit tensor data for input tensor '${input}' for model '${model}' of type '${fieldType}', expected datatype '${datatype}'`,
      );
    }
    data = make();
  };
  const u8 = (v: ArrayBufferView) => new Uint8Array(v.buffer, v.byteOffset, v.byteLength);
  if (c.boolContents.length) take("BOOL", () => Uint8Array.from(c.boolContents, (b) => (b ? 1 : 0)));
  if (c.intContents.length) {
    if (datatype === "INT8") take("INT8", () => u8(Int8Array.from(c.intContents)));
    else if (datatype === "INT16") take("INT16", () => u8(Int16Array.from(c.intContents)));
    else take("INT32", () => u8(Int32Array.from(c.intContents)));
  }
  if (c.int64Contents.length) take("INT64", () => u8(BigInt64Array.from(c.int64Contents)));
  if (c.uintContents.length) {
    if (datatype === "UINT8") take("UINT8", () => Uint8Array.from(c.uintContents));
    else if (datatype === "UINT16") take("UINT16", () => u8(Uint16Array.from(c.uintContents)));
    else take("UINT32", () => u8(Uint32Array.from(c.uintContents)));
  }
  if (c.uint64Contents.length) take("UINT64", () => u8(BigUint64Array.from(c.uint64Contents)));
  if (c.fp32Contents.length) take("FP32", () => u8(Float32Array.from(c.fp32Contents)));
  if (c.fp64Contents.length) take("FP64", () => u8(Float64Array.from(c.fp64Contents)));
  if (c.bytesContents.length) take("BYTES", () => encodeBytesElements(c.bytesContents));
  return data ?? new Uint8Array(0);
}

/** Datatypes that have a typed `contents` field. */
function hasTypedField(dt: DataType): boolean {
  return dt !== "FP16" && dt !== "BF16";
}

/** Raw bytes → typed contents (the inverse of {@link contentsToRaw}). */
export function rawToContents(data: Uint8Array, datatype: DataType): InferTensorContents {
  const c = create(InferTensorContentsSchema);
  if (datatype === "BYTES") {
    c.bytesContents = decodeBytesElements(data);
    return c;
  }
  // Typed views need aligned offsets; copy when the bytes are not aligned.
  const size = elementSize(datatype);
  const bytes = data.byteOffset % size === 0 ? data : data.slice();
  const n = bytes.byteLength / size;
  const { buffer, byteOffset } = bytes;
  switch (datatype) {
    case "BOOL": c.boolContents = Array.from(bytes, (b) => b !== 0); break;
    case "INT8": c.intContents = Array.from(new Int8Array(buffer, byteOffset, n)); break;
    case "INT16": c.intContents = Array.from(new Int16Array(buffer, byteOffset, n)); break;
    case "INT32": c.intContents = Array.from(new Int32Array(buffer, byteOffset, n)); break;
    case "INT64": c.int64Contents = Array.from(new BigInt64Array(buffer, byteOffset, n)); break;
    case "UINT8": c.uintContents = Array.from(bytes); break;
    case "UINT16": c.uintContents = Array.from(new Uint16Array(buffer, byteOffset, n)); break;
    case "UINT32": c.uintContents = Array.from(new Uint32Array(buffer, byteOffset, n)); break;
    case "UINT64": c.uint64Contents = Array.from(new BigUint64Array(buffer, byteOffset, n)); break;
    case "FP32": c.fp32Contents = Array.from(new Float32Array(buffer, byteOffset, n)); break;
    case "FP64": c.fp64Contents = Array.from(new Float64Array(buffer, byteOffset, n)); break;
    case "FP16":
    case "BF16":
      throw invalidArg(`datatype ${datatype} has no typed contents field; it travels only as raw contents`);
  }
  return c;
}

/**
 * Core response → ModelInferResponse. Outputs go as `raw_output_contents`
 * (one entry per output, in order), as Triton always sends them; with
 * `as-request`, a request that used typed contents gets typed contents back
 * when every output has a typed field.
 */
export function encodeInferResponse(res: InferenceResponse, typedInput: boolean, mode: OutputContents): ModelInferResponse {
  const typed = mode === "as-request" && typedInput && res.outputs.every((t) => hasTypedField(t.datatype));
  const out = create(ModelInferResponseSchema, {
    modelName: res.model_name,
    modelVersion: res.model_version,
    id: res.id ?? "",
    parameters: encodeParameters(res.parameters),
  });
  for (const t of res.outputs) {
    // Written to shared memory: no contents, and (as Triton) an empty raw
    // entry so raw_output_contents stays one entry per output.
    const shm = isSharedMemoryTensor(t);
    const o = create(ModelInferResponse_InferOutputTensorSchema, {
      name: t.name,
      datatype: t.datatype,
      shape: t.shape.map((d) => BigInt(d)),
      parameters: shm ? {} : encodeParameters(t.parameters),
    });
    if (shm) {
      if (!typed) out.rawOutputContents.push(new Uint8Array(0));
    } else if (typed) o.contents = rawToContents(t.data, t.datatype);
    else out.rawOutputContents.push(t.data);
    out.outputs.push(o);
  }
  return out;
}
