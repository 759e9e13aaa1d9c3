import { TritonError, type SerializedError } from "../../core/errors.js";

/** Id of the message a worker sends on its own once it has started (or failed to). */
export const READY_ID = 0;

/** A message of a worker's protocol: a type and the id of the call it answers. */
export interface Message {
  type: string;
  id: number;
}

/** The reply a worker sends when a call fails. */
export interface ErrorReply {
  type: "error";
  id: number;
  error: SerializedError;
}

interface Pending<R> {
  resolve: (reply: R) => void;
  reject: (e: TritonError) => void;
}

/**
 * Matches a worker's replies to the calls made to it, by id, wherever the
 * worker's host runs (a worker thread or the event loop). The first reply,
 * READY_ID's, says the worker has started.
 */
export class Replies<R extends Message> {
  readonly ready: Promise<Exclude<R, ErrorReply>>;
  private readonly pending = new Map<number, Pending<Exclude<R, ErrorReply>>>();
  private nextId = READY_ID + 1;

  constructor() {
    this.ready = this.expect(READY_ID);
  }

  /** Calls waiting for their reply. */
  get size(): number {
    return this.pending.size;
  }

  /** A fresh id and the promise of its reply. */
  open(): { id: number; reply: Promise<Exclude<R, ErrorReply>> } {
    const id = this.nextId++;
    return { id, reply: this.expect(id) };
  }

  /** Settles the call a message answers; false when no call waits for it. */
  answer(msg: R | ErrorReply): boolean {
    const p = this.take(msg.id);
    if (!p) return false;
    if (msg.type === "error") p.reject(TritonError.from((msg as ErrorReply).error));
    else p.resolve(msg as Exclude<R, ErrorReply>);
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

  private expect(id: number): Promise<Exclude<R, ErrorReply>> {
    return new Promise((resolve, reject) => this.pending.set(id, { resolve, reject }));
  }

  private take(id: number): Pending<Exclude<R, ErrorReply>> | undefined {
    const p = this.pending.get(id);
    this.pending.delete(id);
    return p;
  }
}
