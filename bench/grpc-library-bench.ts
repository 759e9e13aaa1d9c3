/**
 * Which gRPC server library for unary ModelInfer? Two echo-like servers that
 * decode a real ModelInferRequest and answer a real ModelInferResponse (no
 * model, no core), so only the library's per-call cost differs:
 *   - @grpc/grpc-js `Server` (what Tritium uses),
 *   - a minimal gRPC unary handler written on `node:http2` (length-prefixed
 *     messages, `grpc-status` trailer).
 * The load comes from a separate process: `concurrency` loops of unary calls
 * over one @grpc/grpc-js channel, then the same over a `node:http2` client.
 *
 *   npm run build && node dist/bench/grpc-library-bench.js [--seconds 3] [--concurrency 16]
 */
import { fork } from "node:child_process";
import http2 from "node:http2";
import os from "node:os";
import { fileURLToPath } from "node:url";
import { create, fromBinary, toBinary } from "@bufbuild/protobuf";
import * as grpc from "@grpc/grpc-js";
import { GRPCInferenceService, ModelInferRequestSchema, ModelInferResponseSchema } from "../src/gen/inference/grpc_service_pb.js";
import { serviceDefinition } from "../src/frontends/grpc/service-definition.js";

const PATH = "/inference.GRPCInferenceService/ModelInfer";
const arg = (name: string, def: number) => {
  const i = process.argv.indexOf(`--${name}`);
  return i > 0 ? Number(process.argv[i + 1]) : def;
};

function answer(req: ReturnType<typeof fromBinary<typeof ModelInferRequestSchema>>) {
  return create(ModelInferResponseSchema, {
    modelName: req.modelName,
    modelVersion: "1",
    id: req.id,
    outputs: req.inputs.map((t) => ({ name: t.name.replace("INPUT", "OUTPUT"), datatype: t.datatype, shape: t.shape })),
    rawOutputContents: req.rawInputContents,
  });
}

async function grpcJsServer(): Promise<{ port: number; close(): void }> {
  const server = new grpc.Server();
  type Req = ReturnType<typeof fromBinary<typeof ModelInferRequestSchema>>;
  const handlers: grpc.UntypedServiceImplementation = {
    ModelInfer: (call: grpc.ServerUnaryCall<Req, unknown>, cb: grpc.sendUnaryData<unknown>) => cb(null, answer(call.request)),
  };
  server.addService(serviceDefinition(GRPCInferenceService), handlers);
  const port = await new Promise<number>((res, rej) => server.bindAsync("127.0.0.1:0", grpc.ServerCredentials.createInsecure(), (e, p) => (e ? rej(e) : res(p))));
  return { port, close: () => server.forceShutdown() };
}

async function http2Server(): Promise<{ port: number; close(): void }> {
  const server = http2.createServer();
  server.on("stream", (stream, headers) => {
    if (headers[":path"] !== PATH) {
      stream.respond({ ":status": 200, "content-type": "application/grpc", "grpc-status": "12" }, { endStream: true });
      return;
    }
    const chunks: Buffer[] = [];
    stream.on("data", (c: Buffer) => chunks.push(c));
    stream.on("end", () => {
      const body = Buffer.concat(chunks);
      const req = fromBinary(ModelInferRequestSchema, body.subarray(5, 5 + body.readUInt32BE(1)));
      const out = toBinary(ModelInferResponseSchema, answer(req));
      const frame = Buffer.allocUnsafe(5 + out.byteLength);
      frame[0] = 0;
      frame.writeUInt32BE(out.byteLength, 1);
      frame.set(out, 5);
      stream.respond({ ":status": 200, "content-type": "application/grpc" }, { waitForTrailers: true });
      stream.on("wantTrailers", () => stream.sendTrailers({ "grpc-status": "0" }));
      stream.end(frame);
    });
  });
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
  return { port: (server.address() as { port: number }).port, close: () => server.close() };
}

interface Result { calls: number; failed: number; p50: number; p99: number }

/** Load generator (child process). */
async function load(port: number, seconds: number, concurrency: number): Promise<Result> {
  const client = new grpc.Client(`127.0.0.1:${port}`, grpc.credentials.createInsecure());
  const def = serviceDefinition(GRPCInferenceService).ModelInfer!;
  const request = create(ModelInferRequestSchema, {
    modelName: "simple",
    inputs: [
      { name: "INPUT0", datatype: "INT32", shape: [1n, 16n] },
      { name: "INPUT1", datatype: "INT32", shape: [1n, 16n] },
    ],
    rawInputContents: [new Uint8Array(64), new Uint8Array(64)],
  });
  const call = () =>
    new Promise<void>((res, rej) =>
      client.makeUnaryRequest(def.path, def.requestSerialize, def.responseDeserialize, request, new grpc.Metadata(), {}, (e) => (e ? rej(e) : res())),
    );
  const lat: number[] = [];
  let failed = 0;
  const warm = Date.now() + 1000;
  const end = warm + seconds * 1000;
  await Promise.all(
    Array.from({ length: concurrency }, async () => {
      while (Date.now() < end) {
        const t = performance.now();
        try {
          await call();
          if (Date.now() > warm) lat.push(performance.now() - t);
        } catch {
          failed++;
        }
      }
    }),
  );
  client.close();
  lat.sort((a, b) => a - b);
  return { calls: lat.length, failed, p50: lat[lat.length >> 1] ?? 0, p99: lat[Math.floor(lat.length * 0.99)] ?? 0 };
}

async function main(): Promise<void> {
  if (process.argv[2] === "--load") {
    const r = await load(Number(process.argv[3]), Number(process.argv[4]), Number(process.argv[5]));
    process.send!(r);
    return;
  }
  const seconds = arg("seconds", 3);
  const concurrency = arg("concurrency", 16);
  const self = fileURLToPath(import.meta.url);
  const rows: string[] = [];
  for (const [name, start] of [["@grpc/grpc-js Server", grpcJsServer], ["node:http2 handler", http2Server]] as const) {
    for (const c of [1, concurrency]) {
      const server = await start();
      const child = fork(self, ["--load", String(server.port), String(seconds), String(c)]);
      const r = await new Promise<Result>((res) => child.once("message", (m) => res(m as Result)));
      server.close();
      rows.push(`| ${name} | ${c} | ${Math.round(r.calls / seconds)} | ${r.p50.toFixed(3)} | ${r.p99.toFixed(3)} | ${r.failed} |`);
    }
  }
  console.log(`${os.cpus()[0]?.model ?? "cpu"} × ${os.cpus().length}, Node ${process.version}, ${seconds} s per cell, client: @grpc/grpc-js in its own process\n`);
  console.log("| Server | Concurrency | Calls/s | p50 ms | p99 ms | Failed |\n|---|--:|--:|--:|--:|--:|");
  console.log(rows.join("\n"));
  process.exit(0);
}

void main();
