/**
 * The client package's image-client example against a real Tritium and the
 * example `image_classifier`: images made by the test (PNG and JPEG), Triton's
 * output lines, and top-k classes equal to those the server returns for the
 * same pixels, over HTTP and gRPC, one image or a folder in batches.
 */
import assert from "node:assert/strict";
import fs from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { after, before, describe, it } from "node:test";
import sharp from "sharp";
import { EXAMPLES, ROOT, postJson, startGrpcServer, tempRepository, type GrpcTestServer, runNode } from "./helpers.js";

const IMAGE_CLIENT = path.join(ROOT, "node_modules", "@tritium", "client", "dist", "examples", "image-client.js");

let repo: string;
let images: string;
let server: GrpcTestServer;

/** An RGB image of a pattern that differs per seed, encoded as PNG or JPEG. */
async function makeImage(file: string, seed: number, width: number, height: number): Promise<void> {
  const pixels = Buffer.alloc(width * height * 3);
  for (let i = 0; i < pixels.length; i++) pixels[i] = (i * (seed * 17 + 5) + seed * 31) % 256;
  const img = sharp(pixels, { raw: { width, height, channels: 3 } });
  await (file.endsWith(".png") ? img.png() : img.jpeg({ quality: 95 })).toFile(file);
}

before(async () => {
  repo = await tempRepository({ image_classifier: path.join(EXAMPLES, "image_classifier") });
  images = await fs.mkdtemp(path.join(os.tmpdir(), "tritium-images-"));
  await makeImage(path.join(images, "a.png"), 1, 40, 50);
  await makeImage(path.join(images, "b.jpg"), 2, 64, 64);
  await makeImage(path.join(images, "c.png"), 3, 32, 32);
  await fs.writeFile(path.join(images, "notes.txt"), "not an image");
  server = await startGrpcServer({ modelRepository: repo });
});

after(async () => {
  await server?.close();
  await fs.rm(repo, { recursive: true, force: true });
  await fs.rm(images, { recursive: true, force: true });
});

const imageClient = (args: string[]) => runNode(IMAGE_CLIENT, args);

/**
 * What the server classifies an image as, asked directly with JSON: the
 * pixels resized to 32x32 (bilinear), channels first, scaled as INCEPTION.
 */
async function serverTopK(file: string, k: number): Promise<string[]> {
  const pixels = await sharp(file).removeAlpha().toColourspace("srgb").resize(32, 32, { fit: "fill", kernel: "linear" }).raw().toBuffer();
  const chw = Array.from({ length: 3 * 1024 }, (_, i) => pixels[(i % 1024) * 3 + Math.floor(i / 1024)]! / 127.5 - 1);
  const res = await postJson(`${server.url}/v2/models/image_classifier/infer`, {
    inputs: [{ name: "INPUT", datatype: "FP32", shape: [1, 3, 32, 32], data: chw }],
    outputs: [{ name: "OUTPUT", parameters: { classification: k, binary_data: false } }],
  });
  assert.equal(res.status, 200, JSON.stringify(res.json));
  return (res.json.outputs[0].data as string[]).map((s) => {
    const [score, index, label] = s.split(":");
    return `    ${score} (${index}) = ${label}`;
  });
}

describe("image-client example", () => {
  it("prints Triton's lines for one PNG over HTTP, the top 3 as the server classifies the image", async () => {
    const file = path.join(images, "a.png");
    const r = await imageClient(["-m", "image_classifier", "-c", "3", "-s", "INCEPTION", "-u", server.url, file]);
    assert.equal(r.code, 0, r.stderr);
    const expected = ["Request 0, batch size 1", `Image '${file}':`, ...(await serverTopK(file, 3)), "PASS"];
    assert.deepEqual(r.stdout.trimEnd().split("\n"), expected);
    assert.match(expected[2]!, /^ {4}\d\.\d+ \(\d\) = (airplane|automobile|bird|cat|deer|dog|frog|horse|ship|truck)$/);
  });

  it("classifies a folder's PNG and JPEG images in batches over gRPC, filling the last batch from the start", async () => {
    const r = await imageClient(["-m", "image_classifier", "-c", "2", "-s", "INCEPTION", "-b", "2", "--protocol", "grpc", "-u", server.grpcAddress, images]);
    assert.equal(r.code, 0, r.stderr);
    const [a, b, c] = ["a.png", "b.jpg", "c.png"].map((n) => path.join(images, n));
    const block = async (file: string) => [`Image '${file}':`, ...(await serverTopK(file, 2))];
    assert.deepEqual(r.stdout.trimEnd().split("\n"), [
      "Request 0, batch size 2", ...(await block(a!)), ...(await block(b!)),
      "Request 1, batch size 2", ...(await block(c!)), ...(await block(a!)),
      "PASS",
    ]);
  });

  it("reports the server's error for an unknown model", async () => {
    const r = await imageClient(["-m", "nope", "-u", server.url, path.join(images, "a.png")]);
    assert.equal(r.code, 1);
    assert.match(r.stderr, /error: 400: Request for unknown model: 'nope' is not found/);
  });
});
