import fs from "node:fs/promises";
import path from "node:path";
import { ModelInstanceGroup_Kind, type ModelConfig, type ModelInput, type ModelOutput } from "../../gen/inference/model_config_pb.js";
import { fromConfigType, type DataType } from "../tensors/datatypes.js";
import { invalidArg } from "../errors.js";
import { configTypeName } from "./model-config.js";

/**
 * The part of a validated ModelConfig that the request path reads, in plain
 * numbers and names (the protobuf form keeps int64 as bigint and enums as
 * numbers). Built once per load; the ModelConfig stays the source of truth.
 */
export interface TensorSpec {
  name: string;
  datatype: DataType;
  /** Dims without the batch dimension; -1 is variable. */
  dims: number[];
  /** The shape the backend sees when `reshape` is set (without batch dim). */
  reshape?: number[];
  optional: boolean;
  /** Output labels from `label_filename`, for classification. */
  labels?: string[];
}

export interface ModelSpec {
  name: string;
  maxBatchSize: number;
  inputs: TensorSpec[];
  outputs: TensorSpec[];
  input: ReadonlyMap<string, TensorSpec>;
  output: ReadonlyMap<string, TensorSpec>;
}

const num = (v: bigint) => Number(v);

/**
 * Checks a (completed) config as Triton does before a model may load. Every
 * message names the model and the offending field.
 */
export function validateModelConfig(config: ModelConfig, modelName: string): void {
  const where = `model '${modelName}'`;
  if (config.name !== modelName) {
    throw invalidArg(`model configuration name '${config.name}' does not match the model directory name '${modelName}'`);
  }
  if (config.maxBatchSize < 0) throw invalidArg(`'max_batch_size' must be non-negative value for ${modelName}`);
  if (config.schedulingChoice.case === "ensembleScheduling") return;
  if (config.input.length === 0 && config.platform !== "ensemble") {
    throw invalidArg(`${where} must specify at least one input`);
  }
  if (config.output.length === 0) throw invalidArg(`${where} must specify at least one output`);
  const checkTensors = (kind: "input" | "output", tensors: (ModelInput | ModelOutput)[]) => {
    const seen = new Set<string>();
    for (const t of tensors) {
      if (!t.name) throw invalidArg(`${where}: every ${kind} must specify 'name'`);
      if (seen.has(t.name)) throw invalidArg(`${where}: ${kind} '${t.name}' is specified more than once`);
      seen.add(t.name);
      if (!fromConfigType(configTypeName(t.dataType))) {
        throw invalidArg(`${where}: ${kind} '${t.name}' must specify a valid 'data_type', got ${configTypeName(t.dataType)}`);
      }
      if (t.dims.length === 0 && !t.reshape) {
        throw invalidArg(`${where}: ${kind} '${t.name}' must specify 'dims'`);
      }
      for (const d of t.dims) {
        if (d === 0n || d < -1n) {
          throw invalidArg(`${where}: ${kind} '${t.name}' dimension must be integer >= 1, or -1 to indicate a variable-size dimension, got ${d}`);
        }
      }
      if (t.reshape) {
        const from = t.dims.map(num);
        const to = t.reshape.shape.map(num);
        const fixed = (s: number[]) => s.every((d) => d > 0);
        const count = (s: number[]) => s.reduce((a, b) => a * b, 1);
        if (fixed(from) && fixed(to) && count(from) !== count(to)) {
          throw invalidArg(`${where}: ${kind} '${t.name}' has different size for dims [${from}] and reshape [${to}]`);
        }
      }
    }
  };
  checkTensors("input", config.input);
  checkTensors("output", config.output);
  for (const [i, g] of config.instanceGroup.entries()) {
    if (g.count < 1) throw invalidArg(`${where}: instance_group[${i}] 'count' must be >= 1`);
  }
  const vp = config.versionPolicy?.policyChoice;
  if (vp?.case === "latest" && vp.value.numVersions < 1) {
    throw invalidArg(`${where}: version_policy latest num_versions must be >= 1`);
  }
  if (config.schedulingChoice.case === "dynamicBatching") {
    for (const p of config.schedulingChoice.value.preferredBatchSize) {
      if (config.maxBatchSize === 0 || p < 1 || p > config.maxBatchSize) {
        throw invalidArg(`${where}: dynamic batching preferred size ${p} must be in [1, max_batch_size ${config.maxBatchSize}]`);
      }
    }
  }
}

/** Builds the request-path view of a validated config; reads label files. */
export async function buildModelSpec(config: ModelConfig, modelDir: string): Promise<ModelSpec> {
  const tensor = async (t: ModelInput | ModelOutput, labelFile?: string): Promise<TensorSpec> => {
    const spec: TensorSpec = {
      name: t.name,
      datatype: fromConfigType(configTypeName(t.dataType))!,
      dims: t.dims.map(num),
      optional: "optional" in t ? t.optional : false,
    };
    if (t.reshape) spec.reshape = t.reshape.shape.map(num);
    if (labelFile) {
      const file = path.join(modelDir, labelFile);
      let text: string;
      try {
        text = await fs.readFile(file, "utf8");
      } catch {
        throw invalidArg(`model '${config.name}': label file '${labelFile}' for output '${t.name}' could not be read`);
      }
      spec.labels = text.split(/\r?\n/);
      if (spec.labels.at(-1) === "") spec.labels.pop();
    }
    return spec;
  };
  const inputs = await Promise.all(config.input.map((t) => tensor(t)));
  const outputs = await Promise.all(config.output.map((t) => tensor(t, t.labelFilename)));
  return {
    name: config.name,
    maxBatchSize: config.maxBatchSize,
    inputs,
    outputs,
    input: new Map(inputs.map((t) => [t.name, t])),
    output: new Map(outputs.map((t) => [t.name, t])),
  };
}

/** Kind name of an instance group, as the backend contract spells it. */
export function instanceKindName(kind: ModelInstanceGroup_Kind): "KIND_AUTO" | "KIND_GPU" | "KIND_CPU" | "KIND_MODEL" {
  switch (kind) {
    case ModelInstanceGroup_Kind.GPU: return "KIND_GPU";
    case ModelInstanceGroup_Kind.CPU: return "KIND_CPU";
    case ModelInstanceGroup_Kind.MODEL: return "KIND_MODEL";
    default: return "KIND_AUTO";
  }
}

/** Shape as Triton prints it in messages: `[-1,16]`. */
export function formatShape(shape: readonly number[]): string {
  return `[${shape.join(",")}]`;
}
