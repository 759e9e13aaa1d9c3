import type { DataType } from "../tensors/datatypes.js";
import { bf16ToNumber, encodeBytesElements, halfToNumber, type Tensor } from "../tensors/tensor.js";

/**
 * Classification extension: replaces an output with its top-K classes per
 * batch item, each a BYTES element `"value:index[:label]"`. Values print as
 * C's `%f` (six decimals) for floats, as Triton's `std::to_string` does.
 */
export function classify(output: Tensor, k: number, batched: boolean, labels: readonly string[] | undefined): Tensor {
  const values = readNumbers(output.datatype, output.data);
  const batch = batched ? (output.shape[0] ?? 1) : 1;
  const perItem = batch > 0 ? values.length / batch : 0;
  const take = Math.min(k, perItem);
  const isFloat = output.datatype === "FP16" || output.datatype === "FP32" || output.datatype === "FP64" || output.datatype === "BF16";
  const elements: string[] = [];
  const idx = Array.from({ length: perItem }, (_, i) => i);
  for (let b = 0; b < batch; b++) {
    const base = b * perItem;
    const order = idx.slice().sort((i, j) => values[base + j]! - values[base + i]! || i - j);
    for (let r = 0; r < take; r++) {
      const i = order[r]!;
      const v = values[base + i]!;
      const label = labels?.[i];
      elements.push(`${isFloat ? v.toFixed(6) : String(v)}:${i}${label ? `:${label}` : ""}`);
    }
  }
  return {
    name: output.name,
    datatype: "BYTES",
    shape: batched ? [batch, take] : [take],
    data: encodeBytesElements(elements),
  };
}

function readNumbers(dt: DataType, data: Uint8Array): number[] {
  const v = new DataView(data.buffer, data.byteOffset, data.byteLength);
  const out: number[] = [];
  const n = (size: number) => Math.floor(data.byteLength / size);
  switch (dt) {
    case "BOOL": case "UINT8": for (let i = 0; i < n(1); i++) out.push(v.getUint8(i)); break;
    case "INT8": for (let i = 0; i < n(1); i++) out.push(v.getInt8(i)); break;
    case "UINT16": for (let i = 0; i < n(2); i++) out.push(v.getUint16(i * 2, true)); break;
    case "INT16": for (let i = 0; i < n(2); i++) out.push(v.getInt16(i * 2, true)); break;
    case "FP16": for (let i = 0; i < n(2); i++) out.push(halfToNumber(v.getUint16(i * 2, true))); break;
    case "BF16": for (let i = 0; i < n(2); i++) out.push(bf16ToNumber(v.getUint16(i * 2, true))); break;
    case "UINT32": for (let i = 0; i < n(4); i++) out.push(v.getUint32(i * 4, true)); break;
    case "INT32": for (let i = 0; i < n(4); i++) out.push(v.getInt32(i * 4, true)); break;
    case "FP32": for (let i = 0; i < n(4); i++) out.push(v.getFloat32(i * 4, true)); break;
    case "UINT64": for (let i = 0; i < n(8); i++) out.push(Number(v.getBigUint64(i * 8, true))); break;
    case "INT64": for (let i = 0; i < n(8); i++) out.push(Number(v.getBigInt64(i * 8, true))); break;
    case "FP64": for (let i = 0; i < n(8); i++) out.push(v.getFloat64(i * 8, true)); break;
    case "BYTES": break;
  }
  return out;
}
