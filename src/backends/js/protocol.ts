/**
 * Messages between the `js` backend (main thread) and its instance workers.
 * Batches and results go through the worker channel's rings; the rest by
 * postMessage.
 */
import type { ExecuteMessage, ResultMessage, ChannelMemory } from "../worker-channel/channel.js";
import type { ErrorReply, READY_ID } from "../worker-channel/replies.js";
import type { MessagePort } from "node:worker_threads";
import type { SerializedError } from "../../core/errors.js";
import type { ExecutionResult, ExecutionTimings, InferenceRequest } from "../../core/requests/inference.js";
import type { DataType } from "../../core/tensors/datatypes.js";
import type { Tensor } from "../../core/tensors/tensor.js";
import type { ModelInitializeArgs } from "./model-api.js";

/** What a worker is started with (`workerData`). */
export interface JsWorkerInit {
  /** The model file. */
  path: string;
  args: ModelInitializeArgs;
  /** Each configured output's datatype, for outputs that do not say theirs. */
  outputTypes: Record<string, DataType>;
  /** `model_transaction_policy { decoupled: true }`: requests carry a response sender. */
  decoupled: boolean;
  /** Where BLS requests go; the main thread answers on it (see {@link BlsCall}). */
  bls?: MessagePort;
  channel?: ChannelMemory;
}

/** A BLS request from a model, and the main thread's answer to it, on the `bls` port. */
export type BlsCall = { id: number; request: InferenceRequest; stream?: boolean; /** The batch the worker was running when it made the call. */ batch: number };
/** Main → worker on the same port: request `index` of batch `call` has been cancelled by its client. */
export type CancelNotice = { cancel: number; index: number };
/** One answer; a streamed call gets one per response and ends with `final` (with or without outputs). */
export type BlsAnswer = { id: number; outputs?: Tensor[]; final?: boolean } | { id: number; error: SerializedError; final?: boolean };
export type MainToWorker = BlsAnswer | CancelNotice;

export type ToJsWorker = ExecuteMessage | { type: "close"; id: number };

/**
 * A decoupled model's response to request `index` of batch `call` (id -1: it
 * answers no call). Partials and the batch's `done` both go by postMessage,
 * so every partial arrives before its batch is done.
 */
export interface PartialMessage {
  type: "partial";
  id: -1;
  call: number;
  index: number;
  result?: ExecutionResult;
  final: boolean;
}

export type FromJsWorker =
  | { type: "ready"; id: typeof READY_ID }
  | ResultMessage
  | { type: "done"; id: number; timings: ExecutionTimings }
  | { type: "closed"; id: number }
  | ErrorReply;
