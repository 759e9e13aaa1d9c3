import type { DataType } from "./datatypes.js";
import { invalidArg } from "../errors.js";
import { decodeBytesElements, encodeBytesElements, type Tensor } from "./tensor.js";

/** Typed array (or strings for BYTES) holding a tensor's elements. */
export type TensorValues =
  | Uint8Array | Int8Array | Uint16Array | Int16Array | Uint32Array | Int32Array
  | BigUint64Array | BigInt64Array | Float32Array | Float64Array
  | readonly (string | Uint8Array)[];

/**
 * Makes a tensor from a typed array (viewed, not copied) or, for BYTES, from
 * strings. For in-process callers that hold data as typed arrays.
 *
 * @example
 * const t = makeTensor("INPUT0", "INT32", [1, 16], new Int32Array(16).fill(1));
 */
export function makeTensor(name: string, datatype: DataType, shape: number[], values: TensorValues): Tensor {
  if (datatype === "BYTES") {
    if (!Array.isArray(values)) throw invalidArg(`tensor '${name}': BYTES values must be an array of strings or Uint8Arrays`);
    return { name, datatype, shape, data: encodeBytesElements(values) };
  }
  if (Array.isArray(values) || !ArrayBuffer.isView(values)) throw invalidArg(`tensor '${name}': ${datatype} values must be a typed array`);
  const v = values as ArrayBufferView;
  return { name, datatype, shape, data: new Uint8Array(v.buffer, v.byteOffset, v.byteLength) };
}

/**
 * Reads a tensor's elements as the natural typed array of its datatype
 * (FP16/BF16 as raw Uint16 bits, BOOL as 0/1 bytes), or strings for BYTES.
 */
export function tensorValues(t: Tensor): TensorValues | string[] {
  const d = t.data;
  if (t.datatype === "BYTES") return decodeBytesElements(d).map((e) => Buffer.from(e.buffer, e.byteOffset, e.byteLength).toString("utf8"));
  const ctor = TYPED[t.datatype];
  const size = ctor.BYTES_PER_ELEMENT;
  // Copy when the bytes are not aligned for a view of this element size.
  const bytes = d.byteOffset % size === 0 ? d : d.slice();
  return new ctor(bytes.buffer, bytes.byteOffset, bytes.byteLength / size);
}

type TypedCtor = { new (b: ArrayBufferLike, o: number, n: number): TensorValues; BYTES_PER_ELEMENT: number };
const TYPED: Record<Exclude<DataType, "BYTES">, TypedCtor> = {
  BOOL: Uint8Array, UINT8: Uint8Array, INT8: Int8Array, UINT16: Uint16Array, INT16: Int16Array,
  UINT32: Uint32Array, INT32: Int32Array, UINT64: BigUint64Array, INT64: BigInt64Array,
  FP16: Uint16Array, BF16: Uint16Array, FP32: Float32Array, FP64: Float64Array,
} as unknown as Record<Exclude<DataType, "BYTES">, TypedCtor>;

/**
 * The elements of a non-BYTES datatype as that datatype's typed array:
 * plain numbers (or bigints) are converted, another typed array is converted
 * element by element, the right typed array is returned as it is.
 */
export function typedValues(datatype: Exclude<DataType, "BYTES">, values: TensorValues | readonly number[] | readonly bigint[]): TensorValues {
  const Ctor = TYPED[datatype] as unknown as { new (v: ArrayLike<number> | ArrayLike<bigint>): TensorValues } & TypedCtor;
  if (values instanceof (Ctor as unknown as { new (): object })) return values as TensorValues;
  const wide = datatype === "INT64" || datatype === "UINT64";
  const list = Array.from(values as ArrayLike<number | bigint>);
  return new Ctor((wide ? list.map((v) => BigInt(v)) : list.map(Number)) as never);
}

