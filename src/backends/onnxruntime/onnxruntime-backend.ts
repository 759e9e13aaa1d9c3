/**
 * The ONNX Runtime backend (Triton's `onnxruntime` backend, platform
 * `onnxruntime_onnx`), on onnxruntime-node's CPU execution provider.
 *
 * Every instance is a worker thread with its own InferenceSession; the main
 * thread never loads ONNX Runtime. The worker started by `createModel` reads
 * the model's inputs and outputs for auto-complete and then becomes instance
 * 0, so a model file is parsed once for both.
 */
import fs from "node:fs/promises";
import path from "node:path";
import { clone, create } from "@bufbuild/protobuf";
import {
  DataType as PbDataType,
  ModelDynamicBatchingSchema,
  ModelInputSchema,
  ModelOutputSchema,
  ModelConfigSchema,
  ModelTensorReshapeSchema,
  type ModelConfig,
} from "../../gen/inference/model_config_pb.js";
import type { Backend, BackendInstance, BackendModel, BackendModelContext, InstanceSpec } from "../../core/backend.js";
import { TritonError, internal, invalidArg } from "../../core/errors.js";
import { EventLoopSession } from "./event-loop-session.js";
import { cudaAvailable, gpuProviders } from "./gpu-providers.js";
import { OnnxRuntimeInstance, OrtWorker, sameOptions, type OrtSession } from "./instance.js";
import type { OrtModelMetadata, OrtSessionOptions, OrtValueInfo } from "./protocol.js";

const SOURCE = "onnxruntime-backend.ts";
const MODEL_FILE = "model.onnx";

export class OnnxRuntimeBackend implements Backend {
  readonly name = "onnxruntime";
  readonly platforms: readonly string[] = ["onnxruntime_onnx"];
  readonly defaultModelFilename = MODEL_FILE;
  /** Triton gives an ONNX Runtime model two CPU instances when instance_group says nothing. */
  readonly defaultInstanceCount = 2;
  /** Only where onnxruntime-node's CUDA provider is installed. */
  readonly gpuCapable = cudaAvailable();

  async createModel(ctx: BackendModelContext): Promise<BackendModel> {
    const options = sessionOptions(ctx.config, ctx.name);
    const globalPool = ctx.backendConfig["enable-global-threadpool"];
    if (globalPool !== undefined && /^(1|true|on)$/i.test(globalPool.trim())) {
      ctx.logger.warn(SOURCE, `backend config 'enable-global-threadpool' is not supported by onnxruntime-node and is ignored: every session of model '${ctx.name}' has its own thread pools`);
    }
    const modelFile = await resolveModelFile(ctx.modelPath);
    const worker = new OrtWorker({
      model: ctx.name,
      version: ctx.version,
      path: modelFile,
      options,
      instance: "",
      maxBatchSize: ctx.config.maxBatchSize,
    });
    let metadata: OrtModelMetadata;
    try {
      metadata = await worker.ready;
    } catch (e) {
      await worker.terminate();
      throw e instanceof TritonError ? e : internal(`model '${ctx.name}' version ${ctx.version}: failed to load ONNX model '${modelFile}': ${String(e)}`);
    }
    ctx.logger.verbose(1, SOURCE, `model '${ctx.name}' version ${ctx.version}: loaded ONNX model '${modelFile}'`);
    return new OnnxRuntimeModel(ctx, modelFile, options, worker, metadata);
  }
}

/** A loaded ONNX model version and the instances made from it. */
class OnnxRuntimeModel implements BackendModel {
  /** The worker that loaded the model; it becomes the first instance. */
  private probe: OrtWorker | undefined;
  private readonly instances = new Set<BackendInstance>();

  constructor(
    private readonly ctx: BackendModelContext,
    private readonly modelFile: string,
    private readonly probeOptions: OrtSessionOptions,
    probe: OrtWorker,
    readonly metadata: OrtModelMetadata,
  ) {
    this.probe = probe;
  }

  autoCompleteConfig(config: ModelConfig, defaultMaxBatchSize: number): ModelConfig {
    return autoCompleteOnnxConfig(config, this.metadata, this.ctx.name, defaultMaxBatchSize);
  }

  async createInstance(config: ModelConfig, spec: InstanceSpec): Promise<BackendInstance> {
    const name = this.ctx.name;
    const options = sessionOptions(config, name);
    if (spec.kind === "KIND_GPU") options.executionProviders = gpuProviders(config, name, spec.name, spec.deviceId);
    validateAgainstModel(config, this.metadata, name);
    const onEventLoop = executionThread(config, name) === "event_loop";
    let worker: OrtSession;
    const probe = this.probe;
    this.probe = undefined;
    if (!onEventLoop && probe?.alive) {
      worker = probe;
      try {
        // The probe's session already has the right options unless the final config changed them.
        await worker.call({
          type: "configure",
          instance: spec.name,
          maxBatchSize: config.maxBatchSize,
          ...(sameOptions(options, this.probeOptions) ? {} : { options }),
        });
      } catch (e) {
        await worker.terminate();
        throw e;
      }
    } else {
      if (probe) await probe.terminate();
      const init = { model: name, version: this.ctx.version, path: this.modelFile, options, instance: spec.name, maxBatchSize: config.maxBatchSize };
      if (onEventLoop) {
        this.ctx.logger.warn(SOURCE, `model '${name}' instance '${spec.name}' runs on the event loop (execution_thread: event_loop): nothing else is served while it computes`);
      }
      worker = onEventLoop ? new EventLoopSession(init) : new OrtWorker(init);
      try {
        await worker.ready;
      } catch (e) {
        await worker.terminate();
        throw e;
      }
    }
    worker.setLabel(`model '${name}' instance '${spec.name}'`);
    this.ctx.logger.verbose(1, SOURCE, `created ONNX Runtime session for instance '${spec.name}' of model '${name}'`);
    // Scalar model outputs of a non-batching model are configured as dims [1] (as auto-complete does).
    const scalarOutputs = config.maxBatchSize > 0 ? [] : config.output
      .filter((o) => !o.reshape && this.metadata.outputs.find((m) => m.name === o.name)?.shape.length === 0)
      .map((o) => o.name);
    // A worker that dies (a native crash, an out-of-memory abort) fails its own
    // batches; the instance then starts a fresh one for the batches after them.
    const restart = onEventLoop ? undefined : () => {
      this.ctx.logger.warn(SOURCE, `model '${name}' instance '${spec.name}': the onnxruntime worker thread ended unexpectedly; starting a new one`);
      const fresh = new OrtWorker({ model: name, version: this.ctx.version, path: this.modelFile, options, instance: spec.name, maxBatchSize: config.maxBatchSize });
      fresh.setLabel(`model '${name}' instance '${spec.name}'`);
      return fresh;
    };
    const instance: OnnxRuntimeInstance = new OnnxRuntimeInstance(spec.name, worker, () => this.instances.delete(instance), scalarOutputs, restart);
    this.instances.add(instance);
    return instance;
  }

  async release(): Promise<void> {
    const probe = this.probe;
    this.probe = undefined;
    await Promise.allSettled([probe?.close(), ...[...this.instances].map((i) => i.release())]);
    this.instances.clear();
  }
}

// ---------------------------------------------------------------------------
// Configuration

/**
 * Tritium's `execution_thread` parameter: `worker` (the default: the session
 * runs in the instance's worker thread) or `event_loop` (on the main thread;
 * see event-loop-session.ts for the risk).
 */
export function executionThread(config: ModelConfig, name: string): "worker" | "event_loop" {
  const v = config.parameters["execution_thread"]?.stringValue;
  if (v === undefined || v === "worker") return "worker";
  if (v === "event_loop") return "event_loop";
  throw invalidArg(`model '${name}': parameter 'execution_thread' must be 'worker' or 'event_loop', got '${v}'`);
}

/** `ctx.modelPath` may be the .onnx file or a directory holding `model.onnx`. */
async function resolveModelFile(modelPath: string): Promise<string> {
  try {
    if ((await fs.stat(modelPath)).isDirectory()) return path.join(modelPath, MODEL_FILE);
  } catch {
    // A missing file is reported by ONNX Runtime, with the path, as a load error.
  }
  return modelPath;
}

/**
 * Session options from the config, as Triton's ONNX Runtime backend reads them:
 * `parameters` `intra_op_thread_count`, `inter_op_thread_count` (0 or less: ORT's
 * default), `execution_mode` (0 sequential, 1 parallel), `enable_mem_arena`,
 * `enable_mem_pattern`; `optimization.graph.level` -1 basic, 1 extended,
 * 2 disabled, anything else all optimizations.
 */
export function sessionOptions(config: ModelConfig, name: string): OrtSessionOptions {
  const param = (key: string): string | undefined => config.parameters[key]?.stringValue;
  const int = (key: string): number | undefined => {
    const v = param(key);
    if (v === undefined) return undefined;
    if (!/^\s*[+-]?\d+\s*$/.test(v) || !Number.isSafeInteger(Number(v))) {
      throw invalidArg(`model '${name}': parameter '${key}' must be an integer, got '${v}'`);
    }
    return Number(v);
  };
  const bool = (key: string): boolean | undefined => {
    const v = param(key);
    if (v === undefined) return undefined;
    const l = v.trim().toLowerCase();
    if (l === "true" || l === "on" || l === "1") return true;
    if (l === "false" || l === "off" || l === "0") return false;
    throw invalidArg(`model '${name}': parameter '${key}' must be a boolean (true/false, on/off or 1/0), got '${v}'`);
  };

  const level = config.optimization?.graph?.level ?? 0;
  const options: OrtSessionOptions = {
    graphOptimizationLevel: level === -1 ? "basic" : level === 1 ? "extended" : level === 2 ? "disabled" : "all",
  };
  const mode = int("execution_mode") ?? 0;
  if (mode !== 0 && mode !== 1) {
    throw invalidArg(`model '${name}': parameter 'execution_mode' must be 0 (sequential) or 1 (parallel), got '${param("execution_mode")}'`);
  }
  options.executionMode = mode === 0 ? "sequential" : "parallel";
  const intra = int("intra_op_thread_count");
  if (intra !== undefined && intra > 0) options.intraOpNumThreads = intra;
  const inter = int("inter_op_thread_count");
  if (inter !== undefined && inter > 0) options.interOpNumThreads = inter;
  const arena = bool("enable_mem_arena");
  if (arena !== undefined) options.enableCpuMemArena = arena;
  const pattern = bool("enable_mem_pattern");
  if (pattern !== undefined) options.enableMemPattern = pattern;
  return options;
}

const CONFIG_TYPE: Readonly<Record<string, PbDataType>> = {
  float32: PbDataType.TYPE_FP32,
  float16: PbDataType.TYPE_FP16,
  float64: PbDataType.TYPE_FP64,
  int8: PbDataType.TYPE_INT8,
  int16: PbDataType.TYPE_INT16,
  int32: PbDataType.TYPE_INT32,
  int64: PbDataType.TYPE_INT64,
  uint8: PbDataType.TYPE_UINT8,
  uint16: PbDataType.TYPE_UINT16,
  uint32: PbDataType.TYPE_UINT32,
  uint64: PbDataType.TYPE_UINT64,
  bool: PbDataType.TYPE_BOOL,
  string: PbDataType.TYPE_STRING,
};

/** The config datatype of an ONNX Runtime type name (`float32` → TYPE_FP32). */
export function configDataType(info: OrtValueInfo, name: string, kind: "input" | "output"): PbDataType {
  const dt = info.isTensor && info.type ? CONFIG_TYPE[info.type] : undefined;
  if (dt === undefined) {
    const what = info.isTensor ? `ONNX Runtime type '${info.type}'` : "a non-tensor type (sequence, map or optional)";
    throw invalidArg(`model '${name}': ${kind} '${info.name}' has ${what}, which has no Triton datatype`);
  }
  return dt;
}

const isDynamic = (d: number | string): boolean => typeof d === "string" || d < 0;

function checkNamesInModel(config: ModelConfig, metadata: OrtModelMetadata, name: string): void {
  const check = (kind: "input" | "output", names: string[], model: OrtValueInfo[]) => {
    const known = new Set(model.map((m) => m.name));
    for (const n of names) {
      if (!known.has(n)) {
        throw invalidArg(`unable to load model '${name}': configuration ${kind} '${n}' is not an ${kind} of the ONNX model; the model's ${kind}s are: ${model.map((m) => m.name).join(", ") || "(none)"}`);
      }
    }
  };
  check("input", config.input.map((i) => i.name), metadata.inputs);
  check("output", config.output.map((o) => o.name), metadata.outputs);
}

/**
 * Triton's ONNX Runtime auto-complete. Fills `backend`/`platform`; when the
 * config lacks its `input` or `output` section (or an entry lacks dims or
 * datatype), guesses batching and fills them from the model:
 *  - every model input and output has a dynamic first dim, and max_batch_size
 *    is 0: max_batch_size becomes `defaultMaxBatchSize`;
 *  - with max_batch_size > 0 the model's first dim is the batch dim and is
 *    left out of `dims`; other dynamic dims become -1;
 *  - max_batch_size > 1 and no scheduler: dynamic batching is turned on.
 * What the config sets is never overridden.
 */
export function autoCompleteOnnxConfig(config: ModelConfig, metadata: OrtModelMetadata, name: string, defaultMaxBatchSize: number): ModelConfig {
  const cfg = clone(ModelConfigSchema, config);
  if (!cfg.backend) cfg.backend = "onnxruntime";
  if (!cfg.platform) cfg.platform = "onnxruntime_onnx";
  checkNamesInModel(cfg, metadata, name);

  const incomplete = (e: { dims: bigint[]; dataType: PbDataType }) => e.dims.length === 0 || e.dataType === PbDataType.TYPE_INVALID;
  const needInputs = cfg.input.length + cfg.batchInput.length === 0;
  const needOutputs = cfg.output.length === 0;
  if (!needInputs && !needOutputs && !cfg.input.some(incomplete) && !cfg.output.some(incomplete)) return cfg;

  const all = [...metadata.inputs, ...metadata.outputs];
  const canBatch = all.length > 0 && all.every((m) => m.shape.length > 0 && isDynamic(m.shape[0]!));
  if (canBatch) {
    if (cfg.maxBatchSize === 0) cfg.maxBatchSize = Math.max(defaultMaxBatchSize, 0);
    if (cfg.maxBatchSize > 1 && cfg.schedulingChoice.case === undefined) {
      cfg.schedulingChoice = { case: "dynamicBatching", value: create(ModelDynamicBatchingSchema) };
    }
  } else if (cfg.maxBatchSize !== 0) {
    throw invalidArg(`autofill failed for model '${name}': model does not support batching while non-zero max_batch_size is specified`);
  }

  const batched = cfg.maxBatchSize > 0;
  /** Config dims of a model tensor, and whether it needs `reshape: { shape: [] }` (a batched scalar). */
  const dimsOf = (m: OrtValueInfo): { dims: bigint[]; scalarReshape: boolean } => {
    const dims = m.shape.slice(batched ? 1 : 0).map((d) => (isDynamic(d) ? -1n : BigInt(d)));
    if (dims.length > 0) return { dims, scalarReshape: false };
    return { dims: [1n], scalarReshape: batched };
  };

  for (const [kind, model, entries] of [
    ["input", metadata.inputs, cfg.input],
    ["output", metadata.outputs, cfg.output],
  ] as const) {
    if ((kind === "input" && needInputs) || (kind === "output" && needOutputs)) {
      for (const m of model) {
        const { dims, scalarReshape } = dimsOf(m);
        const entry = { name: m.name, dataType: configDataType(m, name, kind), dims, ...(scalarReshape ? { reshape: create(ModelTensorReshapeSchema, { shape: [] }) } : {}) };
        if (kind === "input") cfg.input.push(create(ModelInputSchema, entry));
        else cfg.output.push(create(ModelOutputSchema, entry));
      }
      continue;
    }
    for (const e of entries) {
      const m = model.find((x) => x.name === e.name)!;
      if (e.dataType === PbDataType.TYPE_INVALID) e.dataType = configDataType(m, name, kind);
      if (e.dims.length === 0) {
        const { dims, scalarReshape } = dimsOf(m);
        e.dims = dims;
        if (scalarReshape && !e.reshape) e.reshape = create(ModelTensorReshapeSchema, { shape: [] });
      }
    }
  }
  return cfg;
}

/**
 * Checks the final config against the model, as Triton's ONNX Runtime backend
 * does when it creates an instance: every configured input and output exists
 * in the model with the same datatype and a compatible shape.
 */
export function validateAgainstModel(config: ModelConfig, metadata: OrtModelMetadata, name: string): void {
  checkNamesInModel(config, metadata, name);
  const batched = config.maxBatchSize > 0;
  const check = (kind: "input" | "output", e: { name: string; dataType: PbDataType; dims: bigint[]; reshape?: { shape: bigint[] } }, model: OrtValueInfo[]) => {
    const m = model.find((x) => x.name === e.name)!;
    const expected = configDataType(m, name, kind);
    if (e.dataType !== expected) {
      throw invalidArg(`unable to load model '${name}': configuration expects datatype ${PbDataType[e.dataType]} for ${kind} '${e.name}', model provides ${PbDataType[expected]}`);
    }
    const shape = (e.reshape ? e.reshape.shape : e.dims).map(Number);
    const full = batched ? [-1, ...shape] : shape;
    const modelShape = m.shape.map((d) => (typeof d === "string" || d < 0 ? -1 : d));
    // A scalar (or unknown-rank) model tensor: Triton configures it as dims [1].
    if (modelShape.length === 0) return;
    const fmt = (s: number[]) => `[${s.join(",")}]`;
    const mismatch =
      modelShape.length !== full.length ||
      modelShape.some((d, i) => d !== -1 && !(batched && i === 0) && full[i] !== d);
    if (mismatch) {
      throw invalidArg(
        `unable to load model '${name}': model ${kind} '${e.name}' has shape ${fmt(modelShape)} but the configuration specifies ${fmt(full)}` +
          (batched ? " (a batch dimension, because max_batch_size > 0, followed by the configured dims)" : ""),
      );
    }
  };
  for (const i of config.input) check("input", i, metadata.inputs);
  for (const o of config.output) check("output", o, metadata.outputs);
}
