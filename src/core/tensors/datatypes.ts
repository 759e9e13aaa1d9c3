/**
 * Tensor datatypes as the KServe v2 protocol names them, and their mapping to
 * the `TYPE_*` names that `config.pbtxt` uses.
 */
export type DataType =
  | "BOOL"
  | "UINT8" | "UINT16" | "UINT32" | "UINT64"
  | "INT8" | "INT16" | "INT32" | "INT64"
  | "FP16" | "FP32" | "FP64" | "BF16"
  | "BYTES";

export const DATA_TYPES: readonly DataType[] = [
  "BOOL", "UINT8", "UINT16", "UINT32", "UINT64", "INT8", "INT16", "INT32", "INT64",
  "FP16", "FP32", "FP64", "BF16", "BYTES",
];

export function isDataType(v: unknown): v is DataType {
  return typeof v === "string" && (DATA_TYPES as readonly string[]).includes(v);
}

/** Bytes per element; 0 for BYTES, whose elements are variable-length. */
export function elementSize(dt: DataType): number {
  switch (dt) {
    case "BOOL": case "UINT8": case "INT8": return 1;
    case "UINT16": case "INT16": case "FP16": case "BF16": return 2;
    case "UINT32": case "INT32": case "FP32": return 4;
    case "UINT64": case "INT64": case "FP64": return 8;
    case "BYTES": return 0;
  }
}

/** `TYPE_FP32` → `FP32`; `TYPE_STRING` → `BYTES`. Undefined for TYPE_INVALID or unknown names. */
export function fromConfigType(name: string): DataType | undefined {
  if (name === "TYPE_STRING") return "BYTES";
  if (!name.startsWith("TYPE_")) return undefined;
  const dt = name.slice(5);
  return isDataType(dt) && dt !== "BYTES" ? dt : undefined;
}

/** Number of elements of a shape; an empty shape is a scalar (1 element). */
export function elementCount(shape: readonly number[]): number {
  let n = 1;
  for (const d of shape) n *= d;
  return n;
}
