/**
 * The hand-written baseline server: what someone rolls by hand with `node:http`
 * and `onnxruntime-node` — one route, one InferenceSession per model created at
 * start-up, `session.run` on the main thread, no validation beyond what
 * JSON.parse and ORT do, no queue, no worker threads.
 *
 * It speaks the same wire format as Tritium for the one route
 * `POST /v2/models/{model}/infer` (JSON tensors, and the binary tensor data
 * extension both ways), so both servers receive byte-identical requests and the
 * comparison measures the server, not the payload format.
 *
 * Run by `http-bench.ts` as a forked child:
 *   handwritten-server.js <model-repository> <model>...
 * It listens on a free port on 127.0.0.1 and sends `{ port }` to its parent.
 */
import http from "node:http";
import type { AddressInfo } from "node:net";
import path from "node:path";
import ort from "onnxruntime-node";

type Session = Awaited<ReturnType<typeof ort.InferenceSession.create>>;
type OrtTensor = InstanceType<typeof ort.Tensor>;

const [repository, ...models] = process.argv.slice(2);
if (!repository || models.length === 0) {
  console.error("usage: handwritten-server.js <model-repository> <model>...");
  process.exit(2);
}

const sessions = new Map<string, Session>();
for (const m of models) {
  // Same options as Tritium's ONNX Runtime backend for a config without parameters.
  sessions.set(m, await ort.InferenceSession.create(path.join(repository, m, "1", "model.onnx"), {
    graphOptimizationLevel: "all",
    executionMode: "sequential",
  }));
}

interface InputHeader {
  name: string;
  datatype: string;
  shape: number[];
  data?: unknown[];
  parameters?: { binary_data_size?: number };
}

function toOrt(t: InputHeader, body: Buffer, offset: number): OrtTensor {
  const size = t.parameters?.binary_data_size;
  if (t.datatype === "FP32") {
    const data = size !== undefined ? new Float32Array(new Uint8Array(body.subarray(offset, offset + size)).buffer) : Float32Array.from(t.data!.flat(Infinity) as number[]);
    return new ort.Tensor("float32", data, t.shape);
  }
  if (t.datatype === "INT32") {
    const data = size !== undefined ? new Int32Array(new Uint8Array(body.subarray(offset, offset + size)).buffer) : Int32Array.from(t.data!.flat(Infinity) as number[]);
    return new ort.Tensor("int32", data, t.shape);
  }
  throw new Error(`datatype ${t.datatype} not supported`);
}

const DATATYPE: Record<string, string> = { float32: "FP32", int32: "INT32" };

const server = http.createServer({ keepAliveTimeout: 65_000 }, (req, res) => {
  const match = /^\/v2\/models\/([^/]+)\/infer$/.exec(req.url ?? "");
  const session = match ? sessions.get(match[1]!) : undefined;
  if (req.method !== "POST" || !session) {
    res.writeHead(404, { "Content-Type": "application/json" }).end('{"error":"not found"}');
    return;
  }
  const chunks: Buffer[] = [];
  req.on("data", (c: Buffer) => chunks.push(c));
  req.on("end", () => {
    void (async () => {
      try {
        const body = chunks.length === 1 ? chunks[0]! : Buffer.concat(chunks);
        const hl = req.headers["inference-header-content-length"];
        const jsonEnd = hl === undefined ? body.byteLength : Number(hl);
        const header = JSON.parse(body.toString("utf8", 0, jsonEnd)) as { inputs: InputHeader[]; parameters?: { binary_data_output?: boolean } };
        const feeds: Record<string, OrtTensor> = {};
        let offset = jsonEnd;
        for (const t of header.inputs) {
          feeds[t.name] = toOrt(t, body, offset);
          offset += t.parameters?.binary_data_size ?? 0;
        }
        const results = await session.run(feeds);
        const binary = header.parameters?.binary_data_output === true;
        const outputs: unknown[] = [];
        const blobs: Buffer[] = [];
        for (const name of session.outputNames) {
          const r = results[name]!;
          const data = r.data as Float32Array | Int32Array;
          const out: Record<string, unknown> = { name, datatype: DATATYPE[r.type] ?? r.type, shape: r.dims };
          if (binary) {
            out.parameters = { binary_data_size: data.byteLength };
            blobs.push(Buffer.from(data.buffer, data.byteOffset, data.byteLength));
          } else {
            out.data = Array.from(data);
          }
          outputs.push(out);
        }
        const json = Buffer.from(JSON.stringify({ model_name: match![1], model_version: "1", outputs }), "utf8");
        if (binary) {
          const payload = Buffer.concat([json, ...blobs]);
          res.writeHead(200, {
            "Content-Type": "application/octet-stream",
            "Inference-Header-Content-Length": json.byteLength,
            "Content-Length": payload.byteLength,
          });
          res.end(payload);
        } else {
          res.writeHead(200, { "Content-Type": "application/json", "Content-Length": json.byteLength });
          res.end(json);
        }
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
