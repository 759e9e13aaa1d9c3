/**
 * The OCR pipeline as a team would hand-roll it: one `node:http` route, the
 * example's own TypeScript model class (same decoding, boxes and CTC code),
 * and its two networks called with `session.run` on the main thread, one
 * line after another's request, with no batching, queue or worker threads.
 * It answers `POST /v2/models/ocr/infer` with JSON tensors only (the image
 * as base64 text), as Tritium does for the same body.
 *
 * Run by `ocr-bench.ts` as a forked child: ocr-handwritten-server.js <ocr-repository>
 * It listens on a free port on 127.0.0.1 and sends `{ port }` to its parent.
 */
import http from "node:http";
import { register } from "node:module";
import type { AddressInfo } from "node:net";
import path from "node:path";
import { pathToFileURL } from "node:url";
import ort from "onnxruntime-node";

type Session = Awaited<ReturnType<typeof ort.InferenceSession.create>>;
interface Tensor { name: string; datatype: string; shape: number[]; data: unknown }
interface OcrModel {
  initialize(args: unknown, services: { infer(r: { model_name: string; inputs: Tensor[] }): Promise<Record<string, Tensor>> }): void;
  execute(requests: unknown[]): Promise<{ outputs?: Record<string, { shape: number[]; data: ArrayLike<unknown> }>; error?: unknown }[]>;
}

const [repository] = process.argv.slice(2);
if (!repository) {
  console.error("usage: ocr-handwritten-server.js <ocr-repository>");
  process.exit(2);
}

const sessions = new Map<string, Session>();
for (const m of ["ocr_det", "ocr_rec"]) {
  sessions.set(m, await ort.InferenceSession.create(path.join(repository, m, "1", "model.onnx"), { graphOptimizationLevel: "all", executionMode: "sequential" }));
}

// The example's model.ts, compiled as Tritium's js backend compiles it.
register(pathToFileURL(path.join(import.meta.dirname, "..", "src", "backends", "js", "typescript-hooks.js")));
const { default: Ocr } = (await import(pathToFileURL(path.join(repository, "ocr", "1", "model.ts")).href)) as { default: new () => OcrModel };
const model = new Ocr();
model.initialize({}, {
  async infer(r) {
    const session = sessions.get(r.model_name)!;
    const feeds: Record<string, InstanceType<typeof ort.Tensor>> = {};
    for (const t of r.inputs) feeds[t.name] = new ort.Tensor("float32", t.data as Float32Array, t.shape);
    const results = await session.run(feeds);
    const out: Record<string, Tensor> = {};
    for (const [name, v] of Object.entries(results)) out[name] = { name, datatype: "FP32", shape: [...v.dims], data: v.data };
    return out;
  },
});

const DATATYPE: Record<string, string> = { TEXT: "BYTES", BOX: "INT32", SCORE: "FP32" };

const server = http.createServer({ keepAliveTimeout: 65_000 }, (req, res) => {
  if (req.method !== "POST" || req.url !== "/v2/models/ocr/infer") {
    res.writeHead(404, { "Content-Type": "application/json" }).end('{"error":"not found"}');
    return;
  }
  const chunks: Buffer[] = [];
  req.on("data", (c: Buffer) => chunks.push(c));
  req.on("end", () => {
    void (async () => {
      try {
        const header = JSON.parse(Buffer.concat(chunks).toString("utf8")) as { inputs: { name: string; data: string[] }[] };
        const image = Buffer.from(header.inputs[0]!.data[0]!, "utf8");
        const [response] = await model.execute([{ inputs: { IMAGE: { name: "IMAGE", datatype: "BYTES", shape: [1], data: [image.toString()], bytes: [image] } }, requestedOutputs: ["TEXT", "BOX", "SCORE"] }]);
        if (!response?.outputs) throw new Error(JSON.stringify(response?.error));
        const outputs = Object.entries(response.outputs).map(([name, o]) => ({ name, datatype: DATATYPE[name], shape: o.shape, data: Array.from(o.data) }));
        const json = JSON.stringify({ model_name: "ocr", model_version: "1", outputs });
        res.writeHead(200, { "Content-Type": "application/json", "Content-Length": Buffer.byteLength(json) }).end(json);
      } catch (e) {
        res.writeHead(400, { "Content-Type": "application/json" }).end(JSON.stringify({ error: (e as Error).message }));
      }
    })();
  });
});

server.listen(0, "127.0.0.1", () => {
  process.send?.({ port: (server.address() as AddressInfo).port });
});
process.on("SIGTERM", () => {
  server.close(() => process.exit(0));
  server.closeAllConnections();
});
