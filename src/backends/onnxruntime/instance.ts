/**
 * Main-thread side of an ONNX Runtime instance: a handle on its worker
 * thread, and the {@link BackendInstance} that packs batches for it.
 */
import { Worker } from "node:worker_threads";
import type { BackendInstance } from "../../core/backend.js";
import { type TritonError, internal } from "../../core/errors.js";
import type { BatchRequest, BatchResult } from "../../core/requests/inference.js";
import type { FromWorker, OrtModelMetadata, OrtSessionOptions, ToWorker, WorkerInit } from "./protocol.js";
import { Replies, type Reply } from "./replies.js";
import { MainEnd } from "../worker-channel/channel.js";

/** The compiled worker, next to this file in dist/. */
const WORKER_URL = new URL("./instance-worker.js", import.meta.url);

/** How long `close` waits for a worker to finish cleanly before terminating it. */
const CLOSE_TIMEOUT_MS = 10_000;


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

/**
 * A worker thread that owns one ONNX Runtime session, reached through a
 * {@link MainEnd} (batches through shared memory, the rest by postMessage).
 * Requests are matched to replies by id. While nothing is pending the worker
 * is unref'd, so an idle instance never keeps the process alive on its own.
 */
export class OrtWorker implements OrtSession {
  readonly ready: Promise<OrtModelMetadata>;
  /** Set once the worker is gone; every later call fails with it. */
  private dead: TritonError | undefined;
  private closing = false;
  private readonly replies = new Replies();
  private readonly worker: Worker;
  private readonly channel: MainEnd<ToWorker, FromWorker>;
  private readonly exited: Promise<void>;
  private label: string;

  constructor(init: Omit<WorkerInit, "channel">) {
    this.label = `model '${init.model}' version ${init.version}`;
    this.channel = new MainEnd<ToWorker, FromWorker>((msg) => {
      if (this.replies.answer(msg)) this.unrefWhenIdle();
    });
    this.worker = startWorker({ ...init, channel: this.channel.memory });
    this.channel.connect(this.worker);
    this.ready = this.replies.ready;
    this.worker.on("error", (e) => this.fail(internal(`${this.label}: onnxruntime worker failed: ${e.message}`)));
    this.exited = new Promise((resolve) => {
      this.worker.once("exit", (code) => {
        this.channel.close();
        if (!this.closing) this.fail(internal(`${this.label}: onnxruntime worker thread exited unexpectedly (exit code ${code})`));
        else this.fail(internal(`${this.label}: the instance has been released`));
        resolve();
      });
    });
  }

  /** Names the instance in later error messages. */
  setLabel(label: string): void {
    this.label = label;
  }

  get alive(): boolean {
    return !this.dead && !this.closing;
  }

  /** Sends a message and resolves with the worker's reply to it. */
  call(msg: DistributiveOmit<ToWorker, "id">, transfer: ArrayBuffer[] = []): Promise<Reply> {
    if (this.dead) return Promise.reject(this.dead);
    const { id, reply } = this.replies.open();
    this.worker.ref();
    try {
      this.channel.send({ ...msg, id } as ToWorker, transfer);
    } catch (e) {
      this.replies.reject(id, internal(`${this.label}: cannot send to the onnxruntime worker: ${(e as Error).message}`));
      this.unrefWhenIdle();
    }
    return reply;
  }

  /** Asks the worker to release its session and end; terminates it if it does not. */
  async close(): Promise<void> {
    if (this.closing) return this.exited;
    this.worker.ref();
    if (this.dead) {
      this.closing = true;
      await this.worker.terminate();
      return this.exited;
    }
    const closed = this.call({ type: "close" }).catch(() => undefined);
    this.closing = true;
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<"timeout">((resolve) => {
      timer = setTimeout(() => resolve("timeout"), CLOSE_TIMEOUT_MS);
      timer.unref();
    });
    if ((await Promise.race([closed.then(() => this.exited), timeout])) === "timeout") await this.worker.terminate();
    clearTimeout(timer);
    await this.exited;
  }

  /** Ends the worker at once (a failed load, or a model released before its instances). */
  async terminate(): Promise<void> {
    this.closing = true;
    this.worker.ref();
    await this.worker.terminate();
    await this.exited;
  }

  /** An idle instance must not keep the process alive; one that is closing stays ref'd so `await close()` keeps the loop. */
  private unrefWhenIdle(): void {
    if (this.replies.size === 0 && !this.closing) this.worker.unref();
  }

  private fail(e: TritonError): void {
    this.dead ??= e;
    this.replies.rejectAll(this.dead);
  }
}

/**
 * The server's own Node.js flags that a worker accepts. Process-wide flags
 * (V8's `--trace-gc`, `--expose-gc`, ...) are refused by `new Worker`, yet
 * they already apply to every thread, so they are dropped rather than making
 * every model fail to load when the server is run under a profiler.
 */
let workerExecArgv: string[] | undefined;

function startWorker(init: WorkerInit): Worker {
  // `--input-type` (from `node --input-type=module -e ...`) would apply to the worker's file.
  let execArgv = workerExecArgv ?? process.execArgv.filter((a) => !/^--(input-type|eval|print)\b/.test(a));
  for (;;) {
    try {
      const worker = new Worker(WORKER_URL, { workerData: init, execArgv });
      workerExecArgv = execArgv;
      return worker;
    } catch (e) {
      const refused = (e as NodeJS.ErrnoException).code === "ERR_WORKER_INVALID_EXEC_ARGV" ? invalidFlags((e as Error).message) : [];
      const kept: string[] = execArgv.filter((a) => !refused.includes(a) && !refused.includes(a.split("=")[0]!));
      if (kept.length === execArgv.length) throw e;
      execArgv = kept;
    }
  }
}

/** The flags named by Node's "Initiated Worker with invalid execArgv flags: --a, --b". */
function invalidFlags(message: string): string[] {
  const list = message.split(":").slice(1).join(":");
  return list.split(/[\s,]+/).filter((f) => f.startsWith("-"));
}

export type DistributiveOmit<T, K extends keyof T> = T extends unknown ? Omit<T, K> : never;

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
