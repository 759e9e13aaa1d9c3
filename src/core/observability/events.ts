/**
 * Named events that core publishes on `node:diagnostics_channel`, so that
 * metrics, tracing and logging observe the request path instead of being
 * edited into it (STYLE point 4). Core publishes; frontends subscribe.
 *
 * ```
 *   ModelVersion.infer ──► tritium:inference:request    one per request that reached the scheduler
 *   Scheduler.run      ──► tritium:inference:execution  one per backend execution (a batch)
 * ```
 *
 * Publishing costs one `hasSubscribers` check when nobody listens: the event
 * object is only built for a subscriber. Subscribers run synchronously on the
 * request path, so they must be cheap and must not throw.
 *
 * @example
 * import diagnostics_channel from "node:diagnostics_channel";
 * diagnostics_channel.subscribe("tritium:inference:request", (m) => {
 *   const e = m as InferenceRequestEvent;
 *   if (!e.success) console.log(`${e.model}:${e.version} failed (${e.reason})`);
 * });
 */
import diagnostics_channel from "node:diagnostics_channel";
import type { Tensor } from "../tensors/tensor.js";

/** Triton's `reason` label of `nv_inference_request_failure`. */
export type FailureReason = "REJECTED" | "CANCELED" | "BACKEND" | "OTHER";

/** Every reason, in the order Triton creates the failure counters. */
export const FAILURE_REASONS: readonly FailureReason[] = ["REJECTED", "CANCELED", "BACKEND", "OTHER"];

export const REQUEST_CHANNEL = "tritium:inference:request";
export const EXECUTION_CHANNEL = "tritium:inference:execution";

/**
 * One inference request finished (answered or failed) after it reached the
 * scheduler: exactly the requests that Triton's statistics count. Requests
 * refused by validation never reach the scheduler and are not published, as
 * Triton does not count them either. Times are nanoseconds.
 */
export interface InferenceRequestEvent {
  readonly model: string;
  readonly version: string;
  /**
   * The model version that served the request: the same object for every
   * event of one loaded version, a different one after a reload or in another
   * server in the same process. Observers use it to tell servers apart.
   */
  readonly source: object;
  readonly id: string | undefined;
  readonly success: boolean;
  /** Set when `success` is false. */
  readonly reason: FailureReason | undefined;
  /** The request's own batch size (1 for a model that does not batch). */
  readonly batchSize: number;
  /** From arrival in core to the answer (or the failure). */
  readonly totalNs: number;
  readonly queueNs: number;
  /** The phases of the execution the request ran in (0 if it never ran). */
  readonly computeInputNs: number;
  readonly computeInferNs: number;
  readonly computeOutputNs: number;
  /**
   * `process.hrtime.bigint()` (monotonic, as Triton's steady clock) when the
   * request arrived in core: the trace extension's REQUEST_START. With
   * `totalNs` it gives REQUEST_END.
   */
  readonly requestStartNs: bigint;
  /**
   * `process.hrtime.bigint()` when the request was handed to the scheduler:
   * QUEUE_START. COMPUTE_START is `queueStartNs + queueNs`, and the compute
   * phases follow one another from there.
   */
  readonly queueStartNs: bigint;
  /** The request's inputs as the client sent them (views; read them synchronously). */
  readonly inputs: readonly Tensor[];
  /** The outputs of a successful request (views; read them synchronously). */
  readonly outputs: readonly Tensor[] | undefined;
}

/** One backend execution of a batch that produced at least one response. */
export interface ModelExecutionEvent {
  readonly model: string;
  readonly version: string;
  readonly source: object;
  /** Inferences in the batch (the sum of its requests' batch sizes). */
  readonly batchSize: number;
  readonly computeInputNs: number;
  readonly computeInferNs: number;
  readonly computeOutputNs: number;
}

export const requestChannel = diagnostics_channel.channel(REQUEST_CHANNEL);
export const executionChannel = diagnostics_channel.channel(EXECUTION_CHANNEL);
