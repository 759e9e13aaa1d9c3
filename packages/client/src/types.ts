/**
 * The shapes both clients speak. Results have the JSON form of Triton's
 * HTTP/REST answers (protocol field names such as `max_batch_size`), so code
 * that reads them does not care which protocol fetched them.
 */
import type { InferResult } from "./infer-result.js";

/** Tensor element types of the KServe v2 protocol (plus Triton's BF16). */
export type Datatype =
  | "BOOL" | "UINT8" | "UINT16" | "UINT32" | "UINT64" | "INT8" | "INT16" | "INT32" | "INT64"
  | "FP16" | "FP32" | "FP64" | "BYTES" | "BF16";

/** A typed array: the data of a numeric tensor. */
export type TypedArray =
  | Int8Array | Uint8Array | Int16Array | Uint16Array | Int32Array | Uint32Array
  | BigInt64Array | BigUint64Array | Float32Array | Float64Array;

/**
 * An input tensor's elements, flattened in row-major order: a typed array
 * (converted when it is not the datatype's own: a Float64Array for FP32
 * becomes a Float32Array), plain numbers or bigints, booleans for BOOL,
 * strings or byte arrays for BYTES, and FP16/BF16 as a Uint16Array of bit
 * patterns.
 */
export type TensorData = TypedArray | readonly number[] | readonly bigint[] | readonly boolean[] | readonly (string | Uint8Array)[];

/**
 * An output tensor's elements, flattened in row-major order: the datatype's
 * typed array (BigInt64Array for INT64, Uint16Array of bit patterns for
 * FP16/BF16), `boolean[]` for BOOL, one Uint8Array per element for BYTES.
 */
export type OutputData = TypedArray | boolean[] | Uint8Array[];

/** Request or response parameters (the parameters extension). */
export type Parameters = Record<string, string | number | boolean | bigint>;

/** Where a tensor lives in a registered system shared memory region. */
export interface SharedMemoryRef {
  /** The region's name, as registered. */
  region: string;
  /** Bytes of the tensor in the region. */
  byteSize: number;
  /** Offset of the tensor in the region (0 when left out). */
  offset?: number;
}

/** One input of an inference request. */
export interface InferInput {
  /** The model's input name. */
  name: string;
  /** Element type. */
  datatype: Datatype;
  /** Full shape, the batch dimension included where the model batches. */
  shape: number[];
  /** The elements; left out when the tensor is in shared memory. */
  data?: TensorData;
  /** Read the tensor from a registered shared memory region instead of sending it. */
  sharedMemory?: SharedMemoryRef;
  /**
   * HTTP only: send the tensor with the binary tensor data extension (the
   * default) or as JSON (`false`). FP16 and BF16 always travel binary.
   */
  binaryData?: boolean;
  /** Parameters of this input. */
  parameters?: Parameters;
}

/** An output the request asks for (all outputs are returned when none is named). */
export interface RequestedOutput {
  /** The model's output name. */
  name: string;
  /** The classification extension: return the top `classification` classes as `"score:index[:label]"`. */
  classification?: number;
  /** HTTP only: receive the tensor binary (the default) or as JSON (`false`). */
  binaryData?: boolean;
  /** Write the output into a registered shared memory region. */
  sharedMemory?: SharedMemoryRef;
  /** Parameters of this output. */
  parameters?: Parameters;
}

/** Options every call takes. */
export interface CallOptions {
  /** Extra HTTP headers, or gRPC metadata. */
  headers?: Record<string, string>;
  /** Cancels the call: it rejects with an {@link InferenceServerError} whose status is `"CANCELLED"`. */
  signal?: AbortSignal;
}

/** Options of an inference request. */
export interface InferOptions extends CallOptions {
  /** Model version; the server's choice (by the version policy) when left out. */
  modelVersion?: string;
  /** Outputs to return, with their options; every output when left out. */
  outputs?: RequestedOutput[];
  /** Request id, echoed in the response. */
  requestId?: string;
  /** Sequence (correlation) id for stateful models; 0 or "" means none. */
  sequenceId?: number | bigint | string;
  /** This request starts its sequence. */
  sequenceStart?: boolean;
  /** This request ends its sequence. */
  sequenceEnd?: boolean;
  /** Scheduling priority (1 is highest; 0 is the model's default). */
  priority?: number;
  /** Queue timeout in microseconds (only lowers the model's own, where it allows overrides). */
  timeout?: number;
  /** Other request parameters. */
  parameters?: Parameters;
}

/** `GET /v2`: the server's name, version and protocol extensions. */
export interface ServerMetadata {
  name: string;
  version: string;
  extensions: string[];
}

/** Name, datatype and shape of one of a model's tensors (-1 marks a variable dimension). */
export interface TensorMetadata {
  name: string;
  datatype: string;
  shape: number[];
}

/** `GET /v2/models/{m}`: a model's versions, platform and tensors. */
export interface ModelMetadata {
  name: string;
  versions: string[];
  platform: string;
  inputs: TensorMetadata[];
  outputs: TensorMetadata[];
}

/** One tensor of a model configuration, as `/config` prints it. */
export interface ModelConfigTensor {
  name: string;
  data_type: string;
  dims: number[];
  format?: string;
  label_filename?: string;
  [key: string]: unknown;
}

/**
 * A model's configuration as Triton's `/config` prints it: `config.pbtxt`'s
 * field names, enums by name (`"TYPE_FP32"`), 64-bit integers as numbers.
 * The fields a client most often reads are typed; the rest are there too.
 */
export interface ModelConfig {
  name: string;
  platform?: string;
  backend?: string;
  max_batch_size?: number;
  input?: ModelConfigTensor[];
  output?: ModelConfigTensor[];
  [key: string]: unknown;
}

/** One model of the repository index (a model never loaded has its name only). */
export interface RepositoryIndexEntry {
  name: string;
  version?: string;
  state?: string;
  reason?: string;
}

/** A count and total time of the statistics extension. */
export interface StatisticDuration {
  count: number;
  ns: number;
}

/** Statistics of one model version (the statistics extension). */
export interface ModelStatistics {
  name: string;
  version: string;
  last_inference: number;
  inference_count: number;
  execution_count: number;
  inference_stats: {
    success: StatisticDuration;
    fail: StatisticDuration;
    queue: StatisticDuration;
    compute_input: StatisticDuration;
    compute_infer: StatisticDuration;
    compute_output: StatisticDuration;
    cache_hit: StatisticDuration;
    cache_miss: StatisticDuration;
  };
  batch_stats: { batch_size: number; compute_input: StatisticDuration; compute_infer: StatisticDuration; compute_output: StatisticDuration }[];
  [key: string]: unknown;
}

/** `GET /v2/models/stats`. */
export interface InferenceStatistics {
  model_stats: ModelStatistics[];
}

/**
 * Trace settings (`trace_level`, `trace_rate`, `trace_count`,
 * `log_frequency`, `trace_file`, ...): values are strings, `trace_level` a
 * list of them.
 */
export type TraceSettings = Record<string, string | string[]>;

/** An update of trace settings: `null` resets a setting to the global one. */
export type TraceSettingsUpdate = Record<string, string | string[] | null>;

/** Log settings (`log_info`, `log_verbose_level`, `log_format`, ...). */
export type LogSettings = Record<string, string | number | boolean>;

/** One registered system shared memory region. */
export interface SharedMemoryRegionStatus {
  name: string;
  key: string;
  offset: number;
  byte_size: number;
}

/** Options of {@link InferenceServerClient.loadModel}. */
export interface LoadModelOptions extends CallOptions {
  /** A configuration that replaces the repository's: JSON text or an object. */
  config?: string | ModelConfig | Record<string, unknown>;
  /**
   * Files that replace the model's directory (a `config` is then required):
   * keyed by their path in the model directory, `"1/model.onnx"` (or with
   * Triton's `"file:"` prefix).
   */
  files?: Record<string, Uint8Array>;
}

/**
 * What the HTTP and the gRPC client have in common, in the spirit of
 * Python's `tritonclient`: health, metadata, configuration, repository,
 * statistics, trace and log settings, system shared memory and inference.
 */
export interface InferenceServerClient {
  /** Whether the server is live (`false` when it answers "not live"; a server out of reach rejects). */
  isServerLive(options?: CallOptions): Promise<boolean>;
  /** Whether the server is ready for inference. */
  isServerReady(options?: CallOptions): Promise<boolean>;
  /** Whether a model (version) is ready; `false` for one the server does not know. */
  isModelReady(model: string, version?: string, options?: CallOptions): Promise<boolean>;
  /** Server name, version and extensions. */
  getServerMetadata(options?: CallOptions): Promise<ServerMetadata>;
  /** A model's metadata. */
  getModelMetadata(model: string, version?: string, options?: CallOptions): Promise<ModelMetadata>;
  /** A model's configuration. */
  getModelConfig(model: string, version?: string, options?: CallOptions): Promise<ModelConfig>;
  /** The models of the repository, with their states (only ready ones with `ready`). */
  getModelRepositoryIndex(options?: CallOptions & { ready?: boolean }): Promise<RepositoryIndexEntry[]>;
  /** Loads (or reloads) a model, optionally with a configuration and files of the caller's. */
  loadModel(model: string, options?: LoadModelOptions): Promise<void>;
  /** Unloads a model (and the models only it used, with `unloadDependents`). */
  unloadModel(model: string, options?: CallOptions & { unloadDependents?: boolean }): Promise<void>;
  /** Statistics of one model (version), or of every model when `model` is left out. */
  getInferenceStatistics(model?: string, version?: string, options?: CallOptions): Promise<InferenceStatistics>;
  /** The global trace settings, or a model's. */
  getTraceSettings(model?: string, options?: CallOptions): Promise<TraceSettings>;
  /** Changes trace settings (globally, or for a model) and returns them as they now are. */
  updateTraceSettings(settings: TraceSettingsUpdate, model?: string, options?: CallOptions): Promise<TraceSettings>;
  /** The log settings. */
  getLogSettings(options?: CallOptions): Promise<LogSettings>;
  /** Changes log settings and returns them as they now are. */
  updateLogSettings(settings: LogSettings, options?: CallOptions): Promise<LogSettings>;
  /** Registered system shared memory regions (one, when `region` is given). */
  getSystemSharedMemoryStatus(region?: string, options?: CallOptions): Promise<SharedMemoryRegionStatus[]>;
  /** Registers a POSIX shared memory object (`key`, e.g. `"/my_shm"`) as region `name`. */
  registerSystemSharedMemory(name: string, key: string, byteSize: number, offset?: number, options?: CallOptions): Promise<void>;
  /** Unregisters a region, or every region when `name` is left out. */
  unregisterSystemSharedMemory(name?: string, options?: CallOptions): Promise<void>;
  /** Runs one inference. */
  infer(model: string, inputs: InferInput[], options?: InferOptions): Promise<InferResult>;
  /** Closes connections the client holds. */
  close(): void;
}
