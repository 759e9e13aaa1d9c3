import type { BackendInstance } from "../backend.js";
import { Scheduler, type ExecutionObserver, type QueuedRequest, type SchedulerOptions } from "./scheduler.js";

export interface DynamicBatcherOptions extends SchedulerOptions {
  maxBatchSize: number;
  preferredBatchSizes: number[];
  maxQueueDelayUs: number;
}

/**
 * Triton's dynamic batcher: combines queued requests of a model into one
 * execution of up to `max_batch_size`, in queue order (priority level, then
 * arrival). A batch leaves as soon as it is full or reaches a preferred
 * size; otherwise it waits until its oldest request has waited
 * `max_queue_delay_microseconds` (0: take whatever is queued now). Requests
 * whose non-batch shapes differ cannot share a batch; the first one that
 * does not fit ends the batch.
 */
export class DynamicBatcher extends Scheduler {
  /** The pending re-check of the queue, and how to cancel it. */
  private timer: { cancel(): void } | undefined;
  private readonly preferred: Set<number>;
  /** A sub-millisecond delay has had its one round of I/O. */
  private delayOver = false;

  constructor(modelName: string, instances: BackendInstance[], onExecution: ExecutionObserver, private readonly options: DynamicBatcherOptions) {
    super(modelName, instances, onExecution, options);
    this.preferred = new Set(options.preferredBatchSizes);
  }

  protected takeBatch(pipelined: boolean): QueuedRequest[] | undefined {
    const head = this.queue.first();
    if (!head) return undefined;
    const batch: QueuedRequest[] = [];
    let total = 0;
    let full = false;
    for (const q of this.queue.ordered()) {
      if (batch.length > 0 && !sameShapes(head, q)) {
        full = true; // the batch cannot grow past an incompatible request
        break;
      }
      if (total + q.prepared.batchSize > this.options.maxBatchSize) {
        full = true;
        break;
      }
      batch.push(q);
      total += q.prepared.batchSize;
      if (total === this.options.maxBatchSize) {
        full = true;
        break;
      }
    }
    const ready = full || this.preferred.has(total);
    // Behind a running batch, keep gathering unless the batch is already complete:
    // the requests that arrive meanwhile make a larger batch.
    if (pipelined && !ready) return undefined;
    const waitedUs = Number(process.hrtime.bigint() - head.enqueuedNs) / 1000;
    if (!ready && !this.delayOver && waitedUs < this.options.maxQueueDelayUs) {
      this.arm(this.options.maxQueueDelayUs - waitedUs);
      return undefined;
    }
    this.disarm();
    this.delayOver = false;
    return batch;
  }

  /**
   * Re-checks the queue when the oldest request's delay is up. Timers have a
   * 1 ms resolution, so a shorter wait re-checks after the current round of
   * I/O instead: requests that arrived together still share the batch.
   */
  private arm(us: number): void {
    if (this.timer) return;
    const short = us < 1000;
    const fire = () => {
      this.timer = undefined;
      // After one round of I/O a sub-millisecond delay counts as spent: no busy polling.
      if (short) this.delayOver = true;
      this.dispatch();
    };
    if (short) {
      const immediate = setImmediate(fire);
      this.timer = { cancel: () => clearImmediate(immediate) };
    } else {
      const timeout = setTimeout(fire, us / 1000);
      this.timer = { cancel: () => clearTimeout(timeout) };
    }
  }

  private disarm(): void {
    this.timer?.cancel();
    this.timer = undefined;
  }
}

function sameShapes(a: QueuedRequest, b: QueuedRequest): boolean {
  const ai = a.prepared.batch.inputs;
  const bi = b.prepared.batch.inputs;
  if (ai.length !== bi.length) return false;
  for (let i = 0; i < ai.length; i++) {
    const x = ai[i]!;
    const y = bi.find((t) => t.name === x.name);
    if (!y || x.shape.length !== y.shape.length) return false;
    for (let d = 1; d < x.shape.length; d++) if (x.shape[d] !== y.shape[d]) return false;
  }
  return true;
}
