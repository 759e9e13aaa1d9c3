import type { ModelConfig } from "../gen/inference/model_config_pb.js";
import type { BatchRequest, BatchResult, InferenceRequest, InferenceResponse } from "./requests/inference.js";
import type { Logger } from "./observability/logger.js";

/**
 * The contract between core and a backend (Triton's TRITONBACKEND role). Core
 * never knows which backend it holds; a backend never imports a frontend.
 *
 * Life of a model version:
 *   createModel → [autoCompleteConfig] → createInstance × N → execute … → release
 */
export interface Backend {
  /** The `backend` name in config.pbtxt, e.g. "onnxruntime". */
  readonly name: string;
  /** `platform` values that select this backend, e.g. "onnxruntime_onnx". */
  readonly platforms: readonly string[];
  /** The model file looked for when `default_model_filename` is empty. */
  readonly defaultModelFilename: string;
  /** Other model files taken, in order, when the default one is not there (e.g. `model.mjs`, `model.ts`). */
  readonly alternativeModelFilenames?: readonly string[];
  /** Whether its instances can run on a GPU here: KIND_AUTO then places them on the GPUs there are. */
  readonly gpuCapable?: boolean;
  /** Makes a model from its files. Fails with a TritonError naming the model. */
  createModel(ctx: BackendModelContext): Promise<BackendModel>;
}

/** What a backend is told about the model version it should load. */
export interface BackendModelContext {
  name: string;
  version: number;
  /** The directory of the model (holds config.pbtxt and version folders). */
  modelDir: string;
  /** The model file or directory inside the version folder. */
  modelPath: string;
  /** The configuration as read from disk; may be incomplete before auto-complete. */
  config: ModelConfig;
  /** `--backend-config=<this backend>,key=value` settings. */
  backendConfig: Readonly<Record<string, string>>;
  logger: Logger;
  /**
   * Runs an inference request on this server, as a client's would be
   * (Triton's BLS): for models that call other models.
   */
  infer?: (request: InferenceRequest) => Promise<InferenceResponse>;
  /** The same for a decoupled model: each response as it comes, the last with `final`. */
  stream?: (request: InferenceRequest, onResponse: (response: InferenceResponse | Error | undefined, final: boolean) => void) => Promise<void>;
}

/** A loaded model version, before and after its instances exist. */
export interface BackendModel {
  /**
   * Fills inputs, outputs and max_batch_size that the config leaves out, from
   * the model file itself. Returns the completed config.
   */
  autoCompleteConfig?(config: ModelConfig, defaultMaxBatchSize: number): ModelConfig;
  /** Starts one instance of `instance_group` with the final, validated config. */
  createInstance(config: ModelConfig, spec: InstanceSpec): Promise<BackendInstance>;
  /** Frees what createModel took (after every instance is released). */
  release(): Promise<void>;
}

/** Identity of one model instance, e.g. `simple_0_1` (group 0, index 1). */
export interface InstanceSpec {
  name: string;
  kind: "KIND_CPU" | "KIND_GPU" | "KIND_MODEL" | "KIND_AUTO";
  deviceId: number;
}

/** One model instance: executes one batch at a time, off the main thread. */
export interface BackendInstance {
  readonly name: string;
  /** Executes a batch; one result per request, in the same order. */
  execute(requests: BatchRequest[]): Promise<BatchResult>;
  /** Ends the instance (its thread or process) and frees its resources. */
  release(): Promise<void>;
}
