/**
 * The hand-off between the event loop and an instance's worker thread.
 *
 * Batches and their results travel as records in two {@link ByteRing}s (one
 * each way): no structured clone, no per-message port machinery, and no
 * cross-thread wake-up while the other side is awake. Everything else —
 * control messages, and batches or results too large for a ring record —
 * goes by `postMessage` (large tensors are transferred, not copied). Towards
 * the worker, order is kept across both paths: a message sent by
 * `postMessage` leaves a marker in the ring, and the worker takes it up when
 * it reaches the marker. Results need no order: each carries its call's id.
 *
 * Figures and the alternatives measured are in docs/hot-path.md.
 */
import type { MessagePort, Worker } from "node:worker_threads";
import type { BatchRequest, ExecutionResult, ExecutionTimings } from "../../core/requests/inference.js";
import type { Tensor } from "../../core/tensors/tensor.js";
import { batchSize, readBatch, readResults, resultsSize, writeBatch, writeResults } from "./batch-codec.js";
import { ByteRing } from "./byte-ring.js";

/** A batch to run: the message the rings carry towards the worker. */
export interface ExecuteMessage {
  type: "execute";
  id: number;
  requests: BatchRequest[];
}

/** Its results: the message the rings carry back. */
export interface ResultMessage {
  type: "result";
  id: number;
  results: ExecutionResult[];
  timings: ExecutionTimings;
}

interface Message {
  type: string;
  id: number;
}

/** The shared memory of a channel, handed to the worker in its `workerData`. */
export interface ChannelMemory {
  toWorker: SharedArrayBuffer;
  fromWorker: SharedArrayBuffer;
}

/** Bytes of each ring. Records up to a quarter of it go through the ring. */
const RING_BYTES = 1 << 20;

/** Ring record kinds towards the worker. */
const EXECUTE = 0;
const POSTED = 1;

/** What a message sent by `postMessage` towards the worker is wrapped in. */
interface Posted {
  seq: number;
  msg: Message;
}

/** The shared memory for a new channel. */
export function channelMemory(): ChannelMemory {
  return { toWorker: ByteRing.create(RING_BYTES).shared, fromWorker: ByteRing.create(RING_BYTES).shared };
}

const align8 = (n: number) => (n + 7) & ~7;

/**
 * Copies the inputs of every request into one fresh ArrayBuffer (each tensor
 * at an 8-byte aligned offset) so it can be transferred, not cloned. The
 * caller's buffers may be views over Node's pooled Buffers: they are never
 * transferred themselves.
 */
export function packRequests(requests: readonly BatchRequest[]): { requests: BatchRequest[]; buffer: ArrayBuffer } {
  let total = 0;
  for (const r of requests) for (const t of r.inputs) total = align8(total) + t.data.byteLength;
  const buffer = new ArrayBuffer(total);
  const bytes = new Uint8Array(buffer);
  let off = 0;
  const packed = requests.map((r) => ({
    outputNames: [...r.outputNames],
    inputs: r.inputs.map((t): Tensor => {
      off = align8(off);
      bytes.set(t.data, off);
      const data = new Uint8Array(buffer, off, t.data.byteLength);
      off += t.data.byteLength;
      return { name: t.name, datatype: t.datatype, shape: [...t.shape], data };
    }),
  }));
  return { requests: packed, buffer };
}

/**
 * The event loop's end. `send` never blocks: when the ring is full, messages
 * wait here, in order, until the worker has read enough.
 */
export class MainEnd<Out extends Message, In> {
  readonly memory: ChannelMemory = channelMemory();
  private readonly out: ByteRing;
  private readonly in: ByteRing;
  private readonly waiting: { msg: Out; transfer: ArrayBuffer[] }[] = [];
  private nextSeq = 0;
  private worker: Worker | undefined;

  constructor(private readonly onMessage: (msg: In | ResultMessage) => void) {
    this.out = ByteRing.attach(this.memory.toWorker);
    this.in = ByteRing.attach(this.memory.fromWorker);
  }

  /** Starts listening to `worker`, which was started with `memory`. */
  connect(worker: Worker): void {
    this.worker = worker;
    worker.on("message", (msg: In) => {
      this.onMessage(msg);
      this.flush();
    });
    this.listen();
  }

  send(msg: Out, transfer: ArrayBuffer[] = []): void {
    if (this.waiting.length > 0 || !this.write(msg, transfer)) this.waiting.push({ msg, transfer });
  }

  /** The worker is gone: stop listening (ends the pending wait, so nothing keeps this end alive). */
  close(): void {
    this.in.close();
    this.out.close();
    this.waiting.length = 0;
  }

  private write(msg: Out, transfer: ArrayBuffer[]): boolean {
    if (msg.type === "execute") {
      const requests = (msg as unknown as ExecuteMessage).requests;
      const size = 4 + batchSize(requests);
      const record = this.out.reserve(size);
      if (record) {
        new DataView(record.buffer, record.byteOffset, 4).setUint32(0, EXECUTE, true);
        writeBatch(record.subarray(4), msg.id, requests);
        this.out.commit(size);
        return true;
      }
      if (size <= this.out.maxRecord) return false; // fits once the worker has read more
      const packed = packRequests(requests);
      return this.post({ ...msg, requests: packed.requests }, [packed.buffer]);
    }
    return this.post(msg, transfer);
  }

  private post(msg: Out, transfer: ArrayBuffer[]): boolean {
    const marker = this.out.reserve(8);
    if (!marker) return false;
    const seq = this.nextSeq++;
    this.worker!.postMessage({ seq, msg } satisfies Posted, transfer);
    const view = new DataView(marker.buffer, marker.byteOffset, 8);
    view.setUint32(0, POSTED, true);
    view.setUint32(4, seq, true);
    this.out.commit(8);
    return true;
  }

  private flush(): void {
    while (this.waiting.length > 0) {
      const w = this.waiting[0]!;
      if (!this.write(w.msg, w.transfer)) return;
      this.waiting.shift();
    }
  }

  private readonly listen = (): void => {
    for (;;) {
      let record: Uint8Array | undefined;
      while ((record = this.in.peek())) {
        const msg = readResults(record);
        this.in.release(record);
        this.onMessage({ type: "result", ...msg });
      }
      this.flush();
      if (this.in.closed) return;
      const wait = this.in.waitForRecord();
      if (wait) {
        void wait.then(this.listen);
        return;
      }
    }
  };
}

/**
 * The worker's end. It takes the next message only once `handle` has finished
 * the one before, so while the worker computes, the event loop's writes cost
 * no wake-up; the batches wait in the ring.
 */
export class WorkerEnd<In extends Message, Out extends Message> {
  private readonly in: ByteRing;
  private readonly out: ByteRing;
  private readonly posted = new Map<number, Message>();
  /** The marker the worker stopped at because its message had not arrived yet. */
  private awaiting = -1;

  constructor(
    private readonly port: MessagePort,
    memory: ChannelMemory,
    private readonly handle: (msg: In | ExecuteMessage) => Promise<void>,
  ) {
    this.in = ByteRing.attach(memory.toWorker);
    this.out = ByteRing.attach(memory.fromWorker);
    port.on("message", ({ seq, msg }: Posted) => {
      this.posted.set(seq, msg);
      if (seq === this.awaiting) {
        this.awaiting = -1;
        this.next();
      }
    });
    // Not from within the constructor: the handler may use this end to answer.
    queueMicrotask(this.next);
  }

  /** Results go through the ring when they fit; anything else by postMessage. */
  send(msg: Out | ResultMessage, transfer: ArrayBuffer[] = []): void {
    if (msg.type === "result") {
      const r = msg as ResultMessage;
      const size = resultsSize(r.results);
      const record = this.out.reserve(size);
      if (record) {
        writeResults(record, r.id, r.results, r.timings);
        this.out.commit(size);
        return;
      }
    }
    this.port.postMessage(msg, transfer);
  }

  private readonly next = (): void => {
    for (;;) {
      const record = this.in.peek();
      if (record) {
        const view = new DataView(record.buffer, record.byteOffset, record.byteLength);
        let msg: Message | undefined;
        if (view.getUint32(0, true) === EXECUTE) {
          msg = { type: "execute", ...readBatch(record.subarray(4)) };
        } else {
          const seq = view.getUint32(4, true);
          msg = this.posted.get(seq);
          if (!msg) {
            this.awaiting = seq;
            return;
          }
          this.posted.delete(seq);
        }
        this.in.release(record);
        let handled: Promise<void>;
        try {
          handled = this.handle(msg as In | ExecuteMessage);
        } catch {
          // The handler answers its own failures; the channel only keeps taking messages.
          handled = Promise.resolve();
        }
        handled.then(this.next, this.next);
        return;
      }
      if (this.in.closed) return;
      const wait = this.in.waitForRecord();
      if (wait) {
        void wait.then(this.next);
        return;
      }
    }
  };
}
