/**
 * Main-thread side of an ONNX Runtime instance: a handle on its worker
 * thread, and the {@link BackendInstance} that hands batches to it.
 */
import type { BackendInstance } from "../../core/backend.js";
import { internal } from "../../core/errors.js";
import type { BatchRequest, BatchResult } from "../../core/requests/inference.js";
import type { FromWorker, OrtModelMetadata, OrtSessionOptions, ToWorker, WorkerInit } from "./protocol.js";
import { InstanceThread, type DistributiveOmit } from "../worker-channel/instance-thread.js";

/** The compiled worker, next to this file in dist/. */
const WORKER_URL = new URL("./instance-worker.js", import.meta.url);

/** A session host's answer to a call, errors aside. */
export type Reply = Exclude<FromWorker, { type: "error" }>;

/**
 * Where an instance's session lives: a worker thread ({@link OrtWorker}, the
 * default) or the event loop itself (`EventLoopSession`, opt-in).
 */
export interface OrtSession {
  readonly ready: Promise<OrtModelMetadata>;
  readonly alive: boolean;
  setLabel(label: string): void;
  call(msg: DistributiveOmit<ToWorker, "id">, transfer?: ArrayBuffer[]): Promise<Reply>;
  close(): Promise<void>;
  terminate(): Promise<void>;
}

/** A worker thread that owns one ONNX Runtime session. */
export class OrtWorker extends InstanceThread<ToWorker, FromWorker> implements OrtSession {
  /** The model's inputs and outputs, once the session is loaded. */
  readonly ready: Promise<OrtModelMetadata>;

  constructor(init: Omit<WorkerInit, "channel">) {
    super({ url: WORKER_URL, init, label: `model '${init.model}' version ${init.version}`, kind: "onnxruntime worker" });
    this.ready = this.started.then((r) => (r as Extract<Reply, { type: "ready" }>).metadata);
  }
}

export type { DistributiveOmit };

/** Options a worker was started with, to tell whether a session must be reloaded. */
export function sameOptions(a: OrtSessionOptions, b: OrtSessionOptions): boolean {
  const keys = new Set([...Object.keys(a), ...Object.keys(b)] as (keyof OrtSessionOptions)[]);
  return [...keys].every((k) => a[k] === b[k]);
}

/** One instance of an ONNX Runtime model: one worker, one session, one batch at a time. */
export class OnnxRuntimeInstance implements BackendInstance {
  readonly name: string;
  private worker: OrtSession;
  /** A fresh worker being started after the last one died. */
  private restarting: Promise<void> | undefined;
  /** Executions accepted and not yet finished; release waits for them. */
  private inFlight = 0;
  private idle: (() => void) | undefined;
  private released: Promise<void> | undefined;
  private readonly onRelease: () => void;

  private readonly scalarOutputs: ReadonlySet<string>;

  /**
   * `scalarOutputs`: outputs the model gives as scalars and the config as dims [1].
   * `restart`: a fresh session for when this one's thread has died; without it a dead session stays dead.
   */
  constructor(name: string, worker: OrtSession, onRelease: () => void, scalarOutputs: readonly string[] = [], private readonly restart?: () => OrtSession) {
    this.name = name;
    this.worker = worker;
    this.onRelease = onRelease;
    this.scalarOutputs = new Set(scalarOutputs);
  }

  /** The live session, started afresh when the last one died. */
  private async session(): Promise<OrtSession> {
    if (this.worker.alive || !this.restart) return this.worker;
    this.restarting ??= (async () => {
      const fresh = this.restart!();
      try {
        await fresh.ready;
      } catch (e) {
        this.restarting = undefined;
        await fresh.terminate();
        throw e;
      }
      const dead = this.worker;
      this.worker = fresh;
      this.restarting = undefined;
      await dead.terminate();
    })();
    await this.restarting;
    return this.worker;
  }

  execute(requests: BatchRequest[]): Promise<BatchResult> {
    // Batches accepted before release() still run; later ones are refused.
    if (this.released) return Promise.reject(internal(`model instance '${this.name}' has been released`));
    // Posted at once: the worker runs its messages one at a time, in order, so a
    // second batch waits in the worker's queue, not behind a main-thread round trip.
    // A counter, not a promise chain: a chain's value would keep every finished
    // batch's results reachable for as long as the instance lives.
    this.inFlight++;
    return this.run(requests).finally(() => {
      if (--this.inFlight === 0) this.idle?.();
    });
  }

  private async run(requests: BatchRequest[]): Promise<BatchResult> {
    const reply = await (await this.session()).call({ type: "execute", requests });
    if (reply.type !== "result") throw internal(`instance '${this.name}': unexpected reply '${reply.type}' from the onnxruntime worker`);
    if (this.scalarOutputs.size) {
      for (const r of reply.results) for (const t of r.outputs ?? []) if (t.shape.length === 0 && this.scalarOutputs.has(t.name)) t.shape = [1];
    }
    return { results: reply.results, timings: reply.timings };
  }

  /** Waits for the batch in progress, then ends the worker. */
  release(): Promise<void> {
    this.released ??= (async () => {
      if (this.inFlight > 0) await new Promise<void>((resolve) => (this.idle = resolve));
      await this.worker.close();
      this.onRelease();
    })();
    return this.released;
  }
}
