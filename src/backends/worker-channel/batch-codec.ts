/**
 * The bytes of a batch and of its results in a {@link ByteRing} record: the
 * tensors' metadata as a few integers and short strings, their data as it
 * is. Writing a record is one pass over the request; reading one makes one
 * allocation for all of its tensors' data, so what the reader holds never
 * points into the ring (ONNX Runtime refuses shared memory, and the ring's
 * space is reused once the record is released).
 */
import type { SerializedError } from "../../core/errors.js";
import type { BatchRequest, ExecutionResult, ExecutionTimings } from "../../core/requests/inference.js";
import { DATA_TYPES, type DataType } from "../../core/tensors/datatypes.js";
import type { Tensor } from "../../core/tensors/tensor.js";

const align8 = (n: number) => (n + 7) & ~7;

/** UTF-8 bytes of the names seen so far: tensor names repeat on every request. */
const nameBytes = new Map<string, Buffer>();
const NAME_CACHE_LIMIT = 4096;

function utf8Of(s: string): Buffer {
  let b = nameBytes.get(s);
  if (!b) {
    if (nameBytes.size >= NAME_CACHE_LIMIT) nameBytes.clear();
    b = Buffer.from(s, "utf8");
    nameBytes.set(s, b);
  }
  return b;
}

const DATATYPE_CODE = new Map<DataType, number>(DATA_TYPES.map((d, i) => [d, i]));

/** Sequential writes into a record. */
class Writer {
  private readonly view: DataView;
  offset = 0;
  constructor(private readonly bytes: Uint8Array) {
    this.view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  }
  u8(v: number): void {
    this.view.setUint8(this.offset, v);
    this.offset += 1;
  }
  u32(v: number): void {
    this.view.setUint32(this.offset, v, true);
    this.offset += 4;
  }
  f64(v: number): void {
    this.view.setFloat64(this.offset, v, true);
    this.offset += 8;
  }
  raw(b: Uint8Array): void {
    this.bytes.set(b, this.offset);
    this.offset += b.byteLength;
  }
  str(s: string): void {
    const b = utf8Of(s);
    this.u32(b.byteLength);
    this.raw(b);
  }
}

/** Sequential reads from a record. */
class Reader {
  private readonly view: DataView;
  offset = 0;
  constructor(private readonly bytes: Uint8Array) {
    this.view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  }
  u8(): number {
    return this.view.getUint8(this.offset++);
  }
  u32(): number {
    const v = this.view.getUint32(this.offset, true);
    this.offset += 4;
    return v;
  }
  f64(): number {
    const v = this.view.getFloat64(this.offset, true);
    this.offset += 8;
    return v;
  }
  str(): string {
    const n = this.u32();
    // A Buffer over shared memory decodes like any other; TextDecoder refuses it.
    const s = Buffer.from(this.bytes.buffer, this.bytes.byteOffset + this.offset, n).toString("utf8");
    this.offset += n;
    return s;
  }
  /** A view of the next `n` bytes (into the ring: copy before release). */
  view8(n: number): Uint8Array {
    const v = this.bytes.subarray(this.offset, this.offset + n);
    this.offset += n;
    return v;
  }
}

const strSize = (s: string) => 4 + utf8Of(s).byteLength;
const tensorSize = (t: Tensor) => strSize(t.name) + 1 + 4 + 8 * t.shape.length + 4 + t.data.byteLength;

function writeTensor(w: Writer, t: Tensor): void {
  w.str(t.name);
  w.u8(DATATYPE_CODE.get(t.datatype)!);
  w.u32(t.shape.length);
  for (const d of t.shape) w.f64(d);
  w.u32(t.data.byteLength);
  w.raw(t.data);
}

/** A tensor whose data is still a view into the record; `copyOut` makes it the reader's own. */
function readTensor(r: Reader): Tensor {
  const name = r.str();
  const datatype = DATA_TYPES[r.u8()]!;
  const rank = r.u32();
  const shape = new Array<number>(rank);
  for (let i = 0; i < rank; i++) shape[i] = r.f64();
  const data = r.view8(r.u32());
  return { name, datatype, shape, data };
}

/**
 * Gives the tensors copies of their data, all in one fresh buffer, each at an
 * 8-byte aligned offset: what a worker's batch needs for its run.
 */
function copyOut(tensors: Tensor[]): void {
  let total = 0;
  for (const t of tensors) total = align8(total) + t.data.byteLength;
  const buffer = new ArrayBuffer(total);
  const bytes = new Uint8Array(buffer);
  let off = 0;
  for (const t of tensors) {
    off = align8(off);
    bytes.set(t.data, off);
    t.data = new Uint8Array(buffer, off, t.data.byteLength);
    off += t.data.byteLength;
  }
}

// ---------------------------------------------------------------------------
// A batch: main thread → instance

/** Bytes of the record `writeBatch` writes. */
export function batchSize(requests: readonly BatchRequest[]): number {
  let n = 8;
  for (const r of requests) {
    n += 8;
    for (const t of r.inputs) n += tensorSize(t);
    for (const o of r.outputNames) n += strSize(o);
  }
  return n;
}

export function writeBatch(record: Uint8Array, id: number, requests: readonly BatchRequest[]): void {
  const w = new Writer(record);
  w.u32(id);
  w.u32(requests.length);
  for (const r of requests) {
    w.u32(r.inputs.length);
    w.u32(r.outputNames.length);
    for (const t of r.inputs) writeTensor(w, t);
    for (const o of r.outputNames) w.str(o);
  }
}

export function readBatch(record: Uint8Array): { id: number; requests: BatchRequest[] } {
  const r = new Reader(record);
  const id = r.u32();
  const requests: BatchRequest[] = new Array(r.u32());
  const all: Tensor[] = [];
  for (let k = 0; k < requests.length; k++) {
    const inputs: Tensor[] = new Array(r.u32());
    const outputNames: string[] = new Array(r.u32());
    for (let i = 0; i < inputs.length; i++) all.push((inputs[i] = readTensor(r)));
    for (let i = 0; i < outputNames.length; i++) outputNames[i] = r.str();
    requests[k] = { inputs, outputNames };
  }
  copyOut(all);
  return { id, requests };
}

// ---------------------------------------------------------------------------
// Its results: instance → main thread

const OK = 0;
const FAILED = 1;

export function resultsSize(results: readonly ExecutionResult[]): number {
  let n = 4 + 24 + 4;
  for (const r of results) {
    n += 1;
    if (r.error) n += strSize(r.error.code) + 4 + Buffer.byteLength(r.error.message, "utf8");
    else {
      n += 4;
      for (const t of r.outputs) n += tensorSize(t);
    }
  }
  return n;
}

export function writeResults(record: Uint8Array, id: number, results: readonly ExecutionResult[], timings: ExecutionTimings): void {
  const w = new Writer(record);
  w.u32(id);
  w.f64(timings.computeInputNs);
  w.f64(timings.computeInferNs);
  w.f64(timings.computeOutputNs);
  w.u32(results.length);
  for (const r of results) {
    if (r.error) {
      w.u8(FAILED);
      w.str(r.error.code);
      const m = Buffer.from(r.error.message, "utf8");
      w.u32(m.byteLength);
      w.raw(m);
      continue;
    }
    w.u8(OK);
    w.u32(r.outputs.length);
    for (const t of r.outputs) writeTensor(w, t);
  }
}

export function readResults(record: Uint8Array): { id: number; results: ExecutionResult[]; timings: ExecutionTimings } {
  const r = new Reader(record);
  const id = r.u32();
  const timings: ExecutionTimings = { computeInputNs: r.f64(), computeInferNs: r.f64(), computeOutputNs: r.f64() };
  const results: ExecutionResult[] = new Array(r.u32());
  for (let k = 0; k < results.length; k++) {
    if (r.u8() === FAILED) {
      const code = r.str() as SerializedError["code"];
      const n = r.u32();
      const message = Buffer.from(r.view8(n)).toString("utf8");
      results[k] = { error: { code, message } };
      continue;
    }
    const outputs: Tensor[] = new Array(r.u32());
    for (let i = 0; i < outputs.length; i++) {
      // Each output gets a buffer of its own: a response held for long (the
      // response cache) must not keep the rest of its batch alive.
      const t = readTensor(r);
      t.data = t.data.slice();
      outputs[i] = t;
    }
    results[k] = { outputs };
  }
  return { id, results, timings };
}
