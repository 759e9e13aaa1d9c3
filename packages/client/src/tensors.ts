/**
 * Tensor data between the caller's arrays and the wire's bytes: raw
 * little-endian, row-major element bytes (HTTP's binary tensor extension and
 * gRPC's raw contents share the layout), BYTES elements each behind a 4-byte
 * little-endian length, BOOL one byte each.
 */
import { InferenceServerError } from "./errors.js";
import type { Datatype, OutputData, TensorData, TypedArray } from "./types.js";

type ArrayCtor = { new (length: number): TypedArray; new (buffer: ArrayBufferLike, byteOffset: number, length: number): TypedArray; BYTES_PER_ELEMENT: number };

/** The typed array each fixed-size datatype is carried in. */
const ARRAYS: Record<Exclude<Datatype, "BYTES" | "BOOL">, ArrayCtor> = {
  UINT8: Uint8Array, UINT16: Uint16Array, UINT32: Uint32Array, UINT64: BigUint64Array,
  INT8: Int8Array, INT16: Int16Array, INT32: Int32Array, INT64: BigInt64Array,
  FP16: Uint16Array, BF16: Uint16Array, FP32: Float32Array, FP64: Float64Array,
};

const encoder = new TextEncoder();
const decoder = new TextDecoder();

/** Bytes per element of a fixed-size datatype; undefined for BYTES. */
export function elementSize(datatype: Datatype): number | undefined {
  if (datatype === "BYTES") return undefined;
  if (datatype === "BOOL") return 1;
  return ARRAYS[datatype]?.BYTES_PER_ELEMENT;
}

/** Number of elements a shape holds. */
export function elementCount(shape: readonly number[]): number {
  return shape.reduce((a, b) => a * b, 1);
}

function invalid(message: string): InferenceServerError {
  return new InferenceServerError("INVALID_ARGUMENT", message);
}

function isTypedArray(v: unknown): v is TypedArray {
  return ArrayBuffer.isView(v) && !(v instanceof DataView);
}

/** A view of a typed array's bytes (no copy). */
export function bytesOf(v: ArrayBufferView): Uint8Array {
  return new Uint8Array(v.buffer, v.byteOffset, v.byteLength);
}

/** BYTES elements in the wire form: a 4-byte little-endian length before each element. */
export function serializeBytes(elements: readonly (string | Uint8Array)[]): Uint8Array {
  const parts = elements.map((e) => (typeof e === "string" ? encoder.encode(e) : e));
  const out = new Uint8Array(parts.reduce((n, p) => n + 4 + p.byteLength, 0));
  const view = new DataView(out.buffer);
  let at = 0;
  for (const p of parts) {
    view.setUint32(at, p.byteLength, true);
    out.set(p, at + 4);
    at += 4 + p.byteLength;
  }
  return out;
}

/** Splits wire-form BYTES into its elements (views into `raw`, no copies). */
export function deserializeBytes(raw: Uint8Array): Uint8Array[] {
  const view = new DataView(raw.buffer, raw.byteOffset, raw.byteLength);
  const out: Uint8Array[] = [];
  let at = 0;
  while (at < raw.byteLength) {
    if (at + 4 > raw.byteLength) throw new InferenceServerError("INTERNAL", "BYTES tensor ends inside an element's length");
    const n = view.getUint32(at, true);
    if (at + 4 + n > raw.byteLength) throw new InferenceServerError("INTERNAL", "BYTES tensor ends inside an element");
    out.push(raw.subarray(at + 4, at + 4 + n));
    at += 4 + n;
  }
  return out;
}

/** Decodes BYTES elements as UTF-8 text. */
export function bytesToStrings(elements: readonly Uint8Array[]): string[] {
  return elements.map((e) => decoder.decode(e));
}

/**
 * The caller's data as the datatype's typed array (or, for BYTES, the list
 * of elements), checked against the shape's element count.
 */
export function normalizeInput(name: string, datatype: Datatype, shape: readonly number[], data: TensorData): TypedArray | (string | Uint8Array)[] {
  const count = elementCount(shape);
  const check = (n: number) => {
    if (n !== count) throw invalid(`input '${name}' has ${n} elements, its shape [${shape.join(",")}] holds ${count}`);
  };
  if (datatype === "BYTES") {
    if (isTypedArray(data)) throw invalid(`input '${name}' is BYTES: give its elements as strings or Uint8Arrays, not one ${data.constructor.name}`);
    const elements = Array.from(data as readonly unknown[], (e) => {
      if (typeof e === "string" || e instanceof Uint8Array) return e;
      throw invalid(`input '${name}' is BYTES: elements must be strings or Uint8Arrays`);
    });
    check(elements.length);
    return elements;
  }
  if (datatype === "BOOL") {
    const bools = isTypedArray(data) ? Uint8Array.from(data as ArrayLike<number>, (b) => (b ? 1 : 0)) : Uint8Array.from(data as readonly unknown[], (b) => (b ? 1 : 0));
    check(bools.length);
    return bools;
  }
  const Ctor = ARRAYS[datatype];
  if (!Ctor) throw invalid(`input '${name}' has an unknown datatype '${datatype}'`);
  let array: TypedArray;
  if (data instanceof Ctor) array = data;
  else if ((datatype === "FP16" || datatype === "BF16") && !(data instanceof Uint16Array)) {
    throw invalid(`input '${name}' is ${datatype}: give its elements as a Uint16Array of bit patterns`);
  } else if (Ctor === BigInt64Array || Ctor === BigUint64Array) {
    array = (Ctor as typeof BigInt64Array).from(data as ArrayLike<number | bigint>, (v) => BigInt(v));
  } else {
    array = (Ctor as typeof Float64Array).from(data as ArrayLike<number>, (v) => Number(v));
  }
  check(array.length);
  return array;
}

/** The raw wire bytes of normalized input data. */
export function rawBytes(data: TypedArray | (string | Uint8Array)[]): Uint8Array {
  return Array.isArray(data) ? serializeBytes(data) : bytesOf(data);
}

/**
 * Output bytes as the datatype's array. Raw bytes that are not aligned for
 * their typed array (a binary HTTP body puts outputs back to back) are copied
 * once; aligned ones are viewed in place.
 */
export function decodeRaw(datatype: string, raw: Uint8Array): OutputData {
  if (datatype === "BYTES") return deserializeBytes(raw);
  if (datatype === "BOOL") return Array.from(raw, (b) => b !== 0);
  const Ctor = ARRAYS[datatype as keyof typeof ARRAYS];
  if (!Ctor) throw new InferenceServerError("INTERNAL", `unknown datatype '${datatype}' in the response`);
  const size = Ctor.BYTES_PER_ELEMENT;
  if (raw.byteLength % size !== 0) throw new InferenceServerError("INTERNAL", `${datatype} tensor of ${raw.byteLength} bytes is not a whole number of elements`);
  // new Uint8Array(raw) copies even when raw is a Node.js Buffer, whose slice() would not.
  const bytes = raw.byteOffset % size === 0 ? raw : new Uint8Array(raw);
  return new Ctor(bytes.buffer, bytes.byteOffset, bytes.byteLength / size);
}

/** A JSON tensor's `data` (nested or flat) as the datatype's array. */
export function decodeJson(datatype: string, data: unknown): OutputData {
  const flat = Array.isArray(data) ? (data as unknown[]).flat(Infinity) : [data];
  if (datatype === "BYTES") return flat.map((v) => encoder.encode(String(v)));
  if (datatype === "BOOL") return flat.map((v) => v === true || v === 1);
  const Ctor = ARRAYS[datatype as keyof typeof ARRAYS];
  if (!Ctor) throw new InferenceServerError("INTERNAL", `unknown datatype '${datatype}' in the response`);
  if (Ctor === BigInt64Array || Ctor === BigUint64Array) return (Ctor as typeof BigInt64Array).from(flat as number[], (v) => BigInt(v));
  return (Ctor as typeof Float64Array).from(flat as number[]);
}

/** Normalized input data as JSON `data` (HTTP without the binary extension). */
export function toJsonData(datatype: Datatype, data: TypedArray | (string | Uint8Array)[]): unknown[] {
  if (Array.isArray(data)) return data.map((e) => (typeof e === "string" ? e : decoder.decode(e)));
  if (datatype === "BOOL") return Array.from(data as Uint8Array, (b) => b !== 0);
  if (data instanceof BigInt64Array || data instanceof BigUint64Array) return Array.from(data, (v) => Number(v));
  return Array.from(data as ArrayLike<number>);
}
