import type { JsonObject } from "@bufbuild/protobuf";
import { readGpus, type Gpu } from "./devices/nvidia-smi.js";
import type { Backend } from "./backend.js";
import { parseVersionString } from "./repository/version-string.js";
import { TritonError, invalidArg, unavailable } from "./errors.js";
import type { InferenceRequest, InferenceResponse } from "./requests/inference.js";
import { Logger, renderTable } from "./observability/logger.js";
import { applyLogSettings, logSettingsOf, type LogSettings, type LogSettingsUpdate } from "./settings/log-settings.js";
import { modelConfigToJson, type ModelConfig } from "./repository/model-config.js";
import type { LoaderOptions } from "./repository/model-loader.js";
import { ModelRepositoryManager, type LoadOverrides, type ModelControlMode, type RepositoryIndexEntry } from "./repository/model-repository-manager.js";
import type { ModelVersion } from "./repository/model-version.js";
import { RequestLog } from "./observability/request-log.js";
import { TraceManager } from "./observability/trace-manager.js";
import { VersionOwnership } from "./observability/version-ownership.js";
import { RateLimiter, parseRateLimitResources } from "./scheduling/rate-limiter.js";
import { ResponseCache } from "./scheduling/response-cache.js";
import { SharedMemoryManager, type SystemSharedMemoryRegionStatus } from "./shared-memory.js";
import type { BatchStat, Duration } from "./observability/statistics.js";
import type { TraceOptions, TraceSettingJson, TraceSettingUpdate } from "./settings/trace-settings.js";
import { TRITIUM_VERSION } from "./version.js";

export type { LoadOverrides, ModelControlMode, RepositoryIndexEntry } from "./repository/model-repository-manager.js";

/** Options of an {@link InferenceServer}; names follow tritonserver's flags. */
export interface ServerOptions {
  /** `--model-repository` (one or more). */
  modelRepositories: string[];
  /** Backends this server can load models with. Core knows them only through this list. */
  backends: Backend[];
  /** `--id`: the server's name in server metadata (Triton's default: "triton"). */
  id?: string;
  /** `--strict-readiness` (default true). */
  strictReadiness?: boolean;
  /** Off with `--disable-auto-complete-config` or `--strict-model-config=true`. */
  autoCompleteConfig?: boolean;
  /** `--backend-config=<backend>,<key>=<value>`. */
  backendConfig?: Record<string, Record<string, string>>;
  /** `--model-control-mode` (default none). */
  modelControlMode?: ModelControlMode;
  /** `--load-model` in explicit mode; `*` loads all. */
  startupModels?: string[];
  /** `--model-load-thread-count` (default 4). */
  modelLoadThreadCount?: number;
  /** `--repository-poll-secs` (default 15) in poll mode. */
  repositoryPollSecs?: number;
  /**
   * Beyond Triton (`--model-load-on-demand`): in explicit mode, a request for
   * a model that is in a repository but not loaded loads it first.
   */
  modelLoadOnDemand?: boolean;
  /**
   * Beyond Triton (`--model-memory-budget`): bytes of loaded models to keep;
   * past it the least recently used models are unloaded. 0: no budget.
   */
  modelMemoryBudget?: number;
  /** `--rate-limit` (default off). */
  rateLimit?: "off" | "execution_count";
  /** `--rate-limit-resource=<name>:<count>[:<device>]`. */
  rateLimitResources?: string[];
  /** `--cache-config local,size=<bytes>`: the response cache's capacity; 0 or absent: no cache. */
  responseCacheBytes?: number;
  /** `--exit-timeout-secs` (default 30): how long stop() waits for in-flight requests. */
  exitTimeoutSecs?: number;
  /** `--bls-max-depth`: how deeply BLS calls may nest (default 16). */
  blsMaxDepth?: number;
  /** `--allow-client-shm` (default false, as Triton): clients may register and use system shared memory. */
  allowClientShm?: boolean;
  /** `--client-shm-key-prefix`: the only shared memory keys clients may register (default: any). */
  clientShmKeyPrefix?: string;
  logger?: Logger;
  /** `--trace-config` (trace extension); tracing is off without it. */
  trace?: TraceOptions;
}

/** The extensions this server implements, in Triton's order. */
export const SERVER_EXTENSIONS = [
  "classification",
  "sequence",
  "model_repository",
  "model_repository(unload_dependents)",
  "schedule_policy",
  "model_configuration",
  "system_shared_memory",
  "binary_tensor_data",
  "parameters",
  "statistics",
  "trace",
  "logging",
];

/**
 * The server facade (Triton's TRITONSERVER_Server role): every frontend and
 * the in-process API call these methods, so HTTP, gRPC and in-process callers
 * behave the same. Models and their lifecycle belong to the
 * {@link ModelRepositoryManager}; this class answers the protocol's questions.
 */
export class InferenceServer {
  readonly id: string;
  readonly version = TRITIUM_VERSION;
  readonly logger: Logger;
  /** System shared memory regions, shared by every frontend. */
  readonly sharedMemory: SharedMemoryManager;
  private readonly repository: ModelRepositoryManager;
  private readonly options: ServerOptions;
  private readonly rateLimited: boolean;
  private readonly cacheEnabled: boolean;
  private live = false;
  private stopping = false;
  private inflight = 0;
  /** Ensemble → the step models its load waits for now (to refuse a cycle rather than wait on it). */
  private readonly ensembleWaits = new Map<string, Set<string>>();
  /** The machine's GPUs, filled by start(). */
  private readonly foundGpus: Gpu[] = [];

  /** Whether `from`'s load waits, through ensembles' step models, on `to` (or is `to`). */
  private waitsFor(from: string, to: string, seen = new Set<string>()): boolean {
    if (from === to) return true;
    if (seen.has(from)) return false;
    seen.add(from);
    for (const next of this.ensembleWaits.get(from) ?? []) if (this.waitsFor(next, to, seen)) return true;
    return false;
  }
  /** Trace and verbose-request observers of this server's request events. */
  private readonly tracer: TraceManager;
  private readonly requestLog: RequestLog;

  constructor(options: ServerOptions) {
    this.options = options;
    this.id = options.id ?? "triton";
    this.sharedMemory = new SharedMemoryManager({ allowClientShm: options.allowClientShm ?? false, keyPrefix: options.clientShmKeyPrefix });
    this.logger = options.logger ?? new Logger();
    const ownership = new VersionOwnership(() => this.modelVersions());
    const owns = (source: object) => ownership.owns(source);
    this.tracer = new TraceManager(options.trace ?? {}, { owns, logger: this.logger });
    this.requestLog = new RequestLog(this.logger, owns);
    const backendConfig = options.backendConfig ?? {};
    const loader: LoaderOptions = {
      rateLimiter: options.rateLimit === "execution_count" ? new RateLimiter(parseRateLimitResources(options.rateLimitResources ?? [])) : undefined,
      responseCache: options.responseCacheBytes ? new ResponseCache(options.responseCacheBytes) : undefined,
      backends: options.backends,
      autoCompleteConfig: options.autoCompleteConfig ?? true,
      defaultMaxBatchSize: Number(backendConfig["*"]?.["default-max-batch-size"] ?? 4),
      backendConfig,
      logger: this.logger,
      infer: (request) => this.inferInside(request),
      stream: (request, onResponse) => this.streamInside(request, onResponse),
      gpus: this.foundGpus,
      dependency: async (name, version, ensemble) => {
        // An ensemble that reaches itself through its steps would wait on its own load.
        if (this.waitsFor(name, ensemble)) throw invalidArg(`ensemble '${ensemble}' reaches itself again through step model '${name}': ensembles must not form a cycle`);
        const edges = this.ensembleWaits.get(ensemble) ?? new Set<string>();
        this.ensembleWaits.set(ensemble, edges.add(name));
        try {
          await this.repository.ensureLoaded(name);
        } finally {
          edges.delete(name);
          if (edges.size === 0) this.ensembleWaits.delete(ensemble);
        }
        return this.repository.getModel(name, version).spec;
      },
    };
    this.rateLimited = loader.rateLimiter !== undefined;
    this.cacheEnabled = loader.responseCache !== undefined;
    this.repository = new ModelRepositoryManager(
      {
        modelRepositories: options.modelRepositories,
        backends: options.backends,
        autoCompleteConfig: loader.autoCompleteConfig,
        modelControlMode: options.modelControlMode ?? "none",
        modelLoadThreadCount: options.modelLoadThreadCount ?? 4,
        repositoryPollSecs: options.repositoryPollSecs ?? 15,
        modelLoadOnDemand: options.modelLoadOnDemand ?? false,
        modelMemoryBudget: options.modelMemoryBudget ?? 0,
      },
      loader,
      this.logger,
    );
  }

  /** Scans the repositories and loads the start-up models. A model that fails leaves the others serving. */
  async start(): Promise<void> {
    for (const g of await readGpus()) this.foundGpus.push({ index: g.index, uuid: g.uuid, name: g.name });
    await this.repository.start(this.options.startupModels ?? []);
    this.live = true;
    this.logTables();
  }

  /** One poll of the repositories (poll mode runs it on a timer). */
  poll(): Promise<void> {
    return this.repository.poll();
  }

  /** The machine's GPUs as nvidia-smi listed them at start; none without one. */
  get gpus(): readonly Gpu[] {
    return this.foundGpus;
  }

  /** `/v2/health/live` */
  isLive(): boolean {
    return this.live && !this.stopping;
  }

  /** `/v2/health/ready`: with strict readiness, every model that should load is READY. */
  isReady(): boolean {
    if (!this.isLive()) return false;
    return this.options.strictReadiness === false || this.repository.allReady();
  }

  /** `GET /v2` */
  metadata(): { name: string; version: string; extensions: string[] } {
    return { name: this.id, version: this.version, extensions: [...SERVER_EXTENSIONS] };
  }

  /**
   * The version that answers for (model, version): Triton's lookup, with its
   * messages (`Request for unknown model: ...`) and codes.
   */
  getModel(name: string, version?: string): ModelVersion {
    return this.repository.getModel(name, version);
  }

  /** `/v2/models/{m}[/versions/{v}]/ready` */
  isModelReady(name: string, version?: string): boolean {
    // A malformed version is the client's error, not a model that is not ready (as Triton).
    if (version !== undefined) parseVersionString(version);
    try {
      return this.getModel(name, version).state === "READY";
    } catch {
      return false;
    }
  }

  /** `GET /v2/models/{m}[/versions/{v}]` */
  modelMetadata(name: string, version?: string): ModelMetadata {
    const mv = this.getModel(name, version);
        const batch = mv.spec.maxBatchSize > 0 ? [-1] : [];
    const versions = version ? [String(mv.version)] : this.repository.readyVersions(name).map((v) => String(v.version));
    return {
      name,
      versions,
      platform: mv.config.platform || mv.config.backend,
      inputs: mv.spec.inputs.map((t) => ({ name: t.name, datatype: t.datatype, shape: [...batch, ...t.dims] })),
      outputs: mv.spec.outputs.map((t) => ({ name: t.name, datatype: t.datatype, shape: [...batch, ...t.dims] })),
    };
  }

  /** `GET /v2/models/{m}[/versions/{v}]/config` (the completed config). */
  modelConfig(name: string, version?: string): ModelConfig {
    return this.getModel(name, version).config;
  }

  /** The completed config as Triton's JSON. */
  modelConfigJson(name: string, version?: string): JsonObject {
    return modelConfigToJson(this.modelConfig(name, version));
  }

  /**
   * Runs one request on a decoupled model (`model_transaction_policy {
   * decoupled: true }`): `onResponse` gets each response as the model sends
   * it (an error for one that failed), the last with `final` (and no response
   * when the model ended without one). For any other model: its one response,
   * final. Resolves after the final one; rejects when the request fails as a
   * whole. Shared-memory outputs are not supported here.
   */
  async stream(req: InferenceRequest, onResponse: (response: InferenceResponse | TritonError | undefined, final: boolean) => void): Promise<void> {
    if (this.stopping) throw unavailable("Server is shutting down; no new inference requests are accepted");
    return this.streamInside(req, onResponse);
  }

  private streamInside(req: InferenceRequest, onResponse: (response: InferenceResponse | TritonError | undefined, final: boolean) => void): Promise<void> {
    return this.accepted(req, (mv) => {
      this.checkNesting(req, mv);
      return mv.stream(req, onResponse);
    });
  }

  /** Runs one inference request. Errors are TritonErrors with Triton's codes and messages. */
  async infer(req: InferenceRequest): Promise<InferenceResponse> {
    if (this.stopping) throw unavailable("Server is shutting down; no new inference requests are accepted");
    return this.inferInside(req);
  }

  /**
   * A request made by a model of this server (an ensemble step, a BLS call):
   * part of a request already accepted, so it runs while shutdown drains.
   */
  private inferInside(req: InferenceRequest): Promise<InferenceResponse> {
    // Unknown models fail before shared memory is read; the version is looked up again after the
    // inputs are read: a reload may have replaced it meanwhile.
    return this.accepted(req, (mv) => {
      this.checkNesting(req, mv);
      return this.sharedMemory.run(req, (r) => this.repository.getModel(r.model_name, r.model_version).infer(r));
    });
  }

  /**
   * A BLS request fails at once where it would wait forever: nested deeper
   * than `--bls-max-depth` (models calling each other in a loop), or aimed
   * at a model whose every instance is one of its callers, each running one
   * batch at a time and waiting for this very request.
   */
  private checkNesting(req: InferenceRequest, mv: ModelVersion): void {
    const callers = req.callers;
    if (!callers?.length) return;
    const chain = [...callers, mv.name].map((m) => `'${m}'`).join(" -> ");
    const limit = this.options.blsMaxDepth ?? 16;
    if (callers.length > limit) {
      throw new TritonError("INVALID_ARG", `BLS calls nest deeper than --bls-max-depth=${limit}: ${chain}`);
    }
    const waiting = callers.filter((m) => m === mv.name).length;
    if (waiting > 0 && waiting >= mv.instanceCount) {
      throw new TritonError("UNAVAILABLE", `model '${mv.name}' cannot run this BLS request: all ${mv.instanceCount} of its instances are waiting for it (${chain}); give the model more instances (instance_group count) or do not call it from itself`);
    }
  }

  /** Counts a request in flight, loads its model on demand, finds its version and runs `run` on it. */
  private async accepted<T>(req: InferenceRequest, run: (mv: ModelVersion) => Promise<T>): Promise<T> {
    this.inflight++;
    try {
      if (this.options.modelLoadOnDemand) await this.repository.ensureLoaded(req.model_name);
      const mv = this.repository.getModel(req.model_name, req.model_version);
      this.repository.touch(req.model_name);
      return await run(mv);
    } finally {
      this.inflight--;
    }
  }

  /** `GET /v2/systemsharedmemory[/region/{r}]/status`, `SystemSharedMemoryStatus`. */
  systemSharedMemoryStatus(name?: string): SystemSharedMemoryRegionStatus[] {
    return this.sharedMemory.status(name);
  }

  /** `POST /v2/systemsharedmemory/region/{r}/register`, `SystemSharedMemoryRegister`. */
  registerSystemSharedMemory(name: string, key: string, offset: number | bigint, byteSize: number | bigint): void {
    this.sharedMemory.register(name, key, offset, byteSize);
  }

  /** `POST /v2/systemsharedmemory[/region/{r}]/unregister`, `SystemSharedMemoryUnregister`; no name: all. */
  unregisterSystemSharedMemory(name?: string): void {
    this.sharedMemory.unregister(name);
  }

  /** `GET /v2/cudasharedmemory[/region/{r}]/status`, `CudaSharedMemoryStatus`: no GPUs, so no CUDA regions. */
  cudaSharedMemoryStatus(name?: string): { name: string; device_id: number; byte_size: number }[] {
    return this.sharedMemory.cudaStatus(name);
  }

  /** `POST /v2/cudasharedmemory/region/{r}/register`, `CudaSharedMemoryRegister`: refused without GPUs. */
  registerCudaSharedMemory(name: string): void {
    this.sharedMemory.cudaRegister(name);
  }

  /**
   * Trace extension (`GET/POST [/v2/models/{m}]/v2/trace/setting`, gRPC
   * TraceSetting): applies an update if given, and returns the setting in
   * force for the model (or the global one), in Triton's JSON shape.
   */
  traceSetting(model?: string, update?: TraceSettingUpdate): TraceSettingJson {
    if (model !== undefined && model !== "" && !this.isModelReady(model)) throw invalidArg(`Request for unknown model : ${model}`);
    const name = model === "" ? undefined : model;
    return update ? this.tracer.update(name, update) : this.tracer.setting(name);
  }

  /** Resolves when the traces taken so far are written (or sent to the collector). */
  flushTraces(): Promise<void> {
    return this.tracer.flush();
  }

  /**
   * Logging extension (`GET/POST /v2/logging`, gRPC LogSettings): applies an
   * update if given (at once: the next line follows it), and returns the
   * logger's settings in Triton's JSON shape.
   */
  logSettings(update?: LogSettingsUpdate): LogSettings {
    if (update) {
      applyLogSettings(this.logger, update);
      this.requestLog.refresh();
    }
    return logSettingsOf(this.logger);
  }

  /** Loaded model versions (all, a model's, or one), for statistics. */
  modelVersions(name?: string, version?: string): ModelVersion[] {
    return this.repository.modelVersions(name, version);
  }

  /**
   * Statistics extension (`/v2/models[/{m}[/versions/{v}]]/stats`), in
   * Triton's JSON shape and key order.
   */
  statistics(name?: string, version?: string): { model_stats: ModelStatsJson[] } {
    let versions: ModelVersion[];
    if (name === undefined || name === "") {
      versions = this.repository.modelVersions();
    } else {
      // Triton's lookup and messages (TRITONSERVER_ServerModelStatistics): both INVALID_ARG.
      const ready = this.repository.readyVersions(name);
      if (ready.length === 0) throw invalidArg(`requested model '${name}' is not available`);
      const wanted = version === undefined ? undefined : parseVersionString(version);
      versions = wanted === undefined ? ready : ready.filter((mv) => mv.version === wanted);
      if (versions.length === 0) throw invalidArg(`requested model version is not available for model '${name}'`);
    }
    return {
      model_stats: versions.map((mv) => {
        const s = mv.stats;
        return {
          name: mv.name,
          version: String(mv.version),
          last_inference: s.lastInference,
          inference_count: s.inferenceCount,
          execution_count: s.executionCount,
          inference_stats: {
            success: { ...s.success },
            fail: { ...s.fail },
            queue: { ...s.queue },
            compute_input: { ...s.computeInput },
            compute_infer: { ...s.computeInfer },
            compute_output: { ...s.computeOutput },
            cache_hit: { ...s.cacheHit },
            cache_miss: { ...s.cacheMiss },
          },
          response_stats: {},
          batch_stats: [...s.batches.values()].sort((a, b) => a.batch_size - b.batch_size).map((b) => structuredClone(b)),
          memory_usage: [{ type: "CPU", id: 0, byte_size: this.repository.memoryOf(mv.name, mv.version) }],
        };
      }),
    };
  }

  /** `POST /v2/repository/index` */
  repositoryIndex(readyOnly = false): Promise<RepositoryIndexEntry[]> {
    return this.repository.repositoryIndex(readyOnly);
  }

  /** Loads (or reloads) a model, whatever the control mode (start-up, tests, embedding code). */
  loadModel(name: string, overrides?: LoadOverrides): Promise<void> {
    return this.repository.loadModel(name, overrides);
  }

  /** Unloads every version of a model; in-flight requests finish first. */
  unloadModel(name: string): Promise<void> {
    return this.repository.unloadModel(name);
  }

  /**
   * The repository extension's load request (HTTP and gRPC): only in explicit
   * mode, with Triton's message otherwise. A failure returns its reason.
   */
  async repositoryLoad(name: string, overrides?: LoadOverrides): Promise<void> {
    this.checkModelControl();
    await this.repository.loadModel(name, overrides);
  }

  /** The repository extension's unload request. `unloadDependents` matters once ensembles exist. */
  async repositoryUnload(name: string, _unloadDependents = false): Promise<void> {
    this.checkModelControl();
    await this.repository.unloadModel(name);
  }

  private checkModelControl(): void {
    if (this.modelControlMode !== "explicit") {
      throw unavailable("explicit model load / unload is not allowed if polling is enabled");
    }
  }

  get modelControlMode(): ModelControlMode {
    return this.options.modelControlMode ?? "none";
  }

  /**
   * Stops the server: refuses new requests, waits up to `exitTimeoutSecs` for
   * in-flight ones, then unloads every model.
   */
  async stop(): Promise<void> {
    if (this.stopping) return;
    this.stopping = true;
    const deadline = Date.now() + (this.options.exitTimeoutSecs ?? 30) * 1000;
    while (this.inflight > 0 && Date.now() < deadline) {
      this.logger.info("server.ts", `Waiting for in-flight requests to complete. Remaining: ${this.inflight}`);
      await new Promise((r) => setTimeout(r, Math.min(200, Math.max(1, deadline - Date.now()))));
    }
    await this.repository.stop();
    this.sharedMemory.close();
    this.requestLog.close();
    await this.tracer.close();
    this.live = false;
  }

  private logTables(): void {
    const rows = this.repository.tableRows();
    // Ensembles have no backend (Triton lists none for them either).
    const backends = [...new Set(this.repository.modelVersions().map((m) => m.backendName))].filter((b) => b !== "");
    this.logger.table("server.ts", renderTable(["Backend", "Path", "Config"], backends.map((b) => [b, `tritium:${b}`, JSON.stringify(this.options.backendConfig?.[b] ?? {})])));
    this.logger.table("server.ts", renderTable(["Model", "Version", "Status"], rows));
    const opts: string[][] = [
      ["server_id", this.id],
      ["server_version", this.version],
      ["server_extensions", SERVER_EXTENSIONS.join(" ")],
      ...this.options.modelRepositories.map((r, i) => [`model_repository_path[${i}]`, r]),
      ["model_control_mode", `MODE_${this.modelControlMode.toUpperCase()}`],
      ...(this.options.startupModels ?? []).map((m, i) => [`startup_models_${i}`, m]),
      ["strict_model_config", this.options.autoCompleteConfig === false ? "1" : "0"],
      ["rate_limit", this.rateLimited ? "EXEC_COUNT" : "OFF"],
      ...(this.options.rateLimitResources ?? []).map((r, i) => [`rate_limit_resource[${i}]`, r]),
      ["strict_readiness", this.options.strictReadiness === false ? "0" : "1"],
      ["exit_timeout", String(this.options.exitTimeoutSecs ?? 30)],
      ["cache_enabled", this.cacheEnabled ? "1" : "0"],
    ];
    this.logger.table("server.ts", renderTable(["Option", "Value"], opts));
  }
}

/** One element of `model_stats`, keys in Triton's order. */
export interface ModelStatsJson {
  name: string;
  version: string;
  last_inference: number;
  inference_count: number;
  execution_count: number;
  inference_stats: Record<string, Duration>;
  response_stats: Record<string, unknown>;
  batch_stats: BatchStat[];
  memory_usage: unknown[];
}

/** `GET /v2/models/{m}` body, keys in Triton's order. */
export interface ModelMetadata {
  name: string;
  versions: string[];
  platform: string;
  inputs: { name: string; datatype: string; shape: number[] }[];
  outputs: { name: string; datatype: string; shape: number[] }[];
}

