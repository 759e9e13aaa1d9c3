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
import { internal } from "../../core/errors.js";
import type { DistributiveOmit, OrtSession, Reply } from "./instance.js";
import type { FromWorker, OrtModelMetadata, ToWorker, WorkerInit } from "./protocol.js";
import { READY_ID, Replies } from "../worker-channel/replies.js";
import type { SessionHost } from "./session-host.js";

export class EventLoopSession implements OrtSession {
  readonly ready: Promise<OrtModelMetadata>;
  private readonly replies = new Replies<FromWorker>();
  private closed = false;
  private label: string;
  private host: SessionHost | undefined;

  constructor(init: WorkerInit) {
    this.label = `model '${init.model}' version ${init.version}`;
    this.ready = this.replies.ready.then((r) => (r as Extract<Reply, { type: "ready" }>).metadata);
    // The native binding is loaded on the main thread only for models that ask for it.
    void import("./session-host.js").then(
      ({ SessionHost }) => (this.host = new SessionHost(init, (msg) => this.replies.answer(msg))),
      (e: unknown) => this.replies.reject(READY_ID, internal(`${this.label}: cannot load onnxruntime-node: ${(e as Error).message}`)),
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
    const { id, reply } = this.replies.open();
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
}
