/**
 * Messages between the ONNX Runtime backend (main thread) and its instance
 * workers. Plain data only: everything here crosses `postMessage`.
 *
 * This module imports nothing at run time, so the main thread never loads
 * the native ONNX Runtime binding; only the worker does.
 */
import type { ExecutionProvider } from "./gpu-providers.js";
import type { SerializedError } from "../../core/errors.js";
import type { BatchRequest, ExecutionResult, ExecutionTimings } from "../../core/requests/inference.js";
import type { ChannelMemory } from "../worker-channel/channel.js";
import type { READY_ID } from "../worker-channel/replies.js";

/** The subset of `InferenceSession.SessionOptions` the backend sets. */
export interface OrtSessionOptions {
  graphOptimizationLevel: "disabled" | "basic" | "extended" | "all";
  executionMode?: "sequential" | "parallel";
  intraOpNumThreads?: number;
  interOpNumThreads?: number;
  enableCpuMemArena?: boolean;
  enableMemPattern?: boolean;
  /** KIND_GPU instances: CUDA (and TensorRT) on the instance's device, then the CPU. */
  executionProviders?: ExecutionProvider[];
}

/** One input or output of the ONNX graph, as the session reports it. */
export interface OrtValueInfo {
  name: string;
  isTensor: boolean;
  /** ONNX Runtime JS type name (`float32`, `int64`, `string`, ...); absent for non-tensors. */
  type?: string;
  /** Fixed dims are numbers; symbolic (dynamic) dims are their names (`""` when unnamed). */
  shape: (number | string)[];
}

export interface OrtModelMetadata {
  inputs: OrtValueInfo[];
  outputs: OrtValueInfo[];
}

/** What a worker is started with (`workerData`). */
export interface WorkerInit {
  model: string;
  version: number;
  /** The `.onnx` file itself (a directory has already been resolved). */
  path: string;
  options: OrtSessionOptions;
  /** Instance name for error messages; the probe worker learns it later. */
  instance: string;
  /** max_batch_size of the final config; the probe worker learns it later. */
  maxBatchSize: number;
  /** The shared memory of the worker's channel (absent for a host on the event loop). */
  channel?: ChannelMemory;
}

export type ToWorker =
  | { type: "configure"; id: number; instance: string; maxBatchSize: number; options?: OrtSessionOptions }
  | { type: "execute"; id: number; requests: BatchRequest[] }
  | { type: "close"; id: number };


export type FromWorker =
  | { type: "ready"; id: typeof READY_ID; metadata: OrtModelMetadata }
  | { type: "configured"; id: number; metadata: OrtModelMetadata }
  | { type: "result"; id: number; results: ExecutionResult[]; timings: ExecutionTimings }
  | { type: "closed"; id: number }
  | { type: "error"; id: number; error: SerializedError };
