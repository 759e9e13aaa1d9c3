/**
 * One ONNX Runtime model instance's session and the batches run on it, on
 * whichever thread holds the host: an instance worker (`instance-worker.ts`,
 * the default) or, for a model configured with `execution_thread:
 * event_loop`, the main thread itself (`event-loop-session.ts`).
 *
 * `session.run` in onnxruntime-node is synchronous native code behind a
 * promise: it blocks the thread that holds the host. Tensors arrive as views
 * over one buffer and leave as buffers of their own (listed for transfer);
 * nothing is copied except to concatenate a batch of several requests, to
 * split its outputs back, or to fix a misaligned view.
 */
import ort from "onnxruntime-node";
import type { InferenceSession, Tensor as OrtTensor } from "onnxruntime-node";
import type { SerializedError } from "../../core/errors.js";
import type { DataType } from "../../core/tensors/datatypes.js";
import { elementSize } from "../../core/tensors/datatypes.js";
import type { BatchRequest, ExecutionResult, ExecutionTimings } from "../../core/requests/inference.js";
import { decodeBytesElements, encodeBytesElements, type Tensor } from "../../core/tensors/tensor.js";
import { READY_ID } from "../worker-channel/replies.js";
import type { FromWorker, OrtModelMetadata, OrtSessionOptions, ToWorker, WorkerInit } from "./protocol.js";

const messageOf = (e: unknown) => (e instanceof Error ? e.message : String(e));

function metadataOf(s: InferenceSession): OrtModelMetadata {
  const info = (m: InferenceSession.ValueMetadata) =>
    m.isTensor ? { name: m.name, isTensor: true, type: m.type, shape: [...m.shape] } : { name: m.name, isTensor: false, shape: [] };
  return { inputs: s.inputMetadata.map(info), outputs: s.outputMetadata.map(info) };
}

// ---------------------------------------------------------------------------
// Tensors in: raw bytes → ORT tensors

type OrtType = "float32" | "float16" | "float64" | "int8" | "int16" | "int32" | "int64" | "uint8" | "uint16" | "uint32" | "uint64" | "bool" | "string";

const ORT_TYPE: Partial<Record<DataType, OrtType>> = {
  FP32: "float32", FP16: "float16", FP64: "float64",
  INT8: "int8", INT16: "int16", INT32: "int32", INT64: "int64",
  UINT8: "uint8", UINT16: "uint16", UINT32: "uint32", UINT64: "uint64",
  BOOL: "bool", BYTES: "string",
};

const TRITON_TYPE: Record<string, DataType> = Object.fromEntries(Object.entries(ORT_TYPE).map(([k, v]) => [v, k as DataType]));

function ortType(name: string, dt: DataType): OrtType {
  const t = ORT_TYPE[dt];
  if (!t) throw new Error(`input '${name}': datatype ${dt} is not supported by onnxruntime-node`);
  return t;
}

/** A typed view of raw bytes; copies only when the view is misaligned for the element type. */
function typedArray(name: string, dt: DataType, bytes: Uint8Array) {
  const size = elementSize(dt);
  if (bytes.byteLength % size !== 0) {
    throw new Error(`input '${name}': ${bytes.byteLength} bytes is not a whole number of ${dt} elements`);
  }
  if (bytes.byteOffset % size !== 0) bytes = bytes.slice();
  const { buffer, byteOffset } = bytes;
  const n = bytes.byteLength / size;
  switch (dt) {
    case "FP32": return new Float32Array(buffer, byteOffset, n);
    case "FP64": return new Float64Array(buffer, byteOffset, n);
    case "FP16": case "UINT16": return new Uint16Array(buffer, byteOffset, n);
    case "INT8": return new Int8Array(buffer, byteOffset, n);
    case "INT16": return new Int16Array(buffer, byteOffset, n);
    case "INT32": return new Int32Array(buffer, byteOffset, n);
    case "INT64": return new BigInt64Array(buffer, byteOffset, n);
    case "UINT32": return new Uint32Array(buffer, byteOffset, n);
    case "UINT64": return new BigUint64Array(buffer, byteOffset, n);
    case "UINT8": case "BOOL": return new Uint8Array(buffer, byteOffset, n);
    default: throw new Error(`input '${name}': datatype ${dt} is not supported by onnxruntime-node`);
  }
}

const utf8 = new TextDecoder("utf-8");

function toOrt(name: string, dt: DataType, shape: readonly number[], bytes: Uint8Array): OrtTensor {
  const type = ortType(name, dt);
  if (type === "string") {
    return new ort.Tensor("string", decodeBytesElements(bytes).map((e) => utf8.decode(e)), shape);
  }
  // The union of typed arrays is checked against `type` by ORT's constructor at run time.
  return new ort.Tensor(type as "float32", typedArray(name, dt, bytes) as Float32Array, shape);
}

/** Batch size of a request: dim 0 of its inputs. */
function batchOf(r: BatchRequest): number {
  return r.inputs[0]?.shape[0] ?? 0;
}

/** One ORT tensor per input; several requests are concatenated along dim 0. */
function buildFeeds(requests: BatchRequest[]): Record<string, OrtTensor> {
  const first = requests[0]!;
  const feeds: Record<string, OrtTensor> = {};
  if (requests.length === 1) {
    for (const t of first.inputs) feeds[t.name] = toOrt(t.name, t.datatype, t.shape, t.data);
    return feeds;
  }
  for (const t0 of first.inputs) {
    const parts: Tensor[] = requests.map((r, k) => {
      const t = r.inputs.find((x) => x.name === t0.name);
      if (!t) throw new Error(`request ${k} of the batch has no input '${t0.name}'`);
      if (t.datatype !== t0.datatype || t.shape.length !== t0.shape.length || t.shape.some((d, i) => i > 0 && d !== t0.shape[i])) {
        throw new Error(`input '${t0.name}': request ${k} has ${t.datatype} [${t.shape}], which cannot be batched with ${t0.datatype} [${t0.shape}]`);
      }
      return t;
    });
    const shape = [parts.reduce((n, t) => n + (t.shape[0] ?? 0), 0), ...t0.shape.slice(1)];
    if (t0.datatype === "BYTES") {
      const strings = parts.flatMap((t) => decodeBytesElements(t.data).map((e) => utf8.decode(e)));
      feeds[t0.name] = new ort.Tensor("string", strings, shape);
      continue;
    }
    const all = new Uint8Array(parts.reduce((n, t) => n + t.data.byteLength, 0));
    let off = 0;
    for (const t of parts) {
      all.set(t.data, off);
      off += t.data.byteLength;
    }
    feeds[t0.name] = toOrt(t0.name, t0.datatype, shape, all);
  }
  return feeds;
}

// ---------------------------------------------------------------------------
// Tensors out: ORT tensors → raw bytes

function tritonType(name: string, t: OrtTensor): DataType {
  const dt = TRITON_TYPE[t.type];
  if (!dt) throw new Error(`output '${name}' has ONNX Runtime type '${t.type}', which has no Triton datatype`);
  return dt;
}

/** The bytes of a numeric output, as an exclusively owned, transferable buffer view. */
function ownedBytes(t: OrtTensor, transfer: Set<ArrayBuffer>): Uint8Array {
  const data = t.data as ArrayBufferView;
  let bytes = new Uint8Array(data.buffer, data.byteOffset, data.byteLength);
  // onnxruntime-node gives every output its own ArrayBuffer; copy if that ever changes.
  if (!(bytes.buffer instanceof ArrayBuffer) || bytes.byteOffset !== 0 || bytes.byteLength !== bytes.buffer.byteLength || transfer.has(bytes.buffer)) {
    bytes = bytes.slice();
  }
  transfer.add(bytes.buffer as ArrayBuffer);
  return bytes;
}

function encodeStrings(strings: readonly string[], transfer: Set<ArrayBuffer>): Uint8Array {
  const bytes = encodeBytesElements(strings);
  transfer.add(bytes.buffer as ArrayBuffer);
  return bytes;
}

/** A fetched output as the one request of its batch gets it: no split, no copy. */
function wholeOutput(out: InferenceSession.ReturnType, name: string, transfer: Set<ArrayBuffer>): Tensor {
  const value = out[name];
  if (!value) throw new Error(`the session did not return output '${name}'`);
  if (!("dims" in value) || !("type" in value)) throw new Error(`output '${name}' is not a tensor`);
  const t = value as OrtTensor;
  const datatype = tritonType(name, t);
  const data = datatype === "BYTES" ? encodeStrings(t.data as string[], transfer) : ownedBytes(t, transfer);
  return { name, datatype, shape: t.dims.map(Number), data };
}

/** Splits each fetched output back into one tensor per request, by each request's batch size. */
function splitOutputs(out: InferenceSession.ReturnType, requests: BatchRequest[], transfer: Set<ArrayBuffer>): Tensor[][] {
  if (requests.length === 1) return [requests[0]!.outputNames.map((name) => wholeOutput(out, name, transfer))];
  const perRequest: Tensor[][] = requests.map(() => []);
  const batches = requests.map(batchOf);
  const total = batches.reduce((a, b) => a + b, 0);
  const wanted = new Set(requests.flatMap((r) => r.outputNames));
  for (const name of wanted) {
    const value = out[name];
    if (!value) throw new Error(`the session did not return output '${name}'`);
    if (!("dims" in value) || !("type" in value)) throw new Error(`output '${name}' is not a tensor`);
    const t = value as OrtTensor;
    const datatype = tritonType(name, t);
    const dims = t.dims.map(Number);
    if (dims[0] !== total) {
      throw new Error(`output '${name}' has shape [${dims}], whose first dimension should be the batch's total size ${total}`);
    }
    const rowElements = dims.slice(1).reduce((a, b) => a * b, 1);
    let row = 0;
    for (const [k, r] of requests.entries()) {
      const n = batches[k]!;
      if (r.outputNames.includes(name)) {
        const shape = [n, ...dims.slice(1)];
        let data: Uint8Array;
        if (datatype === "BYTES") {
          data = encodeStrings((t.data as string[]).slice(row * rowElements, (row + n) * rowElements), transfer);
        } else {
          const src = t.data as ArrayBufferView;
          const rowBytes = rowElements * elementSize(datatype);
          data = new Uint8Array(src.buffer, src.byteOffset + row * rowBytes, n * rowBytes).slice();
          transfer.add(data.buffer as ArrayBuffer);
        }
        perRequest[k]!.push({ name, datatype, shape, data });
      }
      row += n;
    }
  }
  // Each request gets its outputs in the order it asked for them.
  return perRequest.map((outs, k) => requests[k]!.outputNames.map((n) => outs.find((o) => o.name === n)!));
}

// ---------------------------------------------------------------------------
// Execution

interface Executed {
  results: ExecutionResult[];
  timings: ExecutionTimings;
}

const now = () => process.hrtime.bigint();

/** Where a host sends its replies, with the buffers it hands over. */
export type ReplyTo = (msg: FromWorker, transfer: ArrayBuffer[]) => void;

/**
 * Loads the session at once and answers {@link ToWorker} messages, one at a
 * time and in order, through `reply`; the first reply is READY_ID's.
 */
export class SessionHost {
  private instance: string;
  private maxBatchSize: number;
  private session: InferenceSession | undefined;
  /** Messages are handled one at a time, in order; its value is always undefined. */
  private chain: Promise<void>;

  constructor(private readonly init: WorkerInit, private readonly reply: ReplyTo) {
    this.instance = init.instance;
    this.maxBatchSize = init.maxBatchSize;
    this.chain = this.load(init.options).then(
      (metadata) => reply({ type: "ready", id: READY_ID, metadata }, []),
      (e: unknown) => reply({ type: "error", id: READY_ID, error: this.loadError(e) }, []),
    );
  }

  /** Queues a message behind the ones before it; resolves once it has been answered. */
  receive(msg: ToWorker): Promise<void> {
    this.chain = this.chain.then(() => this.handle(msg)).catch((e: unknown) => {
      // handle() reports its own failures; this is a last resort so the host keeps serving.
      this.reply({ type: "error", id: msg.id, error: { code: "INTERNAL", message: `model '${this.init.model}' instance '${this.instance}': ${messageOf(e)}` } }, []);
    });
    return this.chain;
  }

  private loadError(e: unknown): SerializedError {
    return {
      code: "INVALID_ARG",
      message: `model '${this.init.model}' version ${this.init.version}: failed to load ONNX model '${this.init.path}': ${messageOf(e)}`,
    };
  }

  private async load(options: OrtSessionOptions): Promise<OrtModelMetadata> {
    this.session = await ort.InferenceSession.create(this.init.path, { ...options });
    return metadataOf(this.session);
  }

  private async runBatch(requests: BatchRequest[], transfer: Set<ArrayBuffer>): Promise<Executed> {
    const timings: ExecutionTimings = { computeInputNs: 0, computeInferNs: 0, computeOutputNs: 0 };
    const t0 = now();
    let t1 = t0;
    let t2 = t0;
    try {
      if (!this.session) throw new Error("the session is not loaded");
      const feeds = buildFeeds(requests);
      const fetches = requests.length === 1 ? requests[0]!.outputNames : [...new Set(requests.flatMap((r) => r.outputNames))];
      t1 = now();
      const out = fetches.length ? await this.session.run(feeds, fetches) : {};
      t2 = now();
      // Only a batch that succeeds as a whole hands its buffers over.
      const local = new Set<ArrayBuffer>();
      const outputs = splitOutputs(out, requests, local);
      for (const b of local) transfer.add(b);
      const t3 = now();
      timings.computeInputNs = Number(t1 - t0);
      timings.computeInferNs = Number(t2 - t1);
      timings.computeOutputNs = Number(t3 - t2);
      return { results: outputs.map((o) => ({ outputs: o })), timings };
    } catch (e) {
      const error: SerializedError = {
        code: "INTERNAL",
        message: `model '${this.init.model}' instance '${this.instance}': onnxruntime execution failed: ${messageOf(e)}`,
      };
      timings.computeInputNs = Number(t1 - t0);
      timings.computeInferNs = Number(t2 - t1);
      return { results: requests.map(() => ({ error })), timings };
    }
  }

  private async execute(requests: BatchRequest[]): Promise<Executed & { transfer: ArrayBuffer[] }> {
    const transfer = new Set<ArrayBuffer>();
    // A model without a batch dimension cannot concatenate requests: run them one by one.
    const separate = requests.length > 1 && (this.maxBatchSize === 0 || requests.some((r) => r.inputs.length === 0));
    if (!separate) {
      const { results, timings } = await this.runBatch(requests, transfer);
      return { results, timings, transfer: transfer.size ? [...transfer] : [] };
    }
    const results: ExecutionResult[] = [];
    const timings: ExecutionTimings = { computeInputNs: 0, computeInferNs: 0, computeOutputNs: 0 };
    for (const r of requests) {
      const one = await this.runBatch([r], transfer);
      results.push(one.results[0]!);
      timings.computeInputNs += one.timings.computeInputNs;
      timings.computeInferNs += one.timings.computeInferNs;
      timings.computeOutputNs += one.timings.computeOutputNs;
    }
    return { results, timings, transfer: [...transfer] };
  }

  private async handle(msg: ToWorker): Promise<void> {
    switch (msg.type) {
      case "execute": {
        const { results, timings, transfer } = await this.execute(msg.requests);
        this.reply({ type: "result", id: msg.id, results, timings }, transfer);
        return;
      }
      case "configure": {
        this.instance = msg.instance;
        this.maxBatchSize = msg.maxBatchSize;
        if (!msg.options) {
          this.reply({ type: "configured", id: msg.id, metadata: metadataOf(this.session!) }, []);
          return;
        }
        try {
          await this.session?.release();
          this.session = undefined;
          this.reply({ type: "configured", id: msg.id, metadata: await this.load(msg.options) }, []);
        } catch (e) {
          this.reply({ type: "error", id: msg.id, error: this.loadError(e) }, []);
        }
        return;
      }
      case "close": {
        try {
          await this.session?.release();
        } catch {
          // Closing anyway.
        }
        this.session = undefined;
        this.reply({ type: "closed", id: msg.id }, []);
        return;
      }
    }
  }
}
