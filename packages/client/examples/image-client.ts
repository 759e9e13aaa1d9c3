#!/usr/bin/env node
/**
 * An image classification client in the spirit of Triton's image_client:
 * reads JPEG/PNG images (a file or every image of a folder), resizes them to
 * the model's input, scales them, and asks for the classification
 * extension's top-k, printing Triton's lines:
 *
 *     Request 0, batch size 1
 *     Image 'cat.png':
 *         0.731416 (3) = cat
 *
 * Usage: image-client -m <model> [-x version] [-c topk] [-s NONE|INCEPTION|VGG]
 *                     [-b batch] [-i|--protocol http|grpc] [-u url] <image or folder>
 *
 * Needs `sharp` (npm install sharp) to decode and resize images.
 */
import { readdir, stat } from "node:fs/promises";
import path from "node:path";
import { parseArgs } from "node:util";
import sharp from "sharp";
import { GrpcClient, HttpClient, InferenceServerError, type InferenceServerClient, type ModelConfig, type ModelMetadata } from "../src/index.js";

type Scaling = "NONE" | "INCEPTION" | "VGG";

/** What the model expects of an image. */
interface ImageInput {
  input: string;
  output: string;
  /** Channels first (CHW) or last (HWC). */
  layout: "CHW" | "HWC";
  channels: number;
  height: number;
  width: number;
  batching: boolean;
}

/**
 * Reads the input's layout from the configuration's `format`
 * (FORMAT_NCHW/FORMAT_NHWC) or, without one, from where the 1 or 3
 * channels sit in its dims.
 */
function parseModel(meta: ModelMetadata, config: ModelConfig): ImageInput {
  if (meta.inputs.length !== 1) throw new Error(`expecting 1 input, model '${meta.name}' has ${meta.inputs.length}`);
  if (meta.outputs.length !== 1) throw new Error(`expecting 1 output, model '${meta.name}' has ${meta.outputs.length}`);
  const input = meta.inputs[0]!;
  const batching = (config.max_batch_size ?? 0) > 0;
  const dims = batching ? input.shape.slice(1) : input.shape;
  if (dims.length !== 3) throw new Error(`expecting input to have 3 dimensions, model '${meta.name}' input has ${dims.length}`);
  if (input.datatype !== "FP32") throw new Error(`expecting an FP32 input, model '${meta.name}' input is ${input.datatype}`);
  const format = config.input?.[0]?.format;
  const [a, b, c] = dims as [number, number, number];
  const channelsFirst = format === "FORMAT_NCHW" || (format !== "FORMAT_NHWC" && (a === 1 || a === 3));
  if (!channelsFirst && format !== "FORMAT_NHWC" && c !== 1 && c !== 3) {
    throw new Error(`cannot tell the channels of input ${JSON.stringify(dims)}: give the config a format (FORMAT_NCHW or FORMAT_NHWC)`);
  }
  return channelsFirst
    ? { input: input.name, output: meta.outputs[0]!.name, layout: "CHW", channels: a, height: b, width: c, batching }
    : { input: input.name, output: meta.outputs[0]!.name, layout: "HWC", channels: c, height: a, width: b, batching };
}

/** Decodes, resizes (bilinear, to the exact size) and scales one image into the model's layout. */
async function preprocess(file: string, m: ImageInput, scaling: Scaling): Promise<Float32Array> {
  let image = sharp(file).removeAlpha();
  image = m.channels === 1 ? image.grayscale() : image.toColourspace("srgb");
  const pixels = await image.resize(m.width, m.height, { fit: "fill", kernel: "linear" }).raw().toBuffer();
  const plane = m.width * m.height;
  const out = new Float32Array(plane * m.channels);
  // The means VGG networks were trained with subtracted, per RGB channel.
  const vggMean = [123, 117, 104];
  for (let p = 0; p < plane; p++) {
    for (let ch = 0; ch < m.channels; ch++) {
      const v = pixels[p * m.channels + ch]!;
      const scaled = scaling === "INCEPTION" ? v / 127.5 - 1 : scaling === "VGG" ? v - (m.channels === 1 ? 128 : vggMean[ch]!) : v;
      out[m.layout === "CHW" ? ch * plane + p : p * m.channels + ch] = scaled;
    }
  }
  return out;
}

/** The image files to classify: the one given, or a folder's JPEG/PNG files in name order. */
async function imageFiles(target: string): Promise<string[]> {
  if (!(await stat(target)).isDirectory()) return [target];
  const names = (await readdir(target)).filter((n) => /\.(jpe?g|png)$/i.test(n)).sort();
  if (!names.length) throw new Error(`no JPEG or PNG images in '${target}'`);
  return names.map((n) => path.join(target, n));
}

async function main(): Promise<void> {
  const { values, positionals } = parseArgs({
    allowPositionals: true,
    options: {
      "model-name": { type: "string", short: "m" },
      "model-version": { type: "string", short: "x", default: "" },
      classes: { type: "string", short: "c", default: "1" },
      scaling: { type: "string", short: "s", default: "NONE" },
      "batch-size": { type: "string", short: "b", default: "1" },
      protocol: { type: "string", short: "i", default: "http" },
      url: { type: "string", short: "u" },
    },
  });
  const model = values["model-name"];
  const scaling = values.scaling!.toUpperCase() as Scaling;
  const protocol = values.protocol!.toLowerCase();
  const topk = Number(values.classes);
  const batch = Number(values["batch-size"]);
  if (!model || positionals.length !== 1 || !["NONE", "INCEPTION", "VGG"].includes(scaling) || !["http", "grpc"].includes(protocol)
    || !(topk > 0) || !(batch > 0)) {
    throw new Error("usage: image-client -m <model> [-x version] [-c topk] [-s NONE|INCEPTION|VGG] [-b batch] [-i http|grpc] [-u url] <image or folder>");
  }
  const client: InferenceServerClient = protocol === "grpc"
    ? new GrpcClient(values.url ?? "localhost:8001")
    : new HttpClient(values.url ?? "localhost:8000");
  try {
    const version = values["model-version"] || undefined;
    const m = parseModel(await client.getModelMetadata(model, version), await client.getModelConfig(model, version));
    if (!m.batching && batch > 1) throw new Error(`model '${model}' does not support batching`);
    const files = await imageFiles(positionals[0]!);
    const images = await Promise.all(files.map((f) => preprocess(f, m, scaling)));
    // As Triton's client: the last batch is filled up by starting over from the first image.
    const requests = Math.ceil(files.length / batch);
    for (let r = 0; r < requests; r++) {
      const indices = Array.from({ length: batch }, (_, i) => (r * batch + i) % files.length);
      const data = new Float32Array(indices.length * images[0]!.length);
      indices.forEach((idx, i) => data.set(images[idx]!, i * images[0]!.length));
      const dims = m.layout === "CHW" ? [m.channels, m.height, m.width] : [m.height, m.width, m.channels];
      const result = await client.infer(model, [{ name: m.input, datatype: "FP32", shape: m.batching ? [batch, ...dims] : dims, data }], {
        modelVersion: version,
        outputs: [{ name: m.output, classification: topk }],
      });
      const classes = result.asStrings(m.output);
      console.log(`Request ${r}, batch size ${batch}`);
      indices.forEach((idx, i) => {
        console.log(`Image '${files[idx]}':`);
        for (const line of classes.slice(i * topk, (i + 1) * topk)) {
          const [score, index, label] = line.split(":");
          console.log(`    ${score} (${index})${label === undefined ? "" : ` = ${label}`}`);
        }
      });
    }
    console.log("PASS");
  } finally {
    client.close();
  }
}

main().catch((e: unknown) => {
  console.error(e instanceof InferenceServerError ? `error: ${e.status}: ${e.message}` : `error: ${(e as Error).message}`);
  process.exitCode = 1;
});
