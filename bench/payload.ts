/**
 * Benchmark payloads: the KServe v2 request bodies (JSON tensors and the
 * binary tensor data extension) the load generator sends, and the decoding
 * and comparison used to check that a response carries the right values.
 *
 * Deliberately independent of `src/`: the benchmark talks to servers the way
 * any client would, from the outside.
 */

export type BenchDataType = "INT32" | "FP32";

export interface BenchTensor {
  name: string;
  datatype: BenchDataType;
  shape: number[];
  data: Int32Array | Float32Array;
}

/** A request body ready to send, with the headers that go with it. */
export interface EncodedRequest {
  body: Buffer;
  headers: Record<string, string>;
}

/** Plain JSON tensors; every output comes back as JSON. */
export function jsonRequest(inputs: readonly BenchTensor[]): EncodedRequest {
  const header = {
    inputs: inputs.map((t) => ({ name: t.name, shape: t.shape, datatype: t.datatype, data: Array.from(t.data) })),
  };
  const body = Buffer.from(JSON.stringify(header), "utf8");
  return { body, headers: { "Content-Type": "application/json", "Content-Length": String(body.byteLength) } };
}

/**
 * Binary tensor data extension both ways: a JSON header whose inputs carry
 * `binary_data_size`, the raw little-endian tensor bytes after it, and
 * `binary_data_output: true` so outputs come back the same way.
 */
export function binaryRequest(inputs: readonly BenchTensor[]): EncodedRequest {
  const header = {
    inputs: inputs.map((t) => ({
      name: t.name,
      shape: t.shape,
      datatype: t.datatype,
      parameters: { binary_data_size: t.data.byteLength },
    })),
    parameters: { binary_data_output: true },
  };
  const head = Buffer.from(JSON.stringify(header), "utf8");
  const body = Buffer.concat([head, ...inputs.map((t) => Buffer.from(t.data.buffer, t.data.byteOffset, t.data.byteLength))]);
  return {
    body,
    headers: {
      "Content-Type": "application/octet-stream",
      "Content-Length": String(body.byteLength),
      "Inference-Header-Content-Length": String(head.byteLength),
    },
  };
}

/** An output as decoded from a response (or read from an in-process run). */
export interface DecodedOutput {
  datatype: string;
  shape: number[];
  values: ArrayLike<number>;
}

/**
 * Decodes an inference response body, JSON or binary (the
 * `Inference-Header-Content-Length` header says where the JSON ends).
 * Throws with a readable message when the body is not a valid response.
 */
export function decodeResponse(body: Uint8Array, headerLength: string | undefined): Map<string, DecodedOutput> {
  const buf = Buffer.from(body.buffer, body.byteOffset, body.byteLength);
  const jsonEnd = headerLength === undefined ? buf.byteLength : Number(headerLength);
  if (!Number.isInteger(jsonEnd) || jsonEnd < 0 || jsonEnd > buf.byteLength) {
    throw new Error(`bad Inference-Header-Content-Length '${headerLength}' for a ${buf.byteLength}-byte body`);
  }
  const header = JSON.parse(buf.toString("utf8", 0, jsonEnd)) as {
    outputs?: { name: string; datatype: string; shape: number[]; data?: unknown; parameters?: { binary_data_size?: number } }[];
  };
  if (!Array.isArray(header.outputs)) throw new Error(`response has no 'outputs' array: ${buf.toString("utf8", 0, Math.min(jsonEnd, 300))}`);
  const out = new Map<string, DecodedOutput>();
  let offset = jsonEnd;
  for (const o of header.outputs) {
    const size = o.parameters?.binary_data_size;
    let values: ArrayLike<number>;
    if (size !== undefined) {
      if (offset + size > buf.byteLength) throw new Error(`output '${o.name}': binary data truncated`);
      const bytes = buf.subarray(offset, offset + size);
      offset += size;
      const copy = new Uint8Array(bytes).buffer; // aligned copy
      if (o.datatype === "INT32") values = new Int32Array(copy);
      else if (o.datatype === "FP32") values = new Float32Array(copy);
      else throw new Error(`output '${o.name}': datatype ${o.datatype} not handled by the benchmark`);
    } else {
      if (!Array.isArray(o.data)) throw new Error(`output '${o.name}' has neither 'data' nor 'binary_data_size'`);
      values = (o.data as unknown[]).flat(Infinity) as number[];
    }
    out.set(o.name, { datatype: o.datatype, shape: o.shape, values });
  }
  if (offset !== buf.byteLength) throw new Error(`${buf.byteLength - offset} trailing bytes after the last binary output`);
  return out;
}

/**
 * Compares outputs with the expected ones: same names, datatype, shape;
 * INT32 exactly, FP32 within 1e-5 (absolute and relative). Returns a
 * description of the first difference, or undefined when they agree.
 */
export function compareOutputs(expected: ReadonlyMap<string, DecodedOutput>, actual: ReadonlyMap<string, DecodedOutput>): string | undefined {
  for (const [name, e] of expected) {
    const a = actual.get(name);
    if (!a) return `output '${name}' missing (got ${[...actual.keys()].join(", ") || "none"})`;
    if (a.datatype !== e.datatype) return `output '${name}': datatype ${a.datatype}, expected ${e.datatype}`;
    if (a.shape.join(",") !== e.shape.join(",")) return `output '${name}': shape [${a.shape}], expected [${e.shape}]`;
    if (a.values.length !== e.values.length) return `output '${name}': ${a.values.length} values, expected ${e.values.length}`;
    for (let i = 0; i < e.values.length; i++) {
      const x = a.values[i]!;
      const y = e.values[i]!;
      const ok = e.datatype === "FP32" ? Math.abs(x - y) <= 1e-5 + 1e-5 * Math.abs(y) : x === y;
      if (!ok) return `output '${name}'[${i}] = ${x}, expected ${y}`;
    }
  }
  return undefined;
}

/** Deterministic pseudo-random floats in [0, 1) (mulberry32), so every run sends the same image. */
export function seededFloats(n: number, seed: number): Float32Array {
  const out = new Float32Array(n);
  let s = seed >>> 0;
  for (let i = 0; i < n; i++) {
    s = (s + 0x6d2b79f5) >>> 0;
    let t = s;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    out[i] = ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  }
  return out;
}
