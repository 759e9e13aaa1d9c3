import { EnsembleScheduler, checkSteps, planEnsemble } from "../scheduling/ensemble-scheduler.js";
import type { Gpu } from "../devices/nvidia-smi.js";
import type { InferenceRequest, InferenceResponse } from "../requests/inference.js";
import fs from "node:fs/promises";
import path from "node:path";
import { create } from "@bufbuild/protobuf";
import {
  ModelInstanceGroupSchema,
  ModelOptimizationPolicySchema,
  ModelOptimizationPolicy_PinnedMemoryBufferSchema,
  ModelInstanceGroup_Kind,
  type ModelInstanceGroup,
  ModelVersionPolicySchema,
  ModelQueuePolicy_TimeoutAction,
  type ModelQueuePolicy,
  type ModelConfig,
} from "../../gen/inference/model_config_pb.js";
import type { Backend, BackendModelContext, BackendInstance, BackendModel, InstanceSpec } from "../backend.js";
import { DynamicBatcher } from "../scheduling/dynamic-batcher.js";
import { TritonError, asTritonError, invalidArg } from "../errors.js";
import type { Logger } from "../observability/logger.js";
import { emptyModelConfig, parseModelConfig } from "./model-config.js";
import { buildModelSpec, instanceKindName, validateModelConfig, type ModelSpec } from "./model-spec.js";
import { ModelVersion } from "./model-version.js";
import { runWarmup } from "./warmup.js";
import { RateLimitedInstance, type RateLimiter } from "../scheduling/rate-limiter.js";
import { NO_POLICY, type QueuePolicy } from "../scheduling/request-queue.js";
import type { ResponseCache } from "../scheduling/response-cache.js";
import { DefaultScheduler, type ExecutionObserver, type RequestScheduler } from "../scheduling/scheduler.js";
import { SequenceBatcher } from "../scheduling/sequence-batcher.js";

/** What the loader needs from the server's options. */
export interface LoaderOptions {
  backends: readonly Backend[];
  autoCompleteConfig: boolean;
  /** `--backend-config=<backend>,default-max-batch-size=N`, Triton's default 4. */
  defaultMaxBatchSize: number;
  backendConfig: Readonly<Record<string, Readonly<Record<string, string>>>>;
  logger: Logger;
  /** Set with `--rate-limit=execution_count`. */
  rateLimiter?: RateLimiter;
  /** Set with `--cache-config local,size=<bytes>`. */
  responseCache?: ResponseCache;
  /** The server's own inference, for models that call other models (BLS). */
  infer?: (request: InferenceRequest) => Promise<InferenceResponse>;
  /** The server's streaming inference, for models that call decoupled models. */
  stream?: BackendModelContext["stream"];
  /** An ensemble's step model, loaded first when it is not (Triton loads an ensemble's dependencies). */
  dependency?: (name: string, version: string | undefined, ensemble: string) => Promise<ModelSpec>;
  /** The machine's GPUs (none without nvidia-smi), for KIND_GPU and KIND_AUTO placement. */
  gpus: readonly Gpu[];
}

/** A backend may state how many CPU instances a model gets by default. */
type BackendWithDefaults = Backend & { readonly defaultInstanceCount?: number };

/**
 * Reads `<dir>/config.pbtxt`. Without one, auto-complete (Triton's default)
 * starts from an empty config; with auto-complete off, it is an error.
 */
export async function readModelConfig(dir: string, name: string, autoComplete: boolean): Promise<ModelConfig> {
  const file = path.join(dir, "config.pbtxt");
  let text: string | undefined;
  try {
    text = await fs.readFile(file, "utf8");
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code !== "ENOENT") throw invalidArg(`failed to read ${file}: ${(e as Error).message}`);
  }
  if (text === undefined) {
    if (!autoComplete) {
      throw invalidArg(`model '${name}' has no config.pbtxt and auto-complete is disabled (--disable-auto-complete-config)`);
    }
    return emptyModelConfig();
  }
  return parseModelConfig(text, file);
}

/**
 * Picks the backend named by `backend` or `platform`, filling whichever is
 * missing (`onnxruntime_onnx` ⇔ `onnxruntime`). With neither, the model's
 * files decide (a `model.onnx` means ONNX Runtime), as auto-complete does.
 */
export async function resolveBackend(config: ModelConfig, dir: string, versions: readonly number[], backends: readonly Backend[]): Promise<Backend> {
  const name = config.name;
  if (config.platform === "ensemble" || (!config.platform && !config.backend && config.schedulingChoice.case === "ensembleScheduling")) {
    config.platform = "ensemble";
    return ENSEMBLE;
  }
  if (config.backend) {
    const b = backends.find((x) => x.name === config.backend);
    if (!b) throw invalidArg(`unable to find backend '${config.backend}' for model '${name}'`);
    if (config.platform && !b.platforms.includes(config.platform)) {
      throw invalidArg(`model '${name}': platform '${config.platform}' does not match backend '${config.backend}'`);
    }
    if (!config.platform && b.platforms[0]) config.platform = b.platforms[0];
    return b;
  }
  if (config.platform) {
    const b = backends.find((x) => x.platforms.includes(config.platform));
    if (!b) throw invalidArg(`unexpected platform type '${config.platform}' for ${name}`);
    config.backend = b.name;
    return b;
  }
  for (const v of [...versions].reverse()) {
    for (const b of backends) {
      const files = config.defaultModelFilename ? [config.defaultModelFilename] : [b.defaultModelFilename, ...(b.alternativeModelFilenames ?? [])];
      // A backend that needs no model file (identity) is only ever chosen by name.
      if (!files[0]) continue;
      if ((await firstExisting(path.join(dir, String(v)), files)) !== undefined) {
        config.backend = b.name;
        if (b.platforms[0]) config.platform = b.platforms[0];
        return b;
      }
    }
  }
  throw invalidArg(`model '${name}' must specify 'backend' or 'platform', and no model file of a known backend was found`);
}

/**
 * Stands for core's ensemble scheduler where a backend is expected: an
 * ensemble has no backend, no model file and no instances.
 */
const ENSEMBLE: Backend = {
  name: "",
  platforms: ["ensemble"],
  defaultModelFilename: "",
  createModel: () => Promise.reject(new Error("an ensemble has no backend model")),
};

/** An ensemble version: its plan checked, its steps run by the ensemble scheduler. */
async function loadEnsemble(dir: string, config: ModelConfig, version: number, options: LoaderOptions): Promise<ModelVersion> {
  if (!options.infer) throw invalidArg(`ensemble '${config.name}' cannot run: this server gives models no way to call other models`);
  validateModelConfig(config, config.name);
  const plan = planEnsemble(config);
  if (options.dependency) await checkSteps(config, plan, (model, v) => options.dependency!(model, v, config.name));
  const spec = await buildModelSpec(config, dir);
  const scheduler = new EnsembleScheduler(config.name, plan, options.infer);
  const none: BackendModel = { createInstance: () => Promise.reject(new Error("an ensemble has no instances")), release: async () => undefined };
  return new ModelVersion(config.name, version, config, spec, "", none, [], scheduler);
}

/**
 * Loads one version: backend model, auto-complete, validation, instances and
 * scheduler. On failure every instance already started is released.
 */
export async function loadModelVersion(
  dir: string,
  baseConfig: ModelConfig,
  version: number,
  backend: Backend,
  options: LoaderOptions,
): Promise<ModelVersion> {
  const name = baseConfig.name;
  let config: ModelConfig = structuredClone(baseConfig);
  if (backend === ENSEMBLE) return loadEnsemble(dir, config, version, options);
  const candidates = config.defaultModelFilename ? [config.defaultModelFilename] : [backend.defaultModelFilename, ...(backend.alternativeModelFilenames ?? [])];
  const modelFile = (await firstExisting(path.join(dir, String(version)), candidates)) ?? candidates[0]!;
  const modelPath = path.join(dir, String(version), modelFile);
  if (!(await exists(modelPath))) {
    throw invalidArg(`model '${name}' version ${version}: model file '${modelPath}' not found`);
  }
  const backendModel: BackendModel = await backend.createModel({
    name,
    version,
    modelDir: dir,
    modelPath,
    config,
    backendConfig: options.backendConfig[backend.name] ?? {},
    logger: options.logger,
    infer: options.infer,
    stream: options.stream,
  });
  const instances: BackendInstance[] = [];
  try {
    if (options.autoCompleteConfig && backendModel.autoCompleteConfig) {
      config = backendModel.autoCompleteConfig(config, options.defaultMaxBatchSize);
    }
    fillDefaults(config, (backend as BackendWithDefaults).defaultInstanceCount ?? 1, backend.gpuCapable === true && options.gpus.length > 0);
    // Triton's AutoCompleteBackendFields names the backend's default file.
    if (!config.defaultModelFilename) config.defaultModelFilename = backend.defaultModelFilename;
    validateModelConfig(config, name);
    if (config.modelTransactionPolicy?.decoupled && config.schedulingChoice.case === "sequenceBatching") {
      throw invalidArg(`model '${name}': a decoupled model cannot use sequence_batching in Tritium yet (its responses would not reach the client)`);
    }
    reportIgnoredFields(config, options.logger);
    const spec = await buildModelSpec(config, dir);
    for (const [gi, group] of config.instanceGroup.entries()) {
      for (const spec of placeInstances(name, gi, group, options.gpus)) {
        let instance = await backendModel.createInstance(config, spec);
        // With --rate-limit=execution_count, an instance runs only when its resources are free.
        if (options.rateLimiter && group.rateLimiter) {
          const rl = group.rateLimiter;
          instance = new RateLimitedInstance(instance, options.rateLimiter, {
            resources: rl.resources.map((r) => ({ name: r.name, global: r.global, count: r.count })),
            priority: rl.priority,
          });
        }
        instances.push(instance);
      }
    }
    // Warm-up runs on every instance before the version can be READY.
    await runWarmup(config, dir, instances);
    // The model version is created before its scheduler can report executions.
    let mv: ModelVersion | undefined;
    const onExecution: ExecutionObserver = (n, t) =>
      mv?.recordExecution(n, t?.computeInputNs ?? 0, t?.computeInferNs ?? 0, t?.computeOutputNs ?? 0);
    const scheduler = makeScheduler(config, dir, instances, onExecution);
    const cache = config.responseCache?.enable ? options.responseCache : undefined;
    if (config.responseCache?.enable && !cache) {
      options.logger.warn("model_loader.ts", `model '${name}' enables response_cache but the server has no cache (--cache-config local,size=<bytes>)`);
    }
    mv = new ModelVersion(name, version, config, spec, backend.name, backendModel, instances, scheduler, cache);
    return mv;
  } catch (e) {
    await Promise.allSettled(instances.map((i) => i.release()));
    await backendModel.release().catch(() => undefined);
    throw e instanceof TritonError ? e : asTritonError(e);
  }
}

function makeScheduler(config: ModelConfig, dir: string, instances: BackendInstance[], onExecution: ExecutionObserver): RequestScheduler {
  const choice = config.schedulingChoice;
  if (choice.case === "sequenceBatching") return new SequenceBatcher(config, dir, instances, onExecution);
  if (choice.case === "dynamicBatching" && config.maxBatchSize > 0) {
    const db = choice.value;
    const policy = (p: ModelQueuePolicy | undefined): QueuePolicy =>
      p
        ? {
            timeoutAction: p.timeoutAction === ModelQueuePolicy_TimeoutAction.DELAY ? "DELAY" : "REJECT",
            defaultTimeoutUs: Number(p.defaultTimeoutMicroseconds),
            allowTimeoutOverride: p.allowTimeoutOverride,
            maxQueueSize: p.maxQueueSize,
          }
        : NO_POLICY;
    const levels = Number(db.priorityLevels);
    const defaultLevel = Number(db.defaultPriorityLevel);
    if (levels > 0 && (defaultLevel < 1 || defaultLevel > levels)) {
      throw invalidArg(`model '${config.name}': default_priority_level must be in [1, ${levels}], got ${defaultLevel}`);
    }
    return new DynamicBatcher(config.name, instances, onExecution, {
      maxBatchSize: config.maxBatchSize,
      preferredBatchSizes: db.preferredBatchSize,
      maxQueueDelayUs: Number(db.maxQueueDelayMicroseconds),
      preserveOrdering: db.preserveOrdering,
      queue: {
        priorityLevels: levels,
        defaultPriorityLevel: defaultLevel,
        defaultPolicy: policy(db.defaultQueuePolicy),
        levelPolicies: new Map(Object.entries(db.priorityQueuePolicy).map(([k, v]) => [Number(k), policy(v)])),
      },
    });
  }
  return new DefaultScheduler(config.name, instances, onExecution);
}

/** Fills what Triton fills in a completed config, so `/config` shows it. */
function fillDefaults(config: ModelConfig, defaultInstanceCount: number, onGpus: boolean): void {
  if (!config.versionPolicy) {
    config.versionPolicy = create(ModelVersionPolicySchema, { policyChoice: { case: "latest", value: { numVersions: 1 } } });
  }
  // Triton's NormalizeModelConfig: pinned memory on unless the config says otherwise.
  if (config.schedulingChoice.case !== "ensembleScheduling") {
    config.optimization ??= create(ModelOptimizationPolicySchema);
    config.optimization.inputPinnedMemory ??= create(ModelOptimizationPolicy_PinnedMemoryBufferSchema, { enable: true });
    config.optimization.outputPinnedMemory ??= create(ModelOptimizationPolicy_PinnedMemoryBufferSchema, { enable: true });
  }
  // ... and a dynamic batcher without preferred sizes prefers max_batch_size.
  if (config.schedulingChoice.case === "dynamicBatching" && config.schedulingChoice.value.preferredBatchSize.length === 0 && config.maxBatchSize > 0) {
    config.schedulingChoice.value.preferredBatchSize.push(config.maxBatchSize);
  }
  if (config.instanceGroup.length === 0) {
    config.instanceGroup.push(create(ModelInstanceGroupSchema, { name: config.name, kind: ModelInstanceGroup_Kind.CPU, count: defaultInstanceCount }));
  }
  for (const [i, g] of config.instanceGroup.entries()) {
    // Triton names a group the config leaves unnamed `<model>_<index>`.
    if (!g.name) g.name = `${config.name}_${i}`;
    if (g.count === 0) g.count = defaultInstanceCount;
    // KIND_AUTO: the GPUs where there are any and the backend can use them, else the CPU.
    if (g.kind === ModelInstanceGroup_Kind.AUTO) g.kind = onGpus ? ModelInstanceGroup_Kind.GPU : ModelInstanceGroup_Kind.CPU;
  }
}

/**
 * The instances of instance group `index`, as Triton places them: `count`
 * on the CPU, or `count` on each GPU the group lists (every GPU of the
 * machine when it lists none).
 */
export function placeInstances(model: string, index: number, group: Pick<ModelInstanceGroup, "name" | "kind" | "count" | "gpus">, gpus: readonly Gpu[]): InstanceSpec[] {
  const devices = group.kind === ModelInstanceGroup_Kind.GPU ? gpuDevices(model, index, group.gpus, gpus) : [0];
  return devices.flatMap((deviceId, d) =>
    Array.from({ length: group.count }, (_, i) => ({ name: `${group.name}_${index}_${d * group.count + i}`, kind: instanceKindName(group.kind), deviceId })),
  );
}

/** The devices of a KIND_GPU group: its `gpus`, each checked against the machine's, or all of them. */
function gpuDevices(model: string, group: number, listed: readonly number[], gpus: readonly Gpu[]): number[] {
  if (gpus.length === 0) {
    throw invalidArg(`model '${model}': instance_group[${group}] has kind KIND_GPU but this machine has no usable GPU (nvidia-smi lists none); use KIND_CPU, or KIND_AUTO to take GPUs where there are any`);
  }
  const present = new Set(gpus.map((g) => g.index));
  for (const id of listed) {
    if (!present.has(id)) throw invalidArg(`model '${model}': instance_group[${group}] names GPU ${id}, but this machine has GPUs ${[...present].join(", ")}`);
  }
  return listed.length ? [...listed] : [...present];
}

/** Config fields Tritium accepts but does not act on yet: said once, at load. */
function reportIgnoredFields(config: ModelConfig, logger: Logger): void {
  const ignored: string[] = [];
  if (config.schedulingChoice.case === "sequenceBatching") {
    const sb = config.schedulingChoice.value;
    if (sb.iterativeSequence) ignored.push("sequence_batching.iterative_sequence");
    if (sb.strategyChoice.case === "oldest" && sb.strategyChoice.value.preferredBatchSize.length) ignored.push("sequence_batching.oldest.preferred_batch_size");
  }
  if (config.batchInput.length || config.batchOutput.length) ignored.push("batch_input/batch_output");
  if (config.modelRepositoryAgents) ignored.push("model_repository_agents");
  if (ignored.length) logger.warn("model_loader.ts", `model '${config.name}': configuration fields accepted but not acted on yet: ${ignored.join(", ")}`);
}

/** The first of `files` present in `dir`. */
async function firstExisting(dir: string, files: readonly string[]): Promise<string | undefined> {
  for (const f of files) if (await exists(path.join(dir, f))) return f;
  return undefined;
}

async function exists(p: string): Promise<boolean> {
  try {
    await fs.stat(p);
    return true;
  } catch {
    return false;
  }
}
