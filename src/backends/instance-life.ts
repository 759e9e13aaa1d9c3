/**
 * What every instance that runs in a thread or process of its own does around
 * its batches, whatever runs there (ONNX Runtime, JavaScript, Python): count
 * the batches it has accepted so that release waits for them (a counter, not
 * a promise chain: a chain's value would keep every finished batch's results
 * reachable for as long as the instance lives), replace a thread or process
 * that has died before the next batch, route a decoupled model's responses,
 * and give a closing thread or process a bounded time to finish.
 */
import type { BackendModelContext, InstanceSpec } from "../core/backend.js";
import { TritonError, internal, invalidArg } from "../core/errors.js";
import { blsCallers, type BatchRequest, type ExecutionResult } from "../core/requests/inference.js";
import { modelConfigToJson } from "../core/repository/model-config.js";
import type { ModelConfig } from "../gen/inference/model_config_pb.js";

/** The batches an instance has accepted; release waits for them and refuses new ones. */
export class AcceptedBatches {
  private count = 0;
  private idle: (() => void) | undefined;
  private released: Promise<void> | undefined;

  /** Runs a batch, unless release has begun (then it fails naming `instance`). */
  run<T>(instance: string, batch: () => Promise<T>): Promise<T> {
    if (this.released) return Promise.reject(internal(`model instance '${instance}' has been released`));
    this.count++;
    return batch().finally(() => {
      if (--this.count === 0) this.idle?.();
    });
  }

  /** Once: waits for the batches already accepted, then runs `end`. */
  release(end: () => Promise<void>): Promise<void> {
    this.released ??= (async () => {
      if (this.count > 0) await new Promise<void>((resolve) => (this.idle = resolve));
      await end();
    })();
    return this.released;
  }
}

/** Something that runs in a thread which may die. */
export interface Mortal {
  readonly alive: boolean;
  terminate(): Promise<void>;
}

/** The live thread of an instance, started afresh (once, however many batches ask) after the last one died. */
export class Replaceable<T extends Mortal> {
  private replacing: Promise<T> | undefined;

  /** `start` makes a new thread and resolves once it is ready; without it a dead thread stays dead. */
  constructor(private current: T, private readonly start?: () => Promise<T>) {}

  get(): T {
    return this.current;
  }

  async live(): Promise<T> {
    if (this.current.alive || !this.start) return this.current;
    this.replacing ??= (async () => {
      try {
        const fresh = await this.start!();
        const dead = this.current;
        this.current = fresh;
        void dead.terminate();
        return fresh;
      } finally {
        this.replacing = undefined;
      }
    })();
    return this.replacing;
  }
}

/**
 * The batches an instance's thread or process holds, by call id: the BLS
 * calls it makes are charged to a batch's requests, and a decoupled model's
 * responses are routed to them.
 */
export class BatchCalls {
  private readonly calls = new Map<number, { requests: BatchRequest[]; onResponse?: () => void }>();

  /** `onResponse` runs at each delivery (a deadline that each response restarts, say). */
  add(call: number, requests: BatchRequest[], onResponse?: () => void): void {
    this.calls.set(call, { requests, onResponse });
  }

  remove(call: number): void {
    this.calls.delete(call);
  }

  /** The callers of a BLS request `model` makes while it runs batch `call`. */
  callers(model: string, call: number): string[] {
    return blsCallers(model, this.calls.get(call)?.requests);
  }

  /** One response (or only the final flag) for request `index` of batch `call`. */
  deliver(call: number, index: number, part: ExecutionResult | undefined, final: boolean): void {
    const c = this.calls.get(call);
    c?.onResponse?.();
    c?.requests[index]?.respond?.(part, final);
  }

  /** What a decoupled batch answers core once its responses have all been delivered. */
  static done(requests: readonly BatchRequest[]): ExecutionResult[] {
    return requests.map(() => ({ outputs: [] }));
  }
}

/** Whether `ended` settles within `ms`; the caller ends the thread or process the hard way when not. */
export async function endsWithin(ended: Promise<unknown>, ms: number): Promise<boolean> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<"timeout">((resolve) => {
    timer = setTimeout(() => resolve("timeout"), ms);
    timer.unref();
  });
  const outcome = await Promise.race([ended.then(() => "ended" as const), timeout]);
  clearTimeout(timer);
  return outcome === "ended";
}

/**
 * The `args` of Triton's Python backend `initialize`, which JavaScript models
 * get too; `model_instance_kind` is the caller's (each backend says it its way).
 */
export function initializeArgs(ctx: BackendModelContext, config: ModelConfig, spec: InstanceSpec, kind: string) {
  return {
    model_config: JSON.stringify(modelConfigToJson(config)),
    model_instance_kind: kind,
    model_instance_name: spec.name,
    model_instance_device_id: String(spec.deviceId),
    model_repository: ctx.modelDir,
    model_version: String(ctx.version),
    model_name: ctx.name,
  };
}

/** A model parameter in milliseconds: a positive integer, or `fallback` when absent. */
function millisecondsParameter(config: ModelConfig, name: string, key: string, fallback: number): number {
  const v = config.parameters[key]?.stringValue;
  if (v === undefined) return fallback;
  const n = Number(v);
  if (!Number.isInteger(n) || n <= 0) throw invalidArg(`model '${name}': parameter '${key}' must be a positive integer, got '${v}'`);
  return n;
}

/**
 * The model parameter `execute_timeout_ms` (Tritium's, for models run in a
 * thread or process of their own; default 60 s): how long a batch may go
 * without finishing (or, for a decoupled model, without sending a response)
 * before its requests fail and the thread or process is replaced.
 */
export function executeTimeout(config: ModelConfig, name: string): number {
  return millisecondsParameter(config, name, "execute_timeout_ms", 60_000);
}

/**
 * The model parameter `initialize_timeout_ms` (Tritium's; default 10
 * minutes, for weights that take long to read): how long an instance's
 * `initialize` may run before the load fails and its thread or process is
 * ended, so that one hung model cannot hold the server's start.
 */
export function initializeTimeout(config: ModelConfig, name: string): number {
  return millisecondsParameter(config, name, "initialize_timeout_ms", 600_000);
}

/** Resolves as an instance's `initialize` (`work`) does, or fails its load once `ms` have passed, then `end`s the instance. */
export async function initializeWithin<T>(work: Promise<T>, ms: number, label: string, end: () => Promise<void>): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const late = new Promise<never>((_, reject) => {
    timer = setTimeout(() => {
      reject(invalidArg(`${label}: initialize did not finish within ${ms} ms (parameter initialize_timeout_ms)`));
      // What the abandoned work says once it is ended is of no interest.
      work.catch(() => undefined);
      void end();
    }, ms);
  });
  try {
    return await Promise.race([work, late]);
  } finally {
    clearTimeout(timer);
  }
}

/** One batch's deadline: `touch` when it shows progress, `end` when it is done. */
export interface Deadline {
  touch(): void;
  end(): void;
}

/**
 * Deadlines of the batches a thread or process runs one after another, in
 * the order they were sent: a batch's time starts when the one before it
 * ends, not while it waits behind it.
 */
export class BatchDeadlines {
  private readonly running: { arm: () => void; timer?: NodeJS.Timeout }[] = [];

  /** `label` names the instance in the error a passed deadline gives. */
  constructor(private readonly label: string, private readonly ms: number) {}

  /** Starts the deadline of a batch just sent; `expired` gets the batch's error if it passes. */
  start(expired: (e: TritonError) => void): Deadline {
    const fire = () => expired(new TritonError("INTERNAL", `${this.label}: execute did not finish within ${this.ms} ms (execute_timeout_ms); the instance is restarted`));
    const entry: { arm: () => void; timer?: NodeJS.Timeout } = {
      arm: () => {
        clearTimeout(entry.timer);
        entry.timer = setTimeout(fire, this.ms);
      },
    };
    this.running.push(entry);
    if (this.running[0] === entry) entry.arm();
    return {
      touch: () => {
        if (entry.timer) entry.arm();
      },
      end: () => {
        clearTimeout(entry.timer);
        const i = this.running.indexOf(entry);
        if (i < 0) return;
        this.running.splice(i, 1);
        if (i === 0) this.running[0]?.arm();
      },
    };
  }
}

/**
 * Tells `cancel(index)` when the client of request `index` goes away while
 * its batch runs (so the model can see it and stop); the function returned
 * stops listening.
 */
export function watchCancellation(requests: readonly BatchRequest[], cancel: (index: number) => void): () => void {
  const listeners = requests.map((r, k) => {
    if (!r.signal) return undefined;
    const onAbort = () => cancel(k);
    r.signal.addEventListener("abort", onAbort, { once: true });
    return onAbort;
  });
  return () => {
    for (const [k, l] of listeners.entries()) if (l) requests[k]!.signal!.removeEventListener("abort", l);
  };
}
