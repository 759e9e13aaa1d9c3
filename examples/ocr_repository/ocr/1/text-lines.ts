/**
 * The numeric steps of PaddleOCR's pipeline around its two networks, in
 * plain TypeScript: the detector's input size and tensor, boxes from its
 * probability map (DB post-processing, axis-aligned), a text line's tensor
 * for the recognizer, and CTC decoding of the recognizer's output.
 */

/** An RGB image, 3 bytes a pixel, row by row. */
export interface Rgb {
  width: number;
  height: number;
  pixels: Uint8Array;
}

/** A line of text: its box in the image's pixels (x1, y1 exclusive) and the detector's confidence. */
export interface Box {
  x0: number;
  y0: number;
  x1: number;
  y1: number;
  score: number;
}

const MEAN = [0.485, 0.456, 0.406];
const STD = [0.229, 0.224, 0.225];

/** The detector's input size: the longer side at most `limit`, both sides multiples of 32. */
export function detectorSize(width: number, height: number, limit = 960): { width: number; height: number } {
  const scale = Math.min(1, limit / Math.max(width, height));
  const round = (v: number) => Math.max(32, Math.round((v * scale) / 32) * 32);
  return { width: round(width), height: round(height) };
}

/** The detector's tensor [3, H, W]: BGR planes normalized as the network was trained. */
export function detectorInput(image: Rgb): Float32Array {
  const { width, height, pixels } = image;
  const plane = width * height;
  const out = new Float32Array(3 * plane);
  for (let i = 0; i < plane; i++) {
    for (let c = 0; c < 3; c++) {
      // Plane c holds channel 2 - c of RGB: PaddleOCR reads images as BGR.
      out[c * plane + i] = (pixels[i * 3 + 2 - c]! / 255 - MEAN[c]!) / STD[c]!;
    }
  }
  return out;
}

/** What decides a box: text pixels above `threshold`, a mean above `boxThreshold`, grown by `unclipRatio`. */
export interface BoxOptions {
  threshold: number;
  boxThreshold: number;
  unclipRatio: number;
}

export const DEFAULT_BOX_OPTIONS: BoxOptions = { threshold: 0.3, boxThreshold: 0.6, unclipRatio: 1.5 };

/**
 * The text boxes in a probability map of `width` x `height`, scaled to an
 * image of `imageWidth` x `imageHeight`, top to bottom then left to right.
 * Each connected region of text pixels gives one box, grown by DB's unclip
 * distance (area x ratio / perimeter), as the network's map is shrunk.
 */
export function findBoxes(prob: Float32Array, width: number, height: number, imageWidth: number, imageHeight: number, options = DEFAULT_BOX_OPTIONS): Box[] {
  const seen = new Uint8Array(width * height);
  const stack = new Int32Array(width * height);
  const boxes: Box[] = [];
  const sx = imageWidth / width;
  const sy = imageHeight / height;
  for (let start = 0; start < prob.length; start++) {
    if (seen[start] || prob[start]! <= options.threshold) continue;
    let x0 = width, y0 = height, x1 = -1, y1 = -1;
    let top = 0;
    stack[top++] = start;
    seen[start] = 1;
    while (top > 0) {
      const p = stack[--top]!;
      const x = p % width;
      const y = (p - x) / width;
      if (x < x0) x0 = x;
      if (x > x1) x1 = x;
      if (y < y0) y0 = y;
      if (y > y1) y1 = y;
      const push = (q: number) => {
        if (!seen[q] && prob[q]! > options.threshold) {
          seen[q] = 1;
          stack[top++] = q;
        }
      };
      if (x > 0) push(p - 1);
      if (x < width - 1) push(p + 1);
      if (y > 0) push(p - width);
      if (y < height - 1) push(p + width);
    }
    const w = x1 - x0 + 1;
    const h = y1 - y0 + 1;
    if (Math.min(w, h) < 3) continue;
    let sum = 0;
    for (let y = y0; y <= y1; y++) for (let x = x0; x <= x1; x++) sum += prob[y * width + x]!;
    const score = sum / (w * h);
    if (score < options.boxThreshold) continue;
    const d = (w * h * options.unclipRatio) / (2 * (w + h));
    boxes.push({
      x0: clamp(Math.floor((x0 - d) * sx), imageWidth),
      y0: clamp(Math.floor((y0 - d) * sy), imageHeight),
      x1: clamp(Math.ceil((x1 + 1 + d) * sx), imageWidth),
      y1: clamp(Math.ceil((y1 + 1 + d) * sy), imageHeight),
      score,
    });
  }
  // Reading order: lines whose tops are within 10 pixels are one row, read left to right.
  return boxes.sort((a, b) => (Math.abs(a.y0 - b.y0) < 10 ? a.x0 - b.x0 : a.y0 - b.y0));
}

const clamp = (v: number, max: number) => Math.min(max, Math.max(0, v));

export const LINE_HEIGHT = 48;

/**
 * The recognizer's tensor [3, 48, `width`] for one box: the box scaled
 * (bilinear) to 48 pixels high keeping its aspect, at most `width` wide,
 * BGR in [-1, 1], zero to the right as PaddleOCR pads.
 */
export function lineInput(image: Rgb, box: Box, width: number): Float32Array {
  const bw = box.x1 - box.x0;
  const bh = box.y1 - box.y0;
  const w = Math.min(width, Math.max(1, Math.ceil((LINE_HEIGHT * bw) / bh)));
  const plane = LINE_HEIGHT * width;
  const out = new Float32Array(3 * plane);
  for (let y = 0; y < LINE_HEIGHT; y++) {
    const fy = Math.min(bh - 1, Math.max(0, ((y + 0.5) * bh) / LINE_HEIGHT - 0.5));
    const iy = Math.floor(fy);
    const ty = fy - iy;
    const iy2 = Math.min(bh - 1, iy + 1);
    for (let x = 0; x < w; x++) {
      const fx = Math.min(bw - 1, Math.max(0, ((x + 0.5) * bw) / w - 0.5));
      const ix = Math.floor(fx);
      const tx = fx - ix;
      const ix2 = Math.min(bw - 1, ix + 1);
      const at = (xx: number, yy: number, c: number) => image.pixels[((box.y0 + yy) * image.width + box.x0 + xx) * 3 + c]!;
      for (let c = 0; c < 3; c++) {
        const v = (at(ix, iy, c) * (1 - tx) + at(ix2, iy, c) * tx) * (1 - ty) + (at(ix, iy2, c) * (1 - tx) + at(ix2, iy2, c) * tx) * ty;
        out[(2 - c) * plane + y * width + x] = v / 127.5 - 1;
      }
    }
  }
  return out;
}

/**
 * Greedy CTC decoding of `steps` x `classes` probabilities: the best class
 * at each step, repeats merged, blanks (class 0) dropped; class k is
 * `alphabet[k - 1]`. The score is the mean probability of the kept steps.
 */
export function ctcDecode(probs: Float32Array, steps: number, classes: number, alphabet: readonly string[]): { text: string; score: number } {
  let text = "";
  let sum = 0;
  let kept = 0;
  let previous = 0;
  for (let t = 0; t < steps; t++) {
    let best = 0;
    let bestP = -1;
    const row = t * classes;
    for (let k = 0; k < classes; k++) {
      const p = probs[row + k]!;
      if (p > bestP) {
        bestP = p;
        best = k;
      }
    }
    if (best !== 0 && best !== previous) {
      text += alphabet[best - 1] ?? "";
      sum += bestP;
      kept++;
    }
    previous = best;
  }
  return { text, score: kept ? sum / kept : 0 };
}
