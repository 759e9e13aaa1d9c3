import { TritonError } from "../../core/errors.js";
import { READY_ID, type FromWorker, type OrtModelMetadata } from "./protocol.js";

/** A session host's answer to a call, errors aside. */
export type Reply = Exclude<FromWorker, { type: "error" }>;

interface Pending {
  resolve: (reply: Reply) => void;
  reject: (e: TritonError) => void;
}

/**
 * Matches a session host's replies to the calls made to it, by id, wherever
 * the host runs (a worker thread or the event loop). The host's first reply,
 * READY_ID's, carries the model's metadata once the session is loaded.
 */
export class Replies {
  readonly ready: Promise<OrtModelMetadata>;
  private readonly pending = new Map<number, Pending>();
  private nextId = READY_ID + 1;

  constructor() {
    this.ready = this.expect(READY_ID).then((r) => (r as Extract<Reply, { type: "ready" }>).metadata);
  }

  /** Calls waiting for their reply. */
  get size(): number {
    return this.pending.size;
  }

  /** A fresh id and the promise of its reply. */
  open(): { id: number; reply: Promise<Reply> } {
    const id = this.nextId++;
    return { id, reply: this.expect(id) };
  }

  /** Settles the call a message answers; false when no call waits for it. */
  answer(msg: FromWorker): boolean {
    const p = this.take(msg.id);
    if (!p) return false;
    if (msg.type === "error") p.reject(new TritonError(msg.error.code, msg.error.message));
    else p.resolve(msg);
    return true;
  }

  /** Fails one call. */
  reject(id: number, e: TritonError): void {
    this.take(id)?.reject(e);
  }

  /** Fails every call still waiting. */
  rejectAll(e: TritonError): void {
    const all = [...this.pending.values()];
    this.pending.clear();
    for (const p of all) p.reject(e);
  }

  private expect(id: number): Promise<Reply> {
    return new Promise<Reply>((resolve, reject) => this.pending.set(id, { resolve, reject }));
  }

  private take(id: number): Pending | undefined {
    const p = this.pending.get(id);
    this.pending.delete(id);
    return p;
  }
}
