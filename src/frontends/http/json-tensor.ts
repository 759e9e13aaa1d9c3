import os from "node:os";
import { elementSize, type DataType } from "../../core/tensors/datatypes.js";
import { invalidArg } from "../../core/errors.js";
import { bf16ToNumber, decodeBytesElements, encodeBytesElements, halfToNumber, numberToBf16, numberToHalf } from "../../core/tensors/tensor.js";

/**
 * Conversion between the JSON form of tensor data (`"data": [...]`, flat or
 * nested, row-major) and core's raw little-endian bytes. Only JSON pays for
 * conversion; binary tensors pass through untouched.
 */

const INT_RANGE: Partial<Record<DataType, [number, number]>> = {
  INT8: [-128, 127], INT16: [-32768, 32767], INT32: [-2147483648, 2147483647],
  UINT8: [0, 255], UINT16: [0, 65535], UINT32: [0, 4294967295],
};

/** Flattens nested JSON arrays in row-major order. */
const LITTLE_ENDIAN = os.endianness() === "LE";

export function flatten(data: unknown): unknown[] {
  if (!Array.isArray(data)) return [data];
  if (!data.some(Array.isArray)) return data;
  const out: unknown[] = [];
  const walk = (v: unknown) => (Array.isArray(v) ? v.forEach(walk) : out.push(v));
  walk(data);
  return out;
}

/**
 * JSON values → raw bytes. `where` names the input and model for messages.
 * Throws INVALID_ARG naming the element that does not fit the datatype.
 */
export function jsonToRaw(values: unknown[], datatype: DataType, where: string): Uint8Array {
  const bad = (i: number, what: string) =>
    invalidArg(`unable to parse 'data' for ${where}: element ${i} (${JSON.stringify(values[i]) ?? "undefined"}) is not ${what}`);
  if (datatype === "BYTES") {
    return encodeBytesElements(
      values.map((v, i) => {
        if (typeof v !== "string") throw bad(i, "a string");
        return v;
      }),
    );
  }
  const size = elementSize(datatype);
  const out = new Uint8Array(values.length * size);
  // Large JSON tensors are mostly FP32 and INT32: one tight loop per type,
  // straight into a typed array (the wire is little-endian, as this host is).
  if (LITTLE_ENDIAN && (datatype === "FP32" || datatype === "FP64")) {
    const typed = datatype === "FP32" ? new Float32Array(out.buffer) : new Float64Array(out.buffer);
    for (let i = 0; i < values.length; i++) {
      const v = values[i];
      if (typeof v !== "number") throw bad(i, "a number");
      typed[i] = v;
    }
    return out;
  }
  if (LITTLE_ENDIAN && datatype === "INT32") {
    const typed = new Int32Array(out.buffer);
    for (let i = 0; i < values.length; i++) {
      const v = values[i];
      if (typeof v !== "number" || (v | 0) !== v) throw bad(i, "a INT32 integer");
      typed[i] = v;
    }
    return out;
  }
  const view = new DataView(out.buffer);
  for (let i = 0; i < values.length; i++) {
    const v = values[i];
    switch (datatype) {
      case "BOOL":
        if (typeof v !== "boolean") throw bad(i, "a boolean");
        view.setUint8(i, v ? 1 : 0);
        break;
      case "INT8": case "INT16": case "INT32": case "UINT8": case "UINT16": case "UINT32": {
        const [lo, hi] = INT_RANGE[datatype]!;
        if (typeof v !== "number" || !Number.isInteger(v) || v < lo || v > hi) throw bad(i, `a ${datatype} integer`);
        if (datatype === "INT8") view.setInt8(i, v);
        else if (datatype === "UINT8") view.setUint8(i, v);
        else if (datatype === "INT16") view.setInt16(i * 2, v, true);
        else if (datatype === "UINT16") view.setUint16(i * 2, v, true);
        else if (datatype === "INT32") view.setInt32(i * 4, v, true);
        else view.setUint32(i * 4, v, true);
        break;
      }
      case "INT64":
        if (typeof v !== "number" || !Number.isInteger(v)) throw bad(i, "an INT64 integer");
        view.setBigInt64(i * 8, BigInt(v), true);
        break;
      case "UINT64":
        if (typeof v !== "number" || !Number.isInteger(v) || v < 0) throw bad(i, "a UINT64 integer");
        view.setBigUint64(i * 8, BigInt(v), true);
        break;
      case "FP16": case "BF16": case "FP32": case "FP64": {
        if (typeof v !== "number") throw bad(i, "a number");
        if (datatype === "FP16") view.setUint16(i * 2, numberToHalf(v), true);
        else if (datatype === "BF16") view.setUint16(i * 2, numberToBf16(v), true);
        else if (datatype === "FP32") view.setFloat32(i * 4, v, true);
        else view.setFloat64(i * 8, v, true);
        break;
      }
    }
  }
  return out;
}

/**
 * Raw bytes → the JSON text of a flat `data` array. Written by hand rather
 * than through JSON.stringify so that 64-bit integers keep every digit.
 */
export function rawToJsonText(data: Uint8Array, datatype: DataType): string {
  if (datatype === "BYTES") {
    return JSON.stringify(decodeBytesElements(data).map((e) => Buffer.from(e.buffer, e.byteOffset, e.byteLength).toString("utf8")));
  }
  const view = new DataView(data.buffer, data.byteOffset, data.byteLength);
  const n = data.byteLength / elementSize(datatype);
  const parts: string[] = new Array(n);
  const num = (x: number) => (Number.isFinite(x) ? String(x) : "null");
  for (let i = 0; i < n; i++) {
    switch (datatype) {
      case "BOOL": parts[i] = view.getUint8(i) ? "true" : "false"; break;
      case "INT8": parts[i] = String(view.getInt8(i)); break;
      case "UINT8": parts[i] = String(view.getUint8(i)); break;
      case "INT16": parts[i] = String(view.getInt16(i * 2, true)); break;
      case "UINT16": parts[i] = String(view.getUint16(i * 2, true)); break;
      case "INT32": parts[i] = String(view.getInt32(i * 4, true)); break;
      case "UINT32": parts[i] = String(view.getUint32(i * 4, true)); break;
      case "INT64": parts[i] = String(view.getBigInt64(i * 8, true)); break;
      case "UINT64": parts[i] = String(view.getBigUint64(i * 8, true)); break;
      case "FP16": parts[i] = num(halfToNumber(view.getUint16(i * 2, true))); break;
      case "BF16": parts[i] = num(bf16ToNumber(view.getUint16(i * 2, true))); break;
      case "FP32": parts[i] = num(view.getFloat32(i * 4, true)); break;
      case "FP64": parts[i] = num(view.getFloat64(i * 8, true)); break;
    }
  }
  return `[${parts.join(",")}]`;
}
