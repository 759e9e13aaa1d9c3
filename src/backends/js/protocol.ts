/**
 * Messages between the `js` backend (main thread) and its instance workers.
 * Batches and results go through the worker channel's rings; the rest by
 * postMessage.
 */
import type { ExecuteMessage, ResultMessage, ChannelMemory } from "../worker-channel/channel.js";
import type { ErrorReply, READY_ID } from "../worker-channel/replies.js";
import type { DataType } from "../../core/tensors/datatypes.js";
import type { ModelInitializeArgs } from "./model-api.js";

/** What a worker is started with (`workerData`). */
export interface JsWorkerInit {
  /** The model file. */
  path: string;
  args: ModelInitializeArgs;
  /** Each configured output's datatype, for outputs that do not say theirs. */
  outputTypes: Record<string, DataType>;
  channel?: ChannelMemory;
}

export type ToJsWorker = ExecuteMessage | { type: "close"; id: number };

export type FromJsWorker = { type: "ready"; id: typeof READY_ID } | ResultMessage | { type: "closed"; id: number } | ErrorReply;
