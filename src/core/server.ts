import fs from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import type { Backend } from "./backend.js";
import { TritonError, asTritonError, codeString, invalidArg, notFound, unavailable } from "./errors.js";
import type { InferenceRequest, InferenceResponse } from "./inference.js";
import { Logger, renderTable } from "./logger.js";
import { applyLogSettings, logSettingsOf, type LogSettings, type LogSettingsUpdate } from "./log-settings.js";
import { RequestLog } from "./observability/request-log.js";
import { TraceManager } from "./observability/trace-manager.js";
import { VersionOwnership } from "./observability/version-ownership.js";
import type { TraceOptions, TraceSettingJson, TraceSettingUpdate } from "./trace-settings.js";
import { modelConfigFromJson, modelConfigToJson, type ModelConfig } from "./model-config.js";
import { loadModelVersion, readModelConfig, resolveBackend, type LoaderOptions } from "./model-loader.js";
import {
  fingerprint,
  listVersions,
  missingSpecificVersions,
  scanRepositories,
  selectVersions,
  versionBytes,
  type RepositoryModel,
} from "./model-repository.js";
import type { ModelState, ModelVersion } from "./model-version.js";
import type { BatchStat, Duration } from "./statistics.js";
import { RateLimiter, parseRateLimitResources } from "./rate-limiter.js";
import { ResponseCache } from "./response-cache.js";
import { SharedMemoryManager, type SystemSharedMemoryRegionStatus } from "./shared-memory.js";
import { TRITIUM_VERSION } from "./version.js";
import type { JsonObject } from "@bufbuild/protobuf";

export type ModelControlMode = "none" | "poll" | "explicit";

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
  /** `--allow-client-shm` (default false, as Triton): clients may register and use system shared memory. */
  allowClientShm?: boolean;
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

/** One entry of the repository index (Triton's JSON shape and key order). */
export interface RepositoryIndexEntry {
  name: string;
  version?: string;
  state?: ModelState;
  reason?: string;
}

interface VersionStatus {
  state: ModelState;
  reason: string;
}

/** Load API overrides (Triton's `parameters` of the repository load request). */
export interface LoadOverrides {
  /** A complete model configuration as JSON, replacing config.pbtxt. */
  config?: string;
  /** `file:<version>/<name>` → file content: the model's files, not read from disk. */
  files?: Record<string, Uint8Array>;
}

interface ModelEntry {
  repo: RepositoryModel;
  /** The model should be loaded (start-up, load API or poll); cleared by unload. */
  wanted: boolean;
  /** Repository contents at the last successful load, for poll mode. */
  fingerprint?: string;
  /** Temporary directory holding files pushed through the load API. */
  overrideDir?: string;
  /** Date.now() of the last request, for least-recently-used eviction. */
  lastUsed: number;
  /** Estimated bytes per loaded version. */
  memory: Map<number, number>;
  /** Versions that serve requests. */
  ready: Map<number, ModelVersion>;
  /** Last known state of every version we tried, for the index and the model table. */
  status: Map<number, VersionStatus>;
  /** Set when the model itself (not one version) could not be loaded. */
  error?: TritonError;
}

/**
 * The server facade (Triton's TRITONSERVER_Server role): every frontend and
 * the in-process API call these methods, so HTTP, gRPC and in-process callers
 * behave the same.
 */
export class InferenceServer {
  readonly id: string;
  readonly version = TRITIUM_VERSION;
  readonly logger: Logger;
  private readonly options: Required<Omit<ServerOptions, "logger" | "id" | "rateLimit" | "responseCacheBytes" | "allowClientShm" | "trace">> & Pick<ServerOptions, "rateLimit" | "responseCacheBytes">;
  private readonly loader: LoaderOptions;
  private readonly models = new Map<string, ModelEntry>();
  private repoModels = new Map<string, RepositoryModel>();
  private duplicates = new Map<string, string[]>();
  private live = false;
  /** Load/unload operations per model name, run one after another. */
  private readonly ops = new Map<string, Promise<unknown>>();
  private pollTimer: NodeJS.Timeout | undefined;
  private stopping = false;
  private inflight = 0;
  /** System shared memory regions, shared by every frontend. */
  readonly sharedMemory: SharedMemoryManager;

  /** Trace and verbose-request observers of this server's request events. */
  private readonly tracer: TraceManager;
  private readonly requestLog: RequestLog;

  constructor(options: ServerOptions) {
    this.id = options.id ?? "triton";
    this.sharedMemory = new SharedMemoryManager({ allowClientShm: options.allowClientShm ?? false });
    this.logger = options.logger ?? new Logger();
    const ownership = new VersionOwnership(() => this.modelVersions());
    const owns = (source: object) => ownership.owns(source);
    this.tracer = new TraceManager(options.trace ?? {}, { owns, logger: this.logger });
    this.requestLog = new RequestLog(this.logger, owns);
    this.options = {
      modelRepositories: options.modelRepositories,
      backends: options.backends,
      strictReadiness: options.strictReadiness ?? true,
      autoCompleteConfig: options.autoCompleteConfig ?? true,
      backendConfig: options.backendConfig ?? {},
      modelControlMode: options.modelControlMode ?? "none",
      startupModels: options.startupModels ?? [],
      modelLoadThreadCount: options.modelLoadThreadCount ?? 4,
      exitTimeoutSecs: options.exitTimeoutSecs ?? 30,
      repositoryPollSecs: options.repositoryPollSecs ?? 15,
      modelLoadOnDemand: options.modelLoadOnDemand ?? false,
      modelMemoryBudget: options.modelMemoryBudget ?? 0,
      rateLimit: options.rateLimit,
      rateLimitResources: options.rateLimitResources ?? [],
      responseCacheBytes: options.responseCacheBytes,
    };
    const defaultMaxBatchSize = Number(this.options.backendConfig["*"]?.["default-max-batch-size"] ?? 4);
    this.loader = {
      rateLimiter: options.rateLimit === "execution_count" ? new RateLimiter(parseRateLimitResources(options.rateLimitResources ?? [])) : undefined,
      responseCache: options.responseCacheBytes ? new ResponseCache(options.responseCacheBytes) : undefined,
      backends: this.options.backends,
      autoCompleteConfig: this.options.autoCompleteConfig,
      defaultMaxBatchSize,
      backendConfig: this.options.backendConfig,
      logger: this.logger,
    };
  }

  /** Scans the repositories and loads the start-up models. A model that fails leaves the others serving. */
  async start(): Promise<void> {
    await this.rescan();
    let names: string[];
    if (this.options.modelControlMode === "explicit") {
      const wanted = this.options.startupModels;
      names = wanted.includes("*") ? [...this.repoModels.keys()] : wanted;
    } else {
      names = [...this.repoModels.keys()];
    }
    for (const [name, paths] of this.duplicates) {
      this.logger.error("model_repository_manager.ts", `model '${name}' appears in multiple repositories: ${paths.join(", ")}; it is not served`);
    }
    await runLimited(names, this.options.modelLoadThreadCount, (n) => this.loadModel(n).catch(() => undefined));
    this.live = true;
    this.logTables();
    if (this.options.modelControlMode === "poll") this.schedulePoll();
  }

  /**
   * Poll mode: on a timer, load new models, unload removed ones, and reload
   * models whose files changed. A model caught half-written fails to load,
   * keeps its serving version, and is retried at the next poll because its
   * fingerprint is only recorded after a successful load.
   */
  async poll(): Promise<void> {
    await this.rescan();
    const names = new Set([...this.repoModels.keys(), ...this.models.keys()]);
    await runLimited([...names], this.options.modelLoadThreadCount, async (name) => {
      const repo = this.repoModels.get(name);
      const entry = this.models.get(name);
      if (!repo) {
        if (entry && !entry.overrideDir) {
          // Gone from every repository: unload it and forget it.
          await this.unloadModel(name).catch(() => undefined);
          this.models.delete(name);
        }
        return;
      }
      if (entry?.overrideDir) return;
      const fp = await fingerprint(repo.dir);
      if (!entry || !entry.wanted || entry.fingerprint !== fp) await this.loadModel(name).catch(() => undefined);
    });
  }

  private schedulePoll(): void {
    this.pollTimer = setTimeout(() => {
      void this.poll()
        .catch((e) => this.logger.error("model_repository_manager.ts", `repository poll failed: ${(e as Error).message}`))
        .finally(() => {
          if (!this.stopping) this.schedulePoll();
        });
    }, this.options.repositoryPollSecs * 1000);
    this.pollTimer.unref();
  }

  /** `/v2/health/live` */
  isLive(): boolean {
    return this.live && !this.stopping;
  }

  /** `/v2/health/ready`: with strict readiness, every model that should load is READY. */
  isReady(): boolean {
    if (!this.isLive()) return false;
    if (!this.options.strictReadiness) return true;
    if (this.duplicates.size > 0) return false;
    for (const entry of this.models.values()) {
      if (!entry.wanted) continue;
      if (entry.error && entry.ready.size === 0) return false;
      for (const st of entry.status.values()) {
        // A version loading beside a serving one, or an explicit load of a new
        // model, does not make the server unready (readiness must not flap).
        if (st.state === "LOADING" || st.state === "UNLOADING") continue;
        if (st.state !== "READY") return false;
      }
    }
    return true;
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
    const entry = this.models.get(name);
    if (!entry) {
      throw this.repoModels.has(name)
        ? notFound(`Request for unknown model: '${name}' is not found`)
        : invalidArg(`Request for unknown model: '${name}' is not found`);
    }
    if (version === undefined || version === "" ) {
      const versions = [...entry.ready.keys()].sort((a, b) => b - a);
      if (versions.length === 0) throw notFound(`Request for unknown model: '${name}' has no available versions`);
      return entry.ready.get(versions[0]!)!;
    }
    if (!/^[0-9]+$/.test(version)) throw invalidArg(`failed to parse version '${version}' of model '${name}': expected an integer`);
    const v = Number(version);
    const mv = entry.ready.get(v);
    if (mv && mv.state === "READY") return mv;
    const s = entry.status.get(v);
    if (s || mv) throw unavailable(`Request for unknown model: '${name}' version ${v} is not at ready state`);
    throw notFound(`Request for unknown model: '${name}' version ${v} is not found`);
  }

  /** `/v2/models/{m}[/versions/{v}]/ready` */
  isModelReady(name: string, version?: string): boolean {
    try {
      return this.getModel(name, version).state === "READY";
    } catch {
      return false;
    }
  }

  /** `GET /v2/models/{m}[/versions/{v}]` */
  modelMetadata(name: string, version?: string): ModelMetadata {
    const mv = this.getModel(name, version);
    const entry = this.models.get(name)!;
    const batch = mv.spec.maxBatchSize > 0 ? [-1] : [];
    const versions = version ? [String(mv.version)] : [...entry.ready.keys()].sort((a, b) => a - b).map(String);
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

  /** Runs one inference request. Errors are TritonErrors with Triton's codes and messages. */
  async infer(req: InferenceRequest): Promise<InferenceResponse> {
    if (this.stopping) throw unavailable("Server is shutting down; no new inference requests are accepted");
    this.inflight++;
    try {
      if (this.options.modelLoadOnDemand) await this.ensureLoaded(req.model_name);
      const mv = this.getModel(req.model_name, req.model_version);
      this.models.get(req.model_name)!.lastUsed = Date.now();
      return await this.sharedMemory.run(req, (r) => mv.infer(r));
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

  /** Loaded model versions, for statistics. */
  modelVersions(name?: string, version?: string): ModelVersion[] {
    if (name !== undefined && name !== "") {
      if (version !== undefined && version !== "") return [this.getModel(name, version)];
      this.getModel(name);
      return [...this.models.get(name)!.ready.values()].sort((a, b) => a.version - b.version);
    }
    return [...this.models.entries()]
      .sort(([a], [b]) => a.localeCompare(b))
      .flatMap(([, e]) => [...e.ready.values()].sort((a, b) => a.version - b.version));
  }

  /**
   * Statistics extension (`/v2/models[/{m}[/versions/{v}]]/stats`), in
   * Triton's JSON shape and key order.
   */
  statistics(name?: string, version?: string): { model_stats: ModelStatsJson[] } {
    let versions: ModelVersion[];
    if (name === undefined || name === "") {
      versions = this.modelVersions();
    } else {
      // Triton's lookup and messages (TRITONSERVER_ServerModelStatistics): both INVALID_ARG.
      const ready = [...(this.models.get(name)?.ready.values() ?? [])].filter((mv) => mv.state === "READY").sort((a, b) => a.version - b.version);
      if (ready.length === 0) throw invalidArg(`requested model '${name}' is not available`);
      versions = version === undefined || version === "" ? ready : ready.filter((mv) => String(mv.version) === version);
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
          memory_usage: [{ type: "CPU", id: 0, byte_size: this.models.get(mv.name)?.memory.get(mv.version) ?? 0 }],
        };
      }),
    };
  }

  /** `POST /v2/repository/index` */
  async repositoryIndex(readyOnly = false): Promise<RepositoryIndexEntry[]> {
    await this.rescan();
    const out: RepositoryIndexEntry[] = [];
    const names = new Set([...this.repoModels.keys(), ...this.models.keys()]);
    for (const name of [...names].sort()) {
      const entry = this.models.get(name);
      if (!entry || (entry.status.size === 0 && !entry.error)) {
        if (!readyOnly) out.push({ name });
        continue;
      }
      if (entry.error && entry.status.size === 0) {
        if (!readyOnly) out.push({ name, state: "UNAVAILABLE", reason: entry.error.message });
        continue;
      }
      for (const [v, s] of [...entry.status].sort(([a], [b]) => a - b)) {
        if (readyOnly && s.state !== "READY") continue;
        out.push({ name, version: String(v), state: s.state, reason: s.reason });
      }
    }
    return out;
  }

  /**
   * Loads (or reloads) a model from the repositories. New versions load
   * beside the serving ones; requests switch once they are READY; versions
   * that leave the policy are unloaded after their in-flight requests finish.
   * Loads and unloads of one model run one after another.
   */
  async loadModel(name: string, overrides?: LoadOverrides): Promise<void> {
    await this.serialized(name, () => this.doLoad(name, overrides));
    await this.enforceMemoryBudget(name);
  }

  /**
   * The repository extension's load request (HTTP and gRPC): only in explicit
   * mode, with Triton's message otherwise. A failure returns its reason.
   */
  async repositoryLoad(name: string, overrides?: LoadOverrides): Promise<void> {
    this.checkModelControl();
    await this.loadModel(name, overrides);
  }

  /** The repository extension's unload request. `unloadDependents` matters once ensembles exist. */
  async repositoryUnload(name: string, _unloadDependents = false): Promise<void> {
    this.checkModelControl();
    await this.unloadModel(name);
  }

  private checkModelControl(): void {
    if (this.options.modelControlMode !== "explicit") {
      throw unavailable("explicit model load / unload is not allowed if polling is enabled");
    }
  }

  /** Unloads every version of a model; in-flight requests finish first. */
  async unloadModel(name: string): Promise<void> {
    await this.serialized(name, () => this.doUnload(name));
  }

  /** On-demand loading: concurrent requests for the same cold model share one load. */
  private async ensureLoaded(name: string): Promise<void> {
    const entry = this.models.get(name);
    if (entry && entry.ready.size > 0) return;
    const pending = this.ops.get(name);
    if (pending) {
      await pending.catch(() => undefined);
      if ((this.models.get(name)?.ready.size ?? 0) > 0) return;
    }
    if (!this.repoModels.has(name)) await this.rescan();
    if (!this.repoModels.has(name)) return; // getModel reports the unknown model
    await this.loadModel(name);
  }

  /** Unloads least recently used models until the loaded ones fit the memory budget. */
  private async enforceMemoryBudget(justLoaded: string): Promise<void> {
    const budget = this.options.modelMemoryBudget;
    if (budget <= 0) return;
    const used = () => [...this.models.values()].reduce((n, e) => n + [...e.ready.keys()].reduce((m, v) => m + (e.memory.get(v) ?? 0), 0), 0);
    const candidates = [...this.models.entries()]
      .filter(([n, e]) => n !== justLoaded && e.ready.size > 0)
      .sort(([, a], [, b]) => a.lastUsed - b.lastUsed);
    for (const [name] of candidates) {
      if (used() <= budget) break;
      this.logger.info("model_lifecycle.ts", `unloading '${name}' (least recently used) to stay within the model memory budget of ${budget} bytes`);
      await this.unloadModel(name);
    }
  }

  private serialized<T>(name: string, op: () => Promise<T>): Promise<T> {
    const previous = this.ops.get(name) ?? Promise.resolve();
    const run = previous.catch(() => undefined).then(op);
    const tail = run.catch(() => undefined);
    this.ops.set(name, tail);
    void tail.then(() => {
      if (this.ops.get(name) === tail) this.ops.delete(name);
    });
    return run;
  }

  private async doUnload(name: string): Promise<void> {
    const entry = this.models.get(name);
    if (!entry) {
      if (!this.repoModels.has(name)) throw invalidArg(`failed to unload '${name}', no version is available`);
      return;
    }
    entry.wanted = false;
    const versions = [...entry.ready.values()];
    entry.ready.clear();
    for (const mv of versions) entry.status.set(mv.version, { state: "UNLOADING", reason: "" });
    await Promise.all(
      versions.map(async (mv) => {
        await mv.unload();
        entry.status.set(mv.version, { state: "UNAVAILABLE", reason: "unloaded" });
        this.logger.info("model_lifecycle.ts", `successfully unloaded '${name}' version ${mv.version}`);
      }),
    );
    if (entry.overrideDir) {
      await fs.rm(entry.overrideDir, { recursive: true, force: true });
      entry.overrideDir = undefined;
    }
  }

  get modelControlMode(): ModelControlMode {
    return this.options.modelControlMode;
  }

  /**
   * Stops the server: refuses new requests, waits up to `exitTimeoutSecs` for
   * in-flight ones, then unloads every model.
   */
  async stop(): Promise<void> {
    if (this.stopping) return;
    this.stopping = true;
    if (this.pollTimer) clearTimeout(this.pollTimer);
    const deadline = Date.now() + this.options.exitTimeoutSecs * 1000;
    while (this.inflight > 0 && Date.now() < deadline) {
      this.logger.info("server.ts", `Waiting for in-flight requests to complete. Remaining: ${this.inflight}`);
      await new Promise((r) => setTimeout(r, Math.min(200, Math.max(1, deadline - Date.now()))));
    }
    await Promise.allSettled([...this.models.keys()].map((n) => this.unloadModel(n)));
    this.sharedMemory.close();
    this.requestLog.close();
    await this.tracer.close();
    this.live = false;
  }

  /** Requests accepted by infer() and not yet answered. */
  get inflightRequests(): number {
    return this.inflight;
  }

  private async rescan(): Promise<void> {
    const scan = await scanRepositories(this.options.modelRepositories);
    this.repoModels = scan.models;
    this.duplicates = scan.duplicates;
  }

  private async doLoad(name: string, overrides?: LoadOverrides): Promise<void> {
    if (!this.repoModels.has(name)) await this.rescan();
    const dup = this.duplicates.get(name);
    if (dup) throw invalidArg(`failed to load '${name}': model name appears in multiple repositories: ${dup.join(", ")}`);
    let repo = this.repoModels.get(name);
    const hasFiles = overrides?.files && Object.keys(overrides.files).length > 0;
    if (!repo && !hasFiles) throw invalidArg(`failed to load '${name}', no version is available`);
    let entry = this.models.get(name);
    if (!entry) {
      entry = { repo: repo ?? { name, dir: "", repository: "" }, wanted: true, ready: new Map(), status: new Map(), lastUsed: Date.now(), memory: new Map() };
      this.models.set(name, entry);
    }
    entry.wanted = true;
    entry.error = undefined;
    let config: ModelConfig;
    let wanted: number[];
    let backend: Backend;
    let overrideDir: string | undefined;
    let fp: string | undefined;
    try {
      if (hasFiles && !overrides?.config) {
        throw invalidArg(`failed to load '${name}': the 'config' parameter must be provided together with 'file:' parameters`);
      }
      if (hasFiles) {
        overrideDir = await writeOverrideFiles(name, overrides!.files!);
        repo = { name, dir: path.join(overrideDir, name), repository: overrideDir };
      }
      entry.repo = repo!;
      if (!overrideDir) fp = await fingerprint(repo!.dir);
      config = overrides?.config !== undefined
        ? modelConfigFromJson(overrides.config, `model '${name}'`)
        : await readModelConfig(repo!.dir, name, this.options.autoCompleteConfig);
      if (!config.name) config.name = name;
      const available = await listVersions(repo!.dir);
      backend = await resolveBackend(config, repo!.dir, available, this.options.backends);
      const missing = missingSpecificVersions(available, config);
      if (missing.length) throw invalidArg(`model '${name}': version_policy names versions [${missing.join(",")}] that have no directory`);
      wanted = selectVersions(available, config);
      if (wanted.length === 0) throw invalidArg(`model '${name}': no model version was found`);
    } catch (e) {
      if (overrideDir) await fs.rm(overrideDir, { recursive: true, force: true });
      const err = asTritonError(e);
      entry.error = err;
      this.logger.error("model_lifecycle.ts", `failed to load '${name}': ${codeString(err.code)}: ${err.message}`);
      throw new TritonError(err.code, `failed to load '${name}', failed to poll from model repository: ${err.message}`);
    }
    const failures: string[] = [];
    const loaded = await Promise.all(
      wanted.map(async (v) => {
        entry!.status.set(v, { state: entry!.ready.has(v) ? "READY" : "LOADING", reason: "" });
        this.logger.info("model_lifecycle.ts", `loading: ${name}:${v}`);
        try {
          const mv = await loadModelVersion(repo!.dir, config, v, backend, this.loader);
          entry!.memory.set(v, await versionBytes(repo!.dir, v));
          return { v, mv };
        } catch (e) {
          const err = asTritonError(e);
          const reason = `${codeString(err.code)}: ${err.message}`;
          this.logger.error("model_lifecycle.ts", `failed to load '${name}' version ${v}: ${reason}`);
          failures.push(`version ${v}: ${err.message}`);
          // A failed reload keeps the serving version.
          entry!.status.set(v, entry!.ready.has(v) ? { state: "READY", reason } : { state: "UNAVAILABLE", reason });
          return { v, error: err };
        }
      }),
    );
    const retired: ModelVersion[] = [];
    for (const r of loaded) {
      if (!r.mv) continue;
      const old = entry.ready.get(r.v);
      if (old) retired.push(old);
      entry.ready.set(r.v, r.mv);
      entry.status.set(r.v, { state: "READY", reason: "" });
      this.logger.info("model_lifecycle.ts", `successfully loaded '${name}' version ${r.v}`);
    }
    for (const [v, mv] of entry.ready) {
      if (!wanted.includes(v)) {
        entry.ready.delete(v);
        retired.push(mv);
      }
    }
    for (const v of [...entry.status.keys()]) if (!wanted.includes(v) && !entry.ready.has(v)) entry.status.delete(v);
    await Promise.all(retired.map((mv) => mv.unload()));
    const anyLoaded = loaded.some((r) => r.mv);
    if (failures.length === 0) entry.fingerprint = fp;
    // Files pushed through the load API live as long as the versions made from them.
    const staleDir = overrideDir ? (anyLoaded ? entry.overrideDir : overrideDir) : anyLoaded ? entry.overrideDir : undefined;
    if (anyLoaded) entry.overrideDir = overrideDir;
    if (staleDir && staleDir !== entry.overrideDir) await fs.rm(staleDir, { recursive: true, force: true });
    if (failures.length) {
      const first = loaded.find((r) => r.error)!.error!;
      throw new TritonError(first.code, `failed to load '${name}', ${failures.join("; ")}`);
    }
  }

  private logTables(): void {
    const rows: string[][] = [];
    for (const name of [...new Set([...this.repoModels.keys(), ...this.models.keys()])].sort()) {
      const entry = this.models.get(name);
      if (!entry) continue;
      if (entry.error && entry.status.size === 0) {
        rows.push([name, "-", `UNAVAILABLE: ${codeString(entry.error.code)}: ${entry.error.message}`]);
        continue;
      }
      for (const [v, s] of [...entry.status].sort(([a], [b]) => a - b)) {
        rows.push([name, String(v), s.state === "READY" ? "READY" : `${s.state}: ${s.reason}`]);
      }
    }
    const backends = [...new Set([...this.models.values()].flatMap((e) => [...e.ready.values()].map((m) => m.backendName)))];
    this.logger.table("server.ts", renderTable(["Backend", "Path", "Config"], backends.map((b) => [b, `tritium:${b}`, JSON.stringify(this.options.backendConfig[b] ?? {})])));
    this.logger.table("server.ts", renderTable(["Model", "Version", "Status"], rows));
    const opts: string[][] = [
      ["server_id", this.id],
      ["server_version", this.version],
      ["server_extensions", SERVER_EXTENSIONS.join(" ")],
      ...this.options.modelRepositories.map((r, i) => [`model_repository_path[${i}]`, r]),
      ["model_control_mode", `MODE_${this.options.modelControlMode.toUpperCase()}`],
      ...this.options.startupModels.map((m, i) => [`startup_models_${i}`, m]),
      ["strict_model_config", this.options.autoCompleteConfig ? "0" : "1"],
      ["rate_limit", this.loader.rateLimiter ? "EXEC_COUNT" : "OFF"],
      ...(this.options.rateLimitResources ?? []).map((r, i) => [`rate_limit_resource[${i}]`, r]),
      ["strict_readiness", this.options.strictReadiness ? "1" : "0"],
      ["exit_timeout", String(this.options.exitTimeoutSecs)],
      ["cache_enabled", this.loader.responseCache ? "1" : "0"],
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

/**
 * Writes `file:<version>/<name>` overrides into a fresh temporary model
 * directory (`<tmp>/<model>/<version>/<name>`); returns the temporary root.
 */
async function writeOverrideFiles(model: string, files: Record<string, Uint8Array>): Promise<string> {
  const root = await fs.mkdtemp(path.join(os.tmpdir(), "tritium-load-"));
  const dir = path.join(root, model);
  for (const [key, content] of Object.entries(files)) {
    const rel = key.slice("file:".length);
    const normalized = path.normalize(rel);
    if (!key.startsWith("file:") || !rel || path.isAbsolute(rel) || normalized.startsWith("..")) {
      await fs.rm(root, { recursive: true, force: true });
      throw invalidArg(`failed to load '${model}': invalid file override '${key}': expected 'file:<version>/<file name>'`);
    }
    const target = path.join(dir, normalized);
    await fs.mkdir(path.dirname(target), { recursive: true });
    await fs.writeFile(target, content);
  }
  return root;
}

async function runLimited<T>(items: readonly T[], limit: number, fn: (item: T) => Promise<unknown>): Promise<void> {
  let next = 0;
  const workers = Array.from({ length: Math.max(1, Math.min(limit, items.length)) }, async () => {
    while (next < items.length) await fn(items[next++]!);
  });
  await Promise.all(workers);
}
