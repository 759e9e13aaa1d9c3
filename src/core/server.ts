import type { Backend } from "./backend.js";
import { TritonError, asTritonError, codeString, invalidArg, notFound, unavailable } from "./errors.js";
import type { InferenceRequest, InferenceResponse } from "./inference.js";
import { Logger, renderTable } from "./logger.js";
import { modelConfigToJson, type ModelConfig } from "./model-config.js";
import { loadModelVersion, readModelConfig, resolveBackend, type LoaderOptions } from "./model-loader.js";
import { listVersions, missingSpecificVersions, scanRepositories, selectVersions, type RepositoryModel } from "./model-repository.js";
import type { ModelState, ModelVersion } from "./model-version.js";
import type { BatchStat, Duration } from "./statistics.js";
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
  /** `--exit-timeout-secs` (default 30): how long stop() waits for in-flight requests. */
  exitTimeoutSecs?: number;
  logger?: Logger;
}

/** The extensions this server implements, in Triton's order. */
export const SERVER_EXTENSIONS = ["classification", "model_repository", "model_configuration", "binary_tensor_data", "parameters", "statistics"];

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

interface ModelEntry {
  repo: RepositoryModel;
  /** Versions that serve requests. */
  ready: Map<number, ModelVersion>;
  /** Last known state of every version we tried, for the index and the model table. */
  status: Map<number, VersionStatus>;
  /** Set when the model itself (not one version) could not be loaded. */
  error?: TritonError;
  /** A load or unload in progress; requests for the same model queue behind it. */
  busy?: Promise<void>;
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
  private readonly options: Required<Omit<ServerOptions, "logger" | "id">>;
  private readonly loader: LoaderOptions;
  private readonly models = new Map<string, ModelEntry>();
  private repoModels = new Map<string, RepositoryModel>();
  private duplicates = new Map<string, string[]>();
  private live = false;
  private stopping = false;
  private inflight = 0;

  constructor(options: ServerOptions) {
    this.id = options.id ?? "triton";
    this.logger = options.logger ?? new Logger();
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
    };
    const defaultMaxBatchSize = Number(this.options.backendConfig["*"]?.["default-max-batch-size"] ?? 4);
    this.loader = {
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
      if (entry.error) return false;
      for (const s of entry.status.values()) if (s.state !== "READY") return false;
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
      return await this.getModel(req.model_name, req.model_version).infer(req);
    } finally {
      this.inflight--;
    }
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
    return {
      model_stats: this.modelVersions(name, version).map((mv) => {
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
          memory_usage: [],
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
   */
  async loadModel(name: string): Promise<void> {
    const entry = this.models.get(name);
    const previous = entry?.busy ?? Promise.resolve();
    const run = previous.then(() => this.doLoad(name));
    const guarded = run.catch(() => undefined);
    if (entry) entry.busy = guarded;
    try {
      await run;
    } finally {
      const e = this.models.get(name);
      if (e && e.busy === guarded) e.busy = undefined;
    }
  }

  /** Unloads every version of a model; in-flight requests finish first. */
  async unloadModel(name: string): Promise<void> {
    const entry = this.models.get(name);
    if (!entry) {
      if (!this.repoModels.has(name)) throw invalidArg(`failed to unload '${name}', no version is available`);
      return;
    }
    await entry.busy;
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
    const deadline = Date.now() + this.options.exitTimeoutSecs * 1000;
    while (this.inflight > 0 && Date.now() < deadline) {
      this.logger.info("server.ts", `Waiting for in-flight requests to complete. Remaining: ${this.inflight}`);
      await new Promise((r) => setTimeout(r, Math.min(200, Math.max(1, deadline - Date.now()))));
    }
    await Promise.allSettled([...this.models.keys()].map((n) => this.unloadModel(n)));
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

  private async doLoad(name: string): Promise<void> {
    if (!this.repoModels.has(name)) await this.rescan();
    const dup = this.duplicates.get(name);
    if (dup) throw invalidArg(`failed to load '${name}': model name appears in multiple repositories: ${dup.join(", ")}`);
    const repo = this.repoModels.get(name);
    if (!repo) throw invalidArg(`failed to load '${name}', no version is available`);
    let entry = this.models.get(name);
    if (!entry) {
      entry = { repo, ready: new Map(), status: new Map() };
      this.models.set(name, entry);
    }
    entry.repo = repo;
    entry.error = undefined;
    let config: ModelConfig;
    let wanted: number[];
    let backend: Backend;
    try {
      config = await readModelConfig(repo.dir, name, this.options.autoCompleteConfig);
      if (!config.name) config.name = name;
      const available = await listVersions(repo.dir);
      backend = await resolveBackend(config, repo.dir, available, this.options.backends);
      const missing = missingSpecificVersions(available, config);
      if (missing.length) throw invalidArg(`model '${name}': version_policy names versions [${missing.join(",")}] that have no directory`);
      wanted = selectVersions(available, config);
      if (wanted.length === 0) throw invalidArg(`model '${name}': no model version was found`);
    } catch (e) {
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
          const mv = await loadModelVersion(repo.dir, config, v, backend, this.loader);
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
      ["rate_limit", "OFF"],
      ["strict_readiness", this.options.strictReadiness ? "1" : "0"],
      ["exit_timeout", String(this.options.exitTimeoutSecs)],
      ["cache_enabled", "0"],
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

async function runLimited<T>(items: readonly T[], limit: number, fn: (item: T) => Promise<unknown>): Promise<void> {
  let next = 0;
  const workers = Array.from({ length: Math.max(1, Math.min(limit, items.length)) }, async () => {
    while (next < items.length) await fn(items[next++]!);
  });
  await Promise.all(workers);
}
