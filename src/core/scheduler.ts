import type { BackendInstance } from "./backend.js";
import { TritonError, asTritonError, unavailable } from "./errors.js";
import type { ExecutionResult, ExecutionTimings } from "./inference.js";
import type { PreparedRequest } from "./request-validator.js";

/** A request waiting in a scheduler queue, with the promise it settles. */
export interface QueuedRequest {
  prepared: PreparedRequest;
  /** process.hrtime.bigint() when it was enqueued. */
  enqueuedNs: bigint;
  signal?: AbortSignal;
  settle(outcome: ScheduleOutcome): void;
}

/** What a scheduled request ends with: its result, or an error before execution. */
export type ScheduleOutcome =
  | { result: ExecutionResult; queueNs: number; batchSize: number; timings?: ExecutionTimings }
  | { error: TritonError; queueNs: number };

/** Observer of executions, so statistics stay out of the scheduling logic. */
export type ExecutionObserver = (batchInferences: number, timings: ExecutionTimings | undefined) => void;

/**
 * Triton's scheduler seam: a model never knows which scheduler it has. The
 * default scheduler sends each request alone to the next idle instance; the
 * dynamic batcher combines queued requests. Both share the instance pool and
 * queue handling here and differ only in how a batch is taken from the queue.
 */
export abstract class Scheduler {
  protected readonly queue: QueuedRequest[] = [];
  private readonly idle: BackendInstance[];
  private busy = 0;
  private stopped = false;
  private drainWaiters: (() => void)[] = [];

  constructor(
    protected readonly modelName: string,
    instances: BackendInstance[],
    private readonly onExecution: ExecutionObserver,
  ) {
    this.idle = [...instances];
  }

  /** Queues a validated request; resolves when it has executed or failed. */
  enqueue(prepared: PreparedRequest, signal?: AbortSignal): Promise<ScheduleOutcome> {
    return new Promise((resolve) => {
      if (this.stopped) {
        resolve({ error: unavailable(`model '${this.modelName}' is unloading`), queueNs: 0 });
        return;
      }
      const item: QueuedRequest = { prepared, enqueuedNs: process.hrtime.bigint(), signal, settle: resolve };
      if (signal) {
        if (signal.aborted) {
          resolve({ error: new TritonError("CANCELLED", `request for model '${this.modelName}' was cancelled`), queueNs: 0 });
          return;
        }
        // A client that goes away while its request waits takes it out of the queue.
        signal.addEventListener("abort", () => this.cancel(item), { once: true });
      }
      this.queue.push(item);
      this.dispatch();
    });
  }

  /** Requests waiting for an instance (Triton's pending request count). */
  get queued(): number {
    return this.queue.length;
  }

  /** Requests waiting or executing. */
  get pending(): number {
    return this.queue.length + this.busy;
  }

  /** Resolves once nothing is queued or executing. New requests are refused after stop(). */
  async stop(): Promise<void> {
    this.stopped = true;
    if (this.pending === 0) return;
    await new Promise<void>((r) => this.drainWaiters.push(r));
  }

  /** Removes and returns the next batch to run, or undefined to wait. */
  protected abstract takeBatch(): QueuedRequest[] | undefined;

  /** Called by batchers that wait for a timer to expire. */
  protected dispatch(): void {
    while (this.idle.length > 0 && this.queue.length > 0) {
      const batch = this.takeBatch();
      if (!batch || batch.length === 0) return;
      const instance = this.idle.shift()!;
      this.busy++;
      void this.run(instance, batch);
    }
  }

  private cancel(item: QueuedRequest): void {
    const i = this.queue.indexOf(item);
    if (i < 0) return;
    this.queue.splice(i, 1);
    item.settle({
      error: new TritonError("CANCELLED", `request for model '${this.modelName}' was cancelled`),
      queueNs: Number(process.hrtime.bigint() - item.enqueuedNs),
    });
    this.checkDrained();
  }

  private async run(instance: BackendInstance, batch: QueuedRequest[]): Promise<void> {
    const start = process.hrtime.bigint();
    const size = batch.reduce((n, q) => n + q.prepared.batchSize, 0);
    try {
      const { results, timings } = await instance.execute(batch.map((q) => q.prepared.batch));
      // As Triton's backends do, an execution that answered no request is not counted.
      if (results.some((r) => r && !r.error)) this.onExecution(size, timings);
      batch.forEach((q, i) => {
        const result = results[i] ?? { error: { code: "INTERNAL", message: `instance ${instance.name} returned no result` } };
        q.settle({ result, queueNs: Number(start - q.enqueuedNs), batchSize: size, timings });
      });
    } catch (e) {
      const error = asTritonError(e);
      for (const q of batch) q.settle({ result: { error: error.toJSON() }, queueNs: Number(start - q.enqueuedNs), batchSize: size });
    } finally {
      this.busy--;
      this.idle.push(instance);
      this.dispatch();
      this.checkDrained();
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
    const next = this.queue.shift();
    return next ? [next] : undefined;
  }
}
