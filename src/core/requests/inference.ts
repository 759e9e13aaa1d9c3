import type { CancelSignal } from "./cancel-signal.js";
import type { SerializedError } from "../errors.js";
import type { Parameters, Tensor } from "../tensors/tensor.js";

/** An output the client asked for, with its per-output parameters. */
export interface RequestedOutput {
  name: string;
  /** Classification extension: return the top-K classes instead of the tensor. */
  classification?: number;
  parameters?: Parameters;
}

/**
 * An inference request as core sees it, whichever door it came through
 * (HTTP, gRPC or the in-process API). Field names follow the wire protocol.
 */
export interface InferenceRequest {
  model_name: string;
  /** Empty or absent: the latest READY version. */
  model_version?: string;
  id?: string;
  parameters?: Parameters;
  inputs: Tensor[];
  /** Absent: every output of the model. */
  outputs?: RequestedOutput[];
  /** Aborted when the client goes away; a queued request is then dropped. An `AbortSignal` will do. */
  signal?: CancelSignal;
  /**
   * A BLS request: the models whose instances are waiting for it, outermost
   * first (the server checks nesting against them). Never set by a client.
   */
  callers?: readonly string[];
}

/** The answer to one {@link InferenceRequest}. */
export interface InferenceResponse {
  model_name: string;
  model_version: string;
  id?: string;
  parameters?: Parameters;
  outputs: Tensor[];
}

/**
 * What a backend instance receives for one request of a batch: the inputs
 * (reshaped as the config says) and the names of the outputs to produce.
 */
export interface BatchRequest {
  inputs: Tensor[];
  outputNames: string[];
  /** The client's request id, where it gave one. */
  id?: string;
  /** The request's parameters (a sequence's `sequence_id` among them). */
  parameters?: Parameters;
  /**
   * Decoupled models only (`model_transaction_policy { decoupled: true }`):
   * where the instance delivers each of the request's responses (zero or
   * more), the last one with `final` (which may carry no response). Stays on
   * the main thread: never sent to a worker.
   */
  respond?: (part: ExecutionResult | undefined, final: boolean) => void;
  /** The client's cancellation, for a backend that can tell a running model (main thread only). */
  signal?: CancelSignal;
  /** {@link InferenceRequest.callers}, for the BLS calls the batch makes (main thread only). */
  callers?: readonly string[];
}

/**
 * The callers of a BLS request made while `model` runs `batch`: the longest
 * chain among the batch's requests, then `model` itself.
 */
export function blsCallers(model: string, batch: readonly BatchRequest[] | undefined): string[] {
  let longest: readonly string[] = [];
  for (const r of batch ?? []) if (r.callers && r.callers.length > longest.length) longest = r.callers;
  return [...longest, model];
}

/** What a backend instance returns for one request of a batch. */
export type ExecutionResult = { outputs: Tensor[]; error?: undefined } | { error: SerializedError; outputs?: undefined };

/** Timestamps (ns, monotonic) a backend reports for one execution. */
export interface ExecutionTimings {
  computeInputNs: number;
  computeInferNs: number;
  computeOutputNs: number;
}

/** The reply of an instance to one batch. */
export interface BatchResult {
  results: ExecutionResult[];
  timings?: ExecutionTimings;
}
