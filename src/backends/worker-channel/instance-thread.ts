/**
 * The main thread's handle on one instance's worker thread, for any backend
 * whose instances run in worker threads (ONNX Runtime, JavaScript models):
 * the thread, its {@link MainEnd}, and the calls waiting for replies.
 */
import { Worker, type MessagePort } from "node:worker_threads";
import { type TritonError, internal } from "../../core/errors.js";
import { MainEnd, type ChannelMemory } from "./channel.js";
import { Replies, type ErrorReply, type Message } from "./replies.js";
import { endsWithin } from "../instance-life.js";

/** How long `close` waits for a worker to finish cleanly before terminating it. */
const CLOSE_TIMEOUT_MS = 10_000;

export type DistributiveOmit<T, K extends keyof T> = T extends unknown ? Omit<T, K> : never;

/** What an instance thread is started with. */
export interface InstanceThreadOptions<Init> {
  /** The compiled worker script. */
  url: URL;
  /** Its `workerData`, to which the channel's memory is added as `channel`. */
  init: Init;
  /** Names the instance in error messages until `setLabel`. */
  label: string;
  /** What the worker is, in error messages ("onnxruntime worker"). */
  kind: string;
  /** Ports in `init` that move to the worker. */
  transferList?: MessagePort[];
  /** Messages from the worker that answer no call (e.g. a decoupled model's responses). */
  onOther?: (msg: FromWorkerMessage) => void;
}

type FromWorkerMessage = Message & Record<string, unknown>;

/**
 * A worker thread reached through a {@link MainEnd} (batches through shared
 * memory, the rest by postMessage). Calls are matched to replies by id; the
 * worker's first reply (READY_ID) says it has started. While nothing is
 * pending the worker is unref'd, so an idle instance never keeps the process
 * alive on its own. A `{ type: "close" }` call asks the worker to end.
 */
export class InstanceThread<ToW extends Message, FromW extends Message> {
  /** The worker's first reply; rejects when it fails to start. */
  readonly started: Promise<Exclude<FromW, ErrorReply>>;
  /** Set once the worker is gone; every later call fails with it. */
  private dead: TritonError | undefined;
  private closing = false;
  private readonly replies = new Replies<FromW>();
  protected readonly worker: Worker;
  private readonly channel: MainEnd<ToW, FromW>;
  private readonly exited: Promise<void>;
  private label: string;
  private readonly kind: string;

  constructor(options: InstanceThreadOptions<object>) {
    this.label = options.label;
    this.kind = options.kind;
    this.channel = new MainEnd<ToW, FromW>((msg) => {
      if (this.replies.answer(msg as FromW)) this.unrefWhenIdle();
      else options.onOther?.(msg as unknown as FromWorkerMessage);
    });
    this.worker = startWorker(options.url, { ...options.init, channel: this.channel.memory satisfies ChannelMemory }, options.transferList ?? []);
    this.channel.connect(this.worker);
    this.started = this.replies.ready;
    this.worker.on("error", (e) => this.fail(internal(`${this.label}: ${this.kind} failed: ${e.message}`)));
    this.exited = new Promise((resolve) => {
      this.worker.once("exit", (code) => {
        this.channel.close();
        if (!this.closing) this.fail(internal(`${this.label}: ${this.kind} thread exited unexpectedly (exit code ${code})`));
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
  call(msg: DistributiveOmit<ToW, "id">, transfer: ArrayBuffer[] = []): Promise<Exclude<FromW, ErrorReply>> {
    return this.send(msg, transfer).reply;
  }

  /** Sends a message; its id (which the worker's other messages about it carry) and its reply. */
  send(msg: DistributiveOmit<ToW, "id">, transfer: ArrayBuffer[] = []): { id: number; reply: Promise<Exclude<FromW, ErrorReply>> } {
    if (this.dead) return { id: -1, reply: Promise.reject(this.dead) };
    const { id, reply } = this.replies.open();
    this.worker.ref();
    try {
      this.channel.send({ ...msg, id } as unknown as ToW, transfer);
    } catch (e) {
      this.replies.reject(id, internal(`${this.label}: cannot send to the ${this.kind}: ${(e as Error).message}`));
      this.unrefWhenIdle();
    }
    return { id, reply };
  }

  /** Asks the worker to finish and end; terminates it if it does not in time. */
  async close(): Promise<void> {
    if (this.closing) return this.exited;
    this.worker.ref();
    if (this.dead) {
      this.closing = true;
      await this.worker.terminate();
      return this.exited;
    }
    const closed = this.call({ type: "close" } as DistributiveOmit<ToW, "id">).catch(() => undefined);
    this.closing = true;
    if (!(await endsWithin(closed.then(() => this.exited), CLOSE_TIMEOUT_MS))) await this.worker.terminate();
    await this.exited;
  }

  /** Ends the worker at once (a failed load, a hung model, or a model released before its instances). */
  async terminate(): Promise<void> {
    this.closing = true;
    this.worker.ref();
    await this.worker.terminate();
    await this.exited;
  }

  /** Fails every pending call with `e` and ends the worker (a call that took too long). */
  async abandon(e: TritonError): Promise<void> {
    this.fail(e);
    await this.terminate();
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

function startWorker(url: URL, workerData: object, transferList: MessagePort[]): Worker {
  // `--input-type` (from `node --input-type=module -e ...`) would apply to the worker's file.
  let execArgv = workerExecArgv ?? process.execArgv.filter((a) => !/^--(input-type|eval|print)\b/.test(a));
  for (;;) {
    try {
      const worker = new Worker(url, { workerData, execArgv, transferList });
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
