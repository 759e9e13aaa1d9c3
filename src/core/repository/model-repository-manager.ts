import fs from "node:fs/promises";
import { openRepository, type RepositoryLocation } from "./repository-location.js";
import { checkModelName } from "./model-name.js";
import os from "node:os";
import path from "node:path";
import type { Backend } from "../backend.js";
import { parseVersionString } from "./version-string.js";
import { TritonError, asTritonError, codeString, invalidArg, notFound, unavailable } from "../errors.js";
import type { Logger } from "../observability/logger.js";
import { modelConfigFromJson, type ModelConfig } from "./model-config.js";
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

export type ModelControlMode = "none" | "poll" | "explicit";

/** What the repository manager needs of the server's options. */
export interface RepositoryManagerOptions {
  modelRepositories: string[];
  backends: Backend[];
  autoCompleteConfig: boolean;
  modelControlMode: ModelControlMode;
  modelLoadThreadCount: number;
  repositoryPollSecs: number;
  modelLoadOnDemand: boolean;
  modelMemoryBudget: number;
}

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
 * Triton's RepositoryManager and ModelLifecycle: which models the
 * repositories hold, which versions are loaded and in what state, and every
 * change to that (start-up, load/unload requests, polling, on-demand loads,
 * memory-budget evictions). Operations on one model run one after another;
 * different models load in parallel. The model states are described in
 * docs/model-lifecycle.md.
 */
export class ModelRepositoryManager {
  private readonly models = new Map<string, ModelEntry>();
  private repoModels = new Map<string, RepositoryModel>();
  private duplicates = new Map<string, string[]>();
  /** Load/unload operations per model name, run one after another. */
  private readonly ops = new Map<string, Promise<unknown>>();
  private pollTimer: NodeJS.Timeout | undefined;
  private stopped = false;

  /** The repositories, opened (and, for object stores, mirrored) by start(). */
  private locations: RepositoryLocation[] = [];

  constructor(
    private readonly options: RepositoryManagerOptions,
    private readonly loader: LoaderOptions,
    private readonly logger: Logger,
  ) {}

  /** Loads the start-up models (`--load-model` in explicit mode, all otherwise); failures leave the others serving. */
  async start(startupModels: readonly string[]): Promise<void> {
    this.locations = await Promise.all(this.options.modelRepositories.map(openRepository));
    await this.rescan();
    let names: string[];
    if (this.options.modelControlMode === "explicit") {
      names = startupModels.includes("*") ? [...this.repoModels.keys()] : [...startupModels];
    } else {
      names = [...this.repoModels.keys()];
    }
    for (const [name, paths] of this.duplicates) {
      this.logger.error("model_repository_manager.ts", `model '${name}' appears in multiple repositories: ${paths.join(", ")}; it is not served`);
    }
    // Ensembles last: their load checks their steps against the loaded models (and loads any still missing).
    const ensembles = new Set<string>();
    for (const n of names) if (await this.looksLikeEnsemble(n)) ensembles.add(n);
    await runLimited(names.filter((n) => !ensembles.has(n)), this.options.modelLoadThreadCount, (n) => this.loadModel(n, undefined, true).catch(() => undefined));
    await runLimited([...ensembles], this.options.modelLoadThreadCount, (n) => this.loadModel(n, undefined, true).catch(() => undefined));
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
      if (!entry || !entry.wanted || entry.fingerprint !== fp) await this.loadModel(name, undefined, true).catch(() => undefined);
    });
  }

  private schedulePoll(): void {
    this.pollTimer = setTimeout(() => {
      void this.poll()
        .catch((e) => this.logger.error("model_repository_manager.ts", `repository poll failed: ${(e as Error).message}`))
        .finally(() => {
          if (!this.stopped) this.schedulePoll();
        });
    }, this.options.repositoryPollSecs * 1000);
    this.pollTimer.unref();
  }

  /** Every model that should be loaded is READY (strict readiness). */
  /** Whether a model's config.pbtxt declares an ensemble (a cheap look before its load). */
  private async looksLikeEnsemble(name: string): Promise<boolean> {
    const repo = this.repoModels.get(name);
    if (!repo) return false;
    try {
      return /\bensemble_scheduling\b|platform\s*:\s*"ensemble"/.test(await fs.readFile(path.join(repo.dir, "config.pbtxt"), "utf8"));
    } catch {
      return false;
    }
  }

  allReady(): boolean {
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

  /**
   * The version that answers for (model, version): Triton's lookup, with its
   * messages (`Request for unknown model: ...`) and codes.
   */
  getModel(name: string, version?: string): ModelVersion {
    // As Triton, a malformed version is reported before the model is looked up.
    const wanted = version === undefined ? undefined : parseVersionString(version);
    const entry = this.models.get(name);
    if (!entry) {
      throw this.repoModels.has(name)
        ? notFound(`Request for unknown model: '${name}' is not found`)
        : invalidArg(`Request for unknown model: '${name}' is not found`);
    }
    if (wanted === undefined) {
      const versions = [...entry.ready.keys()].sort((a, b) => b - a);
      if (versions.length === 0) throw notFound(`Request for unknown model: '${name}' has no available versions`);
      return entry.ready.get(versions[0]!)!;
    }
    const v = wanted;
    const mv = entry.ready.get(v);
    if (mv && mv.state === "READY") return mv;
    const s = entry.status.get(v);
    if (s || mv) throw unavailable(`Request for unknown model: '${name}' version ${v} is not at ready state`);
    throw notFound(`Request for unknown model: '${name}' version ${v} is not found`);
  }

  /** READY versions of a model, ascending. */
  readyVersions(name: string): ModelVersion[] {
    return [...(this.models.get(name)?.ready.values() ?? [])].filter((mv) => mv.state === "READY").sort((a, b) => a.version - b.version);
  }

  /** Estimated bytes of a loaded version (its files). */
  memoryOf(name: string, version: number): number {
    return this.models.get(name)?.memory.get(version) ?? 0;
  }

  /** Marks a model as just used (least-recently-used eviction). */
  touch(name: string): void {
    const entry = this.models.get(name);
    if (entry) entry.lastUsed = Date.now();
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
  async loadModel(name: string, overrides?: LoadOverrides, justScanned = false): Promise<void> {
    checkModelName(name);
    await this.serialized(name, () => this.doLoad(name, overrides, justScanned));
    await this.enforceMemoryBudget(name);
  }

  /** Unloads every version of a model; in-flight requests finish first. */
  async unloadModel(name: string): Promise<void> {
    checkModelName(name);
    await this.serialized(name, () => this.doUnload(name));
  }

  /** On-demand loading (`--model-load-on-demand`): concurrent requests for the same cold model share one load. */
  async ensureLoaded(name: string): Promise<void> {
    const entry = this.models.get(name);
    if (entry && entry.ready.size > 0) return;
    const pending = this.ops.get(name);
    if (pending) {
      await pending.catch(() => undefined);
      if ((this.models.get(name)?.ready.size ?? 0) > 0) return;
    }
    if (!this.repoModels.has(name)) {
      await this.rescan();
      if (!this.repoModels.has(name)) return; // getModel reports the unknown model
      // Another request may have started the load while this one rescanned.
      const started = this.ops.get(name);
      if (started) {
        await started.catch(() => undefined);
        if ((this.models.get(name)?.ready.size ?? 0) > 0) return;
      }
    }
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

  /** Stops polling and unloads every model (in-flight requests finish first). */
  async stop(): Promise<void> {
    this.stopped = true;
    if (this.pollTimer) clearTimeout(this.pollTimer);
    await Promise.allSettled([...this.models.keys()].map((n) => this.unloadModel(n)));
  }

  /** Rows of Triton's start-up model table: model, version, status. */
  tableRows(): string[][] {
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
    return rows;
  }

  private async rescan(): Promise<void> {
    await Promise.all(this.locations.map((l) => l.sync()));
    const scan = await scanRepositories(this.locations.map((l) => l.path));
    this.repoModels = scan.models;
    this.duplicates = scan.duplicates;
  }

  /** `justScanned`: start and poll have just scanned (and refreshed) the repositories. */
  private async doLoad(name: string, overrides: LoadOverrides | undefined, justScanned: boolean): Promise<void> {
    // An object store is read again for a load of its own, as Triton downloads the model again.
    if (!this.repoModels.has(name) || (!justScanned && this.locations.some((l) => l.remote))) await this.rescan();
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
    if (!key.startsWith("file:") || !rel || path.isAbsolute(rel) || normalized.startsWith("..") || rel.includes("\0")) {
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
