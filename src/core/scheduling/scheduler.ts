import type { CancelSignal } from "../requests/cancel-signal.js";
import type { BackendInstance } from "../backend.js";
import { TritonError, asTritonError, unavailable } from "../errors.js";
import type { ExecutionResult, ExecutionTimings } from "../requests/inference.js";
import type { SchedulingParams } from "../requests/request-params.js";
import { NO_POLICY, RequestQueue, type QueueOptions } from "./request-queue.js";
import type { PreparedRequest } from "../requests/request-validator.js";

/** A request waiting in a scheduler queue, with the promise it settles. */
export interface QueuedRequest {
  prepared: PreparedRequest;
  /** process.hrtime.bigint() when it was enqueued. */
  enqueuedNs: bigint;
  level?: number;
  deadlineNs?: bigint;
  /** Arrival order, for preserve_ordering. */
  seq: number;
  /** Removes the abort listener once the request has left the queue. */
  detach?: () => void;
  settle(outcome: ScheduleOutcome): void;
}

/** What a scheduled request ends with: its result, or an error before execution. */
export type ScheduleOutcome =
  | { result: ExecutionResult; queueNs: number; batchSize: number; timings?: ExecutionTimings }
  | { error: TritonError; queueNs: number };

/** Observer of executions, so statistics stay out of the scheduling logic. */
export type ExecutionObserver = (batchInferences: number, timings: ExecutionTimings | undefined) => void;

/**
 * Triton's scheduler seam: a model never knows which scheduler it has
 * (default, dynamic batcher, sequence batcher).
 */
export interface RequestScheduler {
  /** Queues a validated request; resolves when it has executed or failed. */
  enqueue(prepared: PreparedRequest, signal: CancelSignal | undefined, params: SchedulingParams): Promise<ScheduleOutcome>;
  /** Requests waiting for an instance (Triton's pending request count). */
  readonly queued: number;
  /** Requests waiting or executing. */
  readonly pending: number;
  /** Refuses new requests; resolves once nothing is queued or executing. */
  stop(): Promise<void>;
}

export interface SchedulerOptions {
  queue?: QueueOptions;
  /** Answer requests in arrival order (dynamic_batching.preserve_ordering). */
  preserveOrdering?: boolean;
  /**
   * Batches an instance may hold at once (default 8). The next batches already
   * wait in the instance's thread when the current one finishes, so the
   * instance never idles for a main-thread round trip. Requests handed to an
   * instance can no longer be cancelled or reordered, so the depth is bounded.
   */
  pipelineDepth?: number;
}

/**
 * The instance pool and queue shared by the default scheduler and the
 * dynamic batcher; they differ only in how a batch is taken from the queue.
 *
 *   enqueue → RequestQueue (priority levels, timeouts) → takeBatch → instance
 *   (up to pipelineDepth batches per instance) → settle (in arrival order
 *   when preserve_ordering)
 */
export abstract class Scheduler implements RequestScheduler {
  protected readonly queue: RequestQueue<QueuedRequest>;
  /** Batches each instance holds now. */
  private readonly load: number[];
  private readonly depth: number;
  private busy = 0;
  private stopped = false;
  private drainWaiters: (() => void)[] = [];
  private nextSeq = 0;
  private expiryTimer: NodeJS.Timeout | undefined;
  private expiryAt: bigint | undefined;
  /** preserve_ordering: outcomes that finished before an earlier request. */
  private readonly held = new Map<number, { item: QueuedRequest; outcome: ScheduleOutcome }>();
  private readonly open = new Set<number>();
  private readonly preserveOrdering: boolean;

  constructor(
    protected readonly modelName: string,
    private readonly instances: BackendInstance[],
    private readonly onExecution: ExecutionObserver,
    options: SchedulerOptions = {},
  ) {
    this.queue = new RequestQueue(options.queue ?? { priorityLevels: 0, defaultPriorityLevel: 0, defaultPolicy: NO_POLICY, levelPolicies: new Map() });
    this.load = instances.map(() => 0);
    this.depth = Math.max(1, options.pipelineDepth ?? 8);
    this.preserveOrdering = options.preserveOrdering ?? false;
  }

  enqueue(prepared: PreparedRequest, signal: CancelSignal | undefined, params: SchedulingParams): Promise<ScheduleOutcome> {
    return new Promise((resolve) => {
      if (this.stopped) return resolve({ error: unavailable(`model '${this.modelName}' is unloading`), queueNs: 0 });
      if (signal?.aborted) return resolve({ error: this.cancelled(), queueNs: 0 });
      const item: QueuedRequest = { prepared, enqueuedNs: process.hrtime.bigint(), seq: this.nextSeq++, settle: resolve };
      try {
        this.queue.push(item, params.priority, params.timeoutUs, this.modelName);
      } catch (e) {
        return resolve({ error: asTritonError(e), queueNs: 0 });
      }
      if (this.preserveOrdering) this.open.add(item.seq);
      // A client that goes away while its request waits takes it out of the queue.
      if (signal) {
        const onAbort = () => this.cancel(item);
        signal.addEventListener("abort", onAbort, { once: true });
        item.detach = () => signal.removeEventListener("abort", onAbort);
      }
      this.dispatch();
      this.armExpiry();
    });
  }

  get queued(): number {
    return this.queue.length;
  }

  get pending(): number {
    return this.queue.length + this.busy;
  }

  async stop(): Promise<void> {
    this.stopped = true;
    if (this.pending === 0) return;
    await new Promise<void>((r) => this.drainWaiters.push(r));
  }

  /**
   * Removes and returns the next batch to run, or undefined to wait.
   * `pipelined` is true when the batch would queue behind a running one
   * (no instance is idle): a batcher may prefer to keep gathering then.
   */
  protected abstract takeBatch(pipelined: boolean): QueuedRequest[] | undefined;

  /** Sends batches to instances while both are available. Batchers call it when a wait ends. */
  protected dispatch(): void {
    this.expireQueued();
    for (;;) {
      if (this.queue.length === 0) return;
      const instance = this.pickInstance();
      if (instance < 0) return;
      const batch = this.takeBatch(this.load[instance]! > 0);
      if (!batch || batch.length === 0) return;
      this.queue.remove(batch);
      this.load[instance]!++;
      this.busy++;
      void this.run(instance, batch);
    }
  }

  /** The least loaded instance with room, or -1. */
  private pickInstance(): number {
    let best = -1;
    for (let i = 0; i < this.load.length; i++) {
      if (this.load[i]! < this.depth && (best < 0 || this.load[i]! < this.load[best]!)) best = i;
    }
    return best;
  }

  private cancelled(): TritonError {
    return new TritonError("CANCELLED", `request for model '${this.modelName}' was cancelled`);
  }

  private cancel(item: QueuedRequest): void {
    const before = this.queue.length;
    this.queue.remove([item]);
    if (this.queue.length === before) return; // already executing
    this.finish(item, { error: this.cancelled(), queueNs: Number(process.hrtime.bigint() - item.enqueuedNs) });
    this.checkDrained();
  }

  /** Applies queue timeouts: REJECT answers "Request timeout expired"; DELAY moves to the back. */
  private expireQueued(): void {
    const now = process.hrtime.bigint();
    for (const item of this.queue.expire(now)) {
      this.finish(item, { error: unavailable("Request timeout expired"), queueNs: Number(now - item.enqueuedNs) });
    }
  }

  private armExpiry(): void {
    const next = this.queue.nextDeadline();
    if (next === undefined || (this.expiryAt !== undefined && this.expiryAt <= next)) return;
    clearTimeout(this.expiryTimer);
    this.expiryAt = next;
    const ms = Math.max(0, Number(next - process.hrtime.bigint()) / 1e6);
    this.expiryTimer = setTimeout(() => {
      this.expiryAt = undefined;
      this.dispatch();
      this.checkDrained();
      this.armExpiry();
    }, ms + 0.5);
  }

  private async run(instance: number, batch: QueuedRequest[]): Promise<void> {
    const start = process.hrtime.bigint();
    const size = batch.reduce((n, q) => n + q.prepared.batchSize, 0);
    try {
      const { results, timings } = await this.instances[instance]!.execute(batch.map((q) => q.prepared.batch));
      // As Triton's backends do, an execution that answered no request is not counted.
      if (results.some((r) => r && !r.error)) this.onExecution(size, timings);
      batch.forEach((q, i) => {
        const result = results[i] ?? { error: { code: "INTERNAL", message: `instance ${this.instances[instance]!.name} returned no result` } };
        this.finish(q, { result, queueNs: Number(start - q.enqueuedNs), batchSize: size, timings });
      });
    } catch (e) {
      const error = asTritonError(e);
      for (const q of batch) this.finish(q, { result: { error: error.toJSON() }, queueNs: Number(start - q.enqueuedNs), batchSize: size });
    } finally {
      this.busy--;
      this.load[instance]!--;
      this.dispatch();
      this.checkDrained();
    }
  }

  /** Settles a request; with preserve_ordering, holds it until every earlier request is settled. */
  private finish(item: QueuedRequest, outcome: ScheduleOutcome): void {
    item.detach?.();
    if (!this.preserveOrdering) return item.settle(outcome);
    this.held.set(item.seq, { item, outcome });
    // `open` iterates in arrival order (a Set keeps insertion order).
    for (const seq of this.open) {
      const h = this.held.get(seq);
      if (!h) break;
      this.held.delete(seq);
      this.open.delete(seq);
      h.item.settle(h.outcome);
    }
  }

  private checkDrained(): void {
    if (this.pending === 0 && this.drainWaiters.length > 0) {
      for (const w of this.drainWaiters.splice(0)) w();
    }
  }
}

/** Triton's default scheduler: one request per execution, to any idle instance. */
export class DefaultScheduler extends Scheduler {
  protected takeBatch(): QueuedRequest[] | undefined {
    const next = this.queue.first();
    return next ? [next] : undefined;
  }
}
