/**
 * The files of one model in a generated repository, and the config.pbtxt
 * text the model generator writes for them (scripts/make-models.ts).
 */
import type { ModelProto } from "../src/gen/onnx/onnx_pb.js";

/** Platform string Triton uses for ONNX Runtime models. */
const ONNX_PLATFORM = "onnxruntime_onnx";

/** A tensor entry in a Triton model configuration. */
export interface ConfigTensor {
  name: string;
  /** Triton config type name without the prefix, e.g. `"INT32"` for `TYPE_INT32`. */
  type: string;
  dims: readonly number[];
  /** Only for outputs: `label_filename`. */
  labelFilename?: string;
}

/** The subset of a Triton model configuration the generator writes. */
export interface ConfigSpec {
  name: string;
  maxBatchSize: number;
  inputs: readonly ConfigTensor[];
  outputs: readonly ConfigTensor[];
  /** Comment lines placed at the top of the file (without `#`). */
  header?: readonly string[];
  /** Write `instance_group [ { count: 1 kind: KIND_CPU } ]`. */
  cpuInstanceGroup?: boolean;
  /** Extra text appended verbatim (e.g. a version_policy), comments allowed. */
  extra?: string;
  /** The line naming what runs the model (default: `platform: "onnxruntime_onnx"`). */
  runtime?: string;
}

function renderTensors(key: "input" | "output", tensors: readonly ConfigTensor[]): string {
  const entries = tensors.map((t) => {
    const lines = [
      `    name: "${t.name}"`,
      `    data_type: TYPE_${t.type}`,
      `    dims: [ ${t.dims.join(", ")} ]`,
    ];
    if (t.labelFilename !== undefined) lines.push(`    label_filename: "${t.labelFilename}"`);
    return `  {\n${lines.join("\n")}\n  }`;
  });
  return `${key} [\n${entries.join(",\n")}\n]\n`;
}

/** Renders a Triton `config.pbtxt` in protobuf text format. */
export function renderConfig(spec: ConfigSpec): string {
  let out = "";
  for (const line of spec.header ?? []) out += line === "" ? "#\n" : `# ${line}\n`;
  if (spec.header?.length) out += "\n";
  out += `name: "${spec.name}"\n`;
  out += `${spec.runtime ?? `platform: "${ONNX_PLATFORM}"`}\n`;
  out += `max_batch_size: ${spec.maxBatchSize}\n`;
  out += renderTensors("input", spec.inputs);
  out += renderTensors("output", spec.outputs);
  if (spec.cpuInstanceGroup) out += "instance_group [ { count: 1 kind: KIND_CPU } ]\n";
  if (spec.extra !== undefined) out += spec.extra;
  return out;
}

// ---------------------------------------------------------------------------
// Model definitions
// ---------------------------------------------------------------------------

/** What to write for one model of a repository. */
export interface ModelFiles {
  /** Model directory name (= model name). */
  name: string;
  /** Version directory name → ONNX model. */
  versions: ReadonlyMap<string, ModelProto>;
  /** `config.pbtxt` contents; `undefined` writes no config (and removes a stale one). */
  config?: string;
  /** Other files relative to the model directory → contents. */
  extraFiles?: ReadonlyMap<string, string>;
}
