/**
 * Main-thread side of an ONNX Runtime instance: a handle on its worker
 * thread, and the {@link BackendInstance} that hands batches to it.
 */
import type { BackendInstance } from "../../core/backend.js";
import { internal } from "../../core/errors.js";
import type { BatchRequest, BatchResult } from "../../core/requests/inference.js";
import type { FromWorker, OrtModelMetadata, OrtSessionOptions, ToWorker, WorkerInit } from "./protocol.js";
import { InstanceThread, type DistributiveOmit } from "../worker-channel/instance-thread.js";
import { AcceptedBatches, Replaceable } from "../instance-life.js";

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
  private readonly session: Replaceable<OrtSession>;
  private readonly batches = new AcceptedBatches();
  private readonly onRelease: () => void;
  private readonly scalarOutputs: ReadonlySet<string>;

  /**
   * `scalarOutputs`: outputs the model gives as scalars and the config as dims [1].
   * `restart`: a fresh session for when this one's thread has died; without it a dead session stays dead.
   */
  constructor(name: string, worker: OrtSession, onRelease: () => void, scalarOutputs: readonly string[] = [], restart?: () => OrtSession) {
    this.name = name;
    this.onRelease = onRelease;
    this.scalarOutputs = new Set(scalarOutputs);
    this.session = new Replaceable(worker, restart && (async () => {
      const fresh = restart();
      try {
        await fresh.ready;
      } catch (e) {
        await fresh.terminate();
        throw e;
      }
      return fresh;
    }));
  }

  /** The current session (tests reach its thread). */
  get worker(): OrtSession {
    return this.session.get();
  }

  execute(requests: BatchRequest[]): Promise<BatchResult> {
    // Sent at once: the worker runs its batches one at a time, in order, so a
    // second batch waits in the worker's ring, not behind a main-thread round trip.
    return this.batches.run(this.name, () => this.run(requests));
  }

  private async run(requests: BatchRequest[]): Promise<BatchResult> {
    const reply = await (await this.session.live()).call({ type: "execute", requests });
    if (reply.type !== "result") throw internal(`instance '${this.name}': unexpected reply '${reply.type}' from the onnxruntime worker`);
    if (this.scalarOutputs.size) {
      for (const r of reply.results) for (const t of r.outputs ?? []) if (t.shape.length === 0 && this.scalarOutputs.has(t.name)) t.shape = [1];
    }
    return { results: reply.results, timings: reply.timings };
  }

  /** Waits for the batches in progress, then ends the worker. */
  release(): Promise<void> {
    return this.batches.release(async () => {
      await this.session.get().close();
      this.onRelease();
    });
  }
}
