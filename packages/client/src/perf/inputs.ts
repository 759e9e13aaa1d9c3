/**
 * The tensors tritium-perf sends: shapes from the model's metadata (and
 * configuration, where the server has the extension), variable dimensions
 * from `--shape`, values random, zero, or read from a perf_analyzer JSON
 * data file. Made once per run, before any measurement.
 */
import { readFile } from "node:fs/promises";
import type { Datatype, InferenceServerClient, InferInput, ModelMetadata, TensorMetadata } from "../index.js";
import { UsageError, type PerfOptions } from "./args.js";

/** The request bodies to cycle through: one list of inputs per data entry. */
export type InputSets = InferInput[][];

/** Whether the model batches: from its configuration when the server has one, else from a leading -1 on every input. */
async function maxBatchSize(client: InferenceServerClient, options: PerfOptions, meta: ModelMetadata): Promise<number> {
  try {
    return (await client.getModelConfig(options.model, options.modelVersion)).max_batch_size ?? 0;
  } catch {
    // Plain KServe v2 servers have no /config: guess as perf_analyzer's metadata-only path would.
    return meta.inputs.every((t) => t.shape[0] === -1) ? Number.MAX_SAFE_INTEGER : 0;
  }
}

/** An input's full shape: the batch dimension (when batching) and its dims, variable ones from --shape. */
function shapeOf(t: TensorMetadata, batching: boolean, options: PerfOptions): number[] {
  const dims = batching ? t.shape.slice(1) : t.shape;
  const given = options.shapes.get(t.name);
  if (given && given.length !== dims.length) throw new UsageError(`--shape ${t.name} gives ${given.length} dims, the model's input has ${dims.length} (${JSON.stringify(dims)})`);
  const full = dims.map((d, i) => {
    if (given) return given[i]!;
    if (d < 0) throw new UsageError(`input '${t.name}' has a variable dimension (${JSON.stringify(t.shape)}): give it with --shape ${t.name}:<dims>`);
    return d;
  });
  return batching ? [options.batchSize, ...full] : full;
}

function randomValues(datatype: Datatype, count: number, zero: boolean): InferInput["data"] {
  const pick = (n: number) => (zero ? 0 : Math.floor(Math.random() * n));
  switch (datatype) {
    case "BYTES":
      return Array.from({ length: count }, () => (zero ? "0" : Math.random().toString(36).slice(2, 10)));
    case "BOOL":
      return Array.from({ length: count }, () => pick(2) === 1);
    case "FP32":
    case "FP64":
      return Array.from({ length: count }, () => (zero ? 0 : Math.random()));
    case "FP16":
    case "BF16":
      // 0x3c00-ish bit patterns: finite values near 1 in either format, never NaN.
      return Uint16Array.from({ length: count }, () => (zero ? 0 : 0x3c00 + pick(256)));
    case "INT64":
    case "UINT64":
      return Array.from({ length: count }, () => BigInt(pick(100)));
    default:
      // Small non-negative values fit every integer type.
      return Array.from({ length: count }, () => pick(100));
  }
}

interface DataEntryTensor {
  content?: unknown;
  shape?: number[];
}

/** perf_analyzer's data file: `{"data": [{"INPUT0": [...] | {"content": [...], "shape": [...]}}, ...]}`. */
async function fileInputs(file: string, meta: ModelMetadata, batching: boolean, options: PerfOptions): Promise<InputSets> {
  let json: { data?: Record<string, unknown>[] };
  try {
    json = JSON.parse(await readFile(file, "utf8")) as typeof json;
  } catch (e) {
    throw new UsageError(`--input-data ${file}: ${(e as Error).message}`);
  }
  if (!Array.isArray(json.data) || json.data.length === 0) throw new UsageError(`--input-data ${file}: expected {"data": [ {<input>: [values]}, ... ]}`);
  return json.data.map((entry, n) =>
    meta.inputs.map((t) => {
      const value = entry[t.name];
      if (value === undefined) throw new UsageError(`--input-data ${file}: entry ${n} has no data for input '${t.name}'`);
      const tensor: DataEntryTensor = Array.isArray(value) ? { content: value } : (value as DataEntryTensor);
      const values = (Array.isArray(tensor.content) ? tensor.content : [tensor.content]).flat(Infinity) as (number | string | boolean)[];
      const one = tensor.shape ?? inferDims(t, batching, values.length, options);
      // Every request of a batch carries the entry's values (perf_analyzer repeats them likewise).
      const shape = batching ? [options.batchSize, ...one] : one;
      const data = batching ? Array.from({ length: options.batchSize }, () => values).flat() : values;
      return { name: t.name, datatype: t.datatype as Datatype, shape, data: t.datatype === "INT64" || t.datatype === "UINT64" ? data.map((v) => BigInt(v as number)) : data } as InferInput;
    }),
  );
}

/** Dims for file data without a shape: the model's, a single variable dimension taking whatever the values fill. */
function inferDims(t: TensorMetadata, batching: boolean, count: number, options: PerfOptions): number[] {
  const given = options.shapes.get(t.name);
  if (given) return given;
  const dims = batching ? t.shape.slice(1) : t.shape;
  const fixed = dims.filter((d) => d >= 0).reduce((a, b) => a * b, 1);
  const variable = dims.filter((d) => d < 0).length;
  if (variable > 1) throw new UsageError(`input '${t.name}' has several variable dimensions: give "shape" in the data file or --shape`);
  return dims.map((d) => (d < 0 ? count / fixed : d));
}

/** Builds the input sets for a run. */
export async function makeInputs(client: InferenceServerClient, options: PerfOptions): Promise<{ inputs: InputSets; meta: ModelMetadata }> {
  const meta = await client.getModelMetadata(options.model, options.modelVersion);
  const max = await maxBatchSize(client, options, meta);
  const batching = max > 0;
  if (!batching && options.batchSize > 1) throw new UsageError(`model '${options.model}' does not batch (max_batch_size 0): -b must be 1`);
  if (batching && options.batchSize > max) throw new UsageError(`-b ${options.batchSize} exceeds the model's max_batch_size ${max}`);
  if (options.inputData !== "random" && options.inputData !== "zero") {
    return { inputs: await fileInputs(options.inputData, meta, batching, options), meta };
  }
  const inputs = meta.inputs.map((t) => {
    const shape = shapeOf(t, batching, options);
    const count = shape.reduce((a, b) => a * b, 1);
    return { name: t.name, datatype: t.datatype as Datatype, shape, data: randomValues(t.datatype as Datatype, count, options.inputData === "zero") };
  });
  return { inputs: [inputs], meta };
}
