import fs from "node:fs/promises";
import path from "node:path";
import type { ModelConfig } from "../../gen/inference/model_config_pb.js";
import type { BackendInstance } from "../backend.js";
import { elementCount, elementSize, fromConfigType } from "../tensors/datatypes.js";
import { invalidArg } from "../errors.js";
import { configTypeName } from "./model-config.js";
import { encodeBytesElements, type Tensor } from "../tensors/tensor.js";

/**
 * Runs the config's `model_warmup` samples on every instance before the
 * model is READY, as Triton does. A sample that fails fails the load, with
 * the sample's name and the backend's reason.
 */
export async function runWarmup(config: ModelConfig, modelDir: string, instances: readonly BackendInstance[]): Promise<void> {
  for (const sample of config.modelWarmup) {
    const inputs = await buildInputs(config, modelDir, sample);
    const outputNames = config.output.map((o) => o.name);
    const repeat = Math.max(1, sample.count);
    for (const instance of instances) {
      for (let i = 0; i < repeat; i++) {
        const { results } = await instance.execute([{ inputs, outputNames }]);
        const err = results[0]?.error;
        if (err) throw invalidArg(`model '${config.name}': warmup sample '${sample.name}' failed on instance ${instance.name}: ${err.message}`);
      }
    }
  }
}

type Sample = ModelConfig["modelWarmup"][number];

async function buildInputs(config: ModelConfig, modelDir: string, sample: Sample): Promise<Tensor[]> {
  const tensors: Tensor[] = [];
  for (const [name, input] of Object.entries(sample.inputs)) {
    const where = `model '${config.name}': warmup sample '${sample.name}' input '${name}'`;
    const dt = fromConfigType(configTypeName(input.dataType));
    if (!dt) throw invalidArg(`${where} has no valid data_type`);
    const dims = input.dims.map(Number);
    if (dims.some((d) => d < 0)) throw invalidArg(`${where} must have fixed dims, got [${dims.join(",")}]`);
    const shape = config.maxBatchSize > 0 ? [Math.max(1, sample.batchSize), ...dims] : dims;
    const count = elementCount(shape);
    let data: Uint8Array;
    switch (input.inputDataType.case) {
      case "randomData":
        data = dt === "BYTES" ? encodeBytesElements(new Array(count).fill("")) : randomBytes(count * elementSize(dt), dt);
        break;
      case "inputDataFile": {
        const file = path.join(modelDir, "warmup", input.inputDataType.value);
        let bytes: Buffer;
        try {
          bytes = await fs.readFile(file);
        } catch {
          throw invalidArg(`${where}: input_data_file '${file}' could not be read`);
        }
        data = dt === "BYTES" ? bytes : bytes.subarray(0, count * elementSize(dt));
        if (dt !== "BYTES" && data.byteLength < count * elementSize(dt)) {
          throw invalidArg(`${where}: input_data_file '${file}' has ${bytes.byteLength} bytes, needs ${count * elementSize(dt)}`);
        }
        break;
      }
      default: // zeroData, or nothing said
        data = dt === "BYTES" ? encodeBytesElements(new Array(count).fill("")) : new Uint8Array(count * elementSize(dt));
    }
    tensors.push({ name, datatype: dt, shape, data });
  }
  return tensors;
}

/** Random element bytes; floats are kept finite and small so warm-up never trips on NaN. */
function randomBytes(n: number, dt: string): Uint8Array {
  const out = new Uint8Array(n);
  if (dt === "FP32") {
    const f = new Float32Array(out.buffer);
    for (let i = 0; i < f.length; i++) f[i] = Math.random();
  } else if (dt === "FP64") {
    const f = new Float64Array(out.buffer);
    for (let i = 0; i < f.length; i++) f[i] = Math.random();
  } else if (dt === "FP16" || dt === "BF16" || dt === "BOOL") {
    // zero bits are valid values for these; random bits could be NaN or not 0/1
  } else {
    for (let i = 0; i < n; i++) out[i] = (Math.random() * 256) | 0;
  }
  return out;
}
