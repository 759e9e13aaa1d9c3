/**
 * An ONNX Runtime instance that runs its session on the main thread, for a
 * model configured with
 *   parameters { key: "execution_thread" value: { string_value: "event_loop" } }
 *
 * It skips the two cross-thread hops of a worker instance, which on a small
 * model cost more than the model itself. The price: while the session runs,
 * the event loop stops — every connection, health probe, metrics scrape and
 * other model waits. Only for models whose run is proven to take a few tens
 * of microseconds; never the default.
 */
import { TritonError, internal } from "../../core/errors.js";
import type { DistributiveOmit, OrtSession, Reply } from "./instance.js";
import { READY_ID, type FromWorker, type OrtModelMetadata, type ToWorker, type WorkerInit } from "./protocol.js";
import type { SessionHost } from "./session-host.js";

export class EventLoopSession implements OrtSession {
  readonly ready: Promise<OrtModelMetadata>;
  private readonly pending = new Map<number, { resolve: (r: Reply) => void; reject: (e: TritonError) => void }>();
  private nextId = READY_ID + 1;
  private closed = false;
  private label: string;
  private host: SessionHost | undefined;

  constructor(init: WorkerInit) {
    this.label = `model '${init.model}' version ${init.version}`;
    this.ready = new Promise<Reply>((resolve, reject) => this.pending.set(READY_ID, { resolve, reject })).then(
      (r) => (r as Extract<Reply, { type: "ready" }>).metadata,
    );
    // The native binding is loaded on the main thread only for models that ask for it.
    void import("./session-host.js").then(
      ({ SessionHost }) => (this.host = new SessionHost(init, (msg) => this.onReply(msg))),
      (e: unknown) => this.settle(READY_ID)?.reject(internal(`${this.label}: cannot load onnxruntime-node: ${(e as Error).message}`)),
    );
  }

  get alive(): boolean {
    return !this.closed;
  }

  setLabel(label: string): void {
    this.label = label;
  }

  call(msg: DistributiveOmit<ToWorker, "id">): Promise<Reply> {
    if (this.closed || !this.host) return Promise.reject(internal(`${this.label}: the instance has been released`));
    const id = this.nextId++;
    const reply = new Promise<Reply>((resolve, reject) => this.pending.set(id, { resolve, reject }));
    this.host.receive({ ...msg, id } as ToWorker);
    return reply;
  }

  async close(): Promise<void> {
    if (this.closed) return;
    if (this.host) await this.call({ type: "close" }).catch(() => undefined);
    this.closed = true;
  }

  async terminate(): Promise<void> {
    await this.close();
  }

  private onReply(msg: FromWorker): void {
    const p = this.settle(msg.id);
    if (!p) return;
    if (msg.type === "error") p.reject(new TritonError(msg.error.code, msg.error.message));
    else p.resolve(msg);
  }

  private settle(id: number) {
    const p = this.pending.get(id);
    this.pending.delete(id);
    return p;
  }
}
