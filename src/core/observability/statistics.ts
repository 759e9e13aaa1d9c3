import type { FailureReason } from "./events.js";

/**
 * Per-model-version counters behind Triton's statistics extension. Times are
 * nanoseconds. Everything here is measured by core on the request path; the
 * Prometheus metrics read the same numbers, so the two never disagree.
 */
export interface Duration {
  count: number;
  ns: number;
}

export interface BatchStat {
  batch_size: number;
  compute_input: Duration;
  compute_infer: Duration;
  compute_output: Duration;
}

const d = (): Duration => ({ count: 0, ns: 0 });

export class ModelStatistics {
  /** ms since epoch of the last completed inference; 0 if none yet. */
  lastInference = 0;
  inferenceCount = 0;
  executionCount = 0;
  readonly success = d();
  readonly fail = d();
  readonly queue = d();
  readonly computeInput = d();
  readonly computeInfer = d();
  readonly computeOutput = d();
  readonly cacheHit = d();
  readonly cacheMiss = d();
  /** Failures by Triton's metric reason: REJECTED, CANCELED, BACKEND, OTHER. */
  readonly failuresByReason = new Map<FailureReason, number>();
  readonly batches = new Map<number, BatchStat>();

  /**
   * One request finished successfully, `totalNs` after it arrived. As in
   * Triton, the inference count and the per-request compute times are counted
   * here, per successful request: each request of a batch is charged the whole
   * execution's compute times, and `inferenceCount` adds the request's own
   * batch size.
   */
  recordSuccess(totalNs: number, queueNs: number, batchSize: number, inputNs: number, inferNs: number, outputNs: number): void {
    this.inferenceCount += batchSize;
    add(this.success, totalNs);
    add(this.queue, queueNs);
    add(this.computeInput, inputNs);
    add(this.computeInfer, inferNs);
    add(this.computeOutput, outputNs);
  }

  /** One request failed after reaching the scheduler. */
  /**
   * A request answered from the response cache: a success with no queue or
   * compute time, counted in cache_hit (Triton's UpdateSuccessCacheHit).
   */
  recordCacheHit(totalNs: number, lookupNs: number, nowMs: number): void {
    add(this.success, totalNs);
    add(this.cacheHit, lookupNs);
    this.lastInference = nowMs;
  }

  /** A cache lookup that missed, and the time spent looking and inserting. */
  recordCacheMiss(ns: number): void {
    add(this.cacheMiss, ns);
  }

  recordFailure(totalNs: number, reason: FailureReason): void {
    add(this.fail, totalNs);
    this.failuresByReason.set(reason, (this.failuresByReason.get(reason) ?? 0) + 1);
  }

  /**
   * One backend execution of `batchSize` inferences that answered at least
   * one request (Triton's batch statistics; `last_inference` moves here).
   */
  recordExecution(batchSize: number, inputNs: number, inferNs: number, outputNs: number, nowMs: number): void {
    this.executionCount++;
    this.lastInference = nowMs;
    let b = this.batches.get(batchSize);
    if (!b) {
      b = { batch_size: batchSize, compute_input: d(), compute_infer: d(), compute_output: d() };
      this.batches.set(batchSize, b);
    }
    add(b.compute_input, inputNs);
    add(b.compute_infer, inferNs);
    add(b.compute_output, outputNs);
  }
}

function add(x: Duration, ns: number): void {
  x.count++;
  x.ns += Math.max(0, Math.round(ns));
}
