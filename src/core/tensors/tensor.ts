import type { DataType } from "./datatypes.js";

/** A value of a request or response parameter (Triton's parameters extension). */
export type ParameterValue = string | number | boolean | bigint;
export type Parameters = Record<string, ParameterValue>;

/**
 * A tensor as core carries it: the raw bytes of its elements, little-endian and
 * row-major, exactly as the binary tensor extension and gRPC's raw contents
 * lay them out. BYTES elements are each a 4-byte little-endian length followed
 * by the bytes. Keeping one representation means binary HTTP, gRPC and shared
 * memory need no conversion at all; only JSON is converted, at the edge.
 */
export interface Tensor {
  name: string;
  datatype: DataType;
  shape: number[];
  data: Uint8Array;
  parameters?: Parameters;
}

/** Splits serialized BYTES tensor data into its elements (views, not copies). */
export function decodeBytesElements(data: Uint8Array): Uint8Array[] {
  const out: Uint8Array[] = [];
  const view = new DataView(data.buffer, data.byteOffset, data.byteLength);
  let off = 0;
  while (off < data.byteLength) {
    if (off + 4 > data.byteLength) throw new RangeError("truncated BYTES element length");
    const len = view.getUint32(off, true);
    off += 4;
    if (off + len > data.byteLength) throw new RangeError("truncated BYTES element");
    out.push(data.subarray(off, off + len));
    off += len;
  }
  return out;
}

/** Counts BYTES elements without materializing them; -1 if the data is malformed. */
export function countBytesElements(data: Uint8Array): number {
  const view = new DataView(data.buffer, data.byteOffset, data.byteLength);
  let off = 0;
  let n = 0;
  while (off < data.byteLength) {
    if (off + 4 > data.byteLength) return -1;
    off += 4 + view.getUint32(off, true);
    if (off > data.byteLength) return -1;
    n++;
  }
  return n;
}

/** Serializes BYTES elements with their 4-byte length prefixes. */
export function encodeBytesElements(elements: readonly (Uint8Array | string)[]): Uint8Array {
  const parts = elements.map((e) => (typeof e === "string" ? Buffer.from(e, "utf8") : e));
  let total = 0;
  for (const p of parts) total += 4 + p.byteLength;
  const out = new Uint8Array(total);
  const view = new DataView(out.buffer);
  let off = 0;
  for (const p of parts) {
    view.setUint32(off, p.byteLength, true);
    out.set(p, off + 4);
    off += 4 + p.byteLength;
  }
  return out;
}

const f32 = new Float32Array(1);
const u32 = new Uint32Array(f32.buffer);

/** IEEE half → number. */
export function halfToNumber(h: number): number {
  const s = h & 0x8000 ? -1 : 1;
  const e = (h >> 10) & 0x1f;
  const m = h & 0x3ff;
  if (e === 0) return s * m * 2 ** -24;
  if (e === 31) return m ? NaN : s * Infinity;
  return s * (1 + m / 1024) * 2 ** (e - 15);
}

/** number → IEEE half, round to nearest even. */
export function numberToHalf(v: number): number {
  f32[0] = v;
  const x = u32[0]!;
  const sign = (x >>> 16) & 0x8000;
  const exp = (x >>> 23) & 0xff;
  let mant = x & 0x7fffff;
  if (exp === 0xff) return sign | 0x7c00 | (mant ? 0x200 : 0);
  let e = exp - 127 + 15;
  if (e >= 31) return sign | 0x7c00;
  if (e <= 0) {
    if (e < -10) return sign;
    mant |= 0x800000;
    const shift = 14 - e;
    let half = mant >> shift;
    const rem = mant & ((1 << shift) - 1);
    const mid = 1 << (shift - 1);
    if (rem > mid || (rem === mid && half & 1)) half++;
    return sign | half;
  }
  let half = (e << 10) | (mant >> 13);
  const rem = mant & 0x1fff;
  if (rem > 0x1000 || (rem === 0x1000 && half & 1)) half++;
  return sign | half;
}

/** bfloat16 → number. */
export function bf16ToNumber(b: number): number {
  u32[0] = b << 16;
  return f32[0]!;
}

/** number → bfloat16, round to nearest even. */
export function numberToBf16(v: number): number {
  f32[0] = v;
  const x = u32[0]!;
  if ((x & 0x7f800000) === 0x7f800000 && x & 0x7fffff) return (x >>> 16) | 0x40;
  return ((x + 0x7fff + ((x >>> 16) & 1)) >>> 16) & 0xffff;
}
