/**
 * Load generator: a child process forked by the benchmark scripts (with
 * `serialization: "advanced"`), so it never shares an event loop or CPU
 * accounting with the server under test. It receives one {@link LoadCell},
 * runs a warm-up, tells its parent `{ phase: "measuring" }`, runs a
 * fixed-duration measurement, sends back a {@link LoadResult} and exits.
 *
 * Every answer is verified against the cell's `expected` outputs (names,
 * datatypes, shapes, values); a wrong answer is a failure like an error
 * status, counted and sampled, never dropped.
 *
 * - `http` cells: `concurrency` closed loops, each sending the same request
 *   again as soon as its previous answer has been read completely, over a
 *   keep-alive `http.Agent` with `maxSockets = concurrency`. Anything but 200
 *   (or a socket error) is a failure.
 * - `grpc` cells: `mode: "unary"`, `concurrency` closed loops of unary
 *   `ModelInfer` calls; `mode: "stream"`, one `ModelStreamInfer` bidi stream
 *   per loop, each loop writing its next request when the previous response
 *   arrived. One @grpc/grpc-js channel (one HTTP/2 connection) carries all
 *   loops, as one Triton gRPC client does. Requests carry the input tensors
 *   as `raw_input_contents`, encoded once per loop; a gRPC error status, a
 *   stream `error_message`, a response with another request's id, or an ended
 *   stream is a failure (a broken stream is reopened for the next request).
 * - `inprocess` cells: the baseline. An `onnxruntime-node` InferenceSession
 *   in this process; each loop builds fresh `ort.Tensor`s over the same typed
 *   arrays, awaits `session.run()` and checks the outputs. onnxruntime-node
 *   runs `session.run` synchronously on the calling thread, so several loops
 *   serialize on it: concurrency > 1 measures the single-session ceiling and
 *   queueing, not parallelism. The inputs may hold a batch of several items.
 */
import http from "node:http";
import { performance } from "node:perf_hooks";
import type { Socket } from "node:net";
import type { ClientDuplexStream, ServiceError } from "@grpc/grpc-js";
import type { ModelInferResponse, ModelStreamInferResponse } from "../src/gen/inference/grpc_service_pb.js";
import { compareOutputs, decodeResponse, type BenchTensor, type DecodedOutput } from "./payload.js";

interface CellTiming {
  concurrency: number;
  warmupSeconds: number;
  seconds: number;
  /** What every answer must carry. */
  expected: Map<string, DecodedOutput>;
}

export interface HttpCell extends CellTiming {
  kind: "http";
  url: string;
  headers: Record<string, string>;
  body: Uint8Array;
  /** Answers must use the binary tensor data extension (true) or be plain JSON (false). */
  binaryResponse: boolean;
}

export interface GrpcCell extends CellTiming {
  kind: "grpc";
  mode: "unary" | "stream";
  /** host:port */
  address: string;
  model: string;
  inputs: BenchTensor[];
}

export interface InProcessCell extends CellTiming {
  kind: "inprocess";
  modelPath: string;
  inputs: BenchTensor[];
}

export type LoadCell = HttpCell | GrpcCell | InProcessCell;

export interface LoadResult {
  /** Successful, verified requests in the measured window. */
  completed: number;
  /** Failed requests in the measured window (wrong answers included). */
  failed: number;
  /** Of the failed ones, answers that arrived but carried wrong values or shapes (warm-up included). */
  wrong: number;
  /** Failed requests during warm-up (reported too). */
  warmupFailed: number;
  /** Up to 5 distinct failure descriptions. */
  failureSamples: string[];
  /** Wall time of the measured window, seconds (until the last in-flight request ended). */
  wallSeconds: number;
  /** Latency of successful measured requests, milliseconds. */
  p50Ms: number;
  p99Ms: number;
  meanMs: number;
  maxMs: number;
  /** Connections the agent opened over the whole cell (http; keep-alive: should equal concurrency). */
  connections?: number;
  /** Size of one encoded request and of the first answer, bytes (http and grpc). */
  requestBytes?: number;
  responseBytes?: number;
  /** Set when the cell could not run at all. */
  fatal?: string;
}

interface Phase {
  ok: number;
  failed: number;
  latencies: number[];
}

/** A request that failed; `wrong` when an answer arrived but carried the wrong values. */
class RequestFailure extends Error {
  constructor(message: string, readonly wrong = false) {
    super(message);
  }
}

class Failures {
  samples: string[] = [];
  wrong = 0;
  add(what: string): void {
    if (this.samples.length < 5 && !this.samples.includes(what)) this.samples.push(what);
  }
}

/** Runs `concurrency` closed loops of `once(loop)` until `endAt`; resolves when the last in-flight call ends. */
async function runPhase(concurrency: number, endAt: number, once: (loop: number) => Promise<void>, phase: Phase, failures: Failures): Promise<void> {
  const loop = async (_: unknown, i: number): Promise<void> => {
    while (performance.now() < endAt) {
      const t0 = performance.now();
      try {
        await once(i);
        phase.latencies.push(performance.now() - t0);
        phase.ok++;
      } catch (e) {
        phase.failed++;
        if (e instanceof RequestFailure && e.wrong) failures.wrong++;
        failures.add(e instanceof RequestFailure ? e.message : `${(e as Error).message}`);
      }
    }
  };
  await Promise.all(Array.from({ length: concurrency }, loop));
}

function percentile(sorted: readonly number[], p: number): number {
  if (sorted.length === 0) return NaN;
  const rank = Math.ceil((p / 100) * sorted.length);
  return sorted[Math.min(sorted.length, Math.max(1, rank)) - 1]!;
}

async function measure(cell: LoadCell, once: (loop: number) => Promise<void>, failures: Failures): Promise<LoadResult> {
  const warm: Phase = { ok: 0, failed: 0, latencies: [] };
  await runPhase(cell.concurrency, performance.now() + cell.warmupSeconds * 1000, once, warm, failures);
  process.send?.({ phase: "measuring" });
  const phase: Phase = { ok: 0, failed: 0, latencies: [] };
  const start = performance.now();
  await runPhase(cell.concurrency, start + cell.seconds * 1000, once, phase, failures);
  const wallSeconds = (performance.now() - start) / 1000;
  const sorted = phase.latencies.sort((a, b) => a - b);
  return {
    completed: phase.ok,
    failed: phase.failed,
    wrong: failures.wrong,
    warmupFailed: warm.failed,
    failureSamples: failures.samples,
    wallSeconds,
    p50Ms: percentile(sorted, 50),
    p99Ms: percentile(sorted, 99),
    meanMs: sorted.reduce((a, b) => a + b, 0) / Math.max(1, sorted.length),
    maxMs: sorted.length ? sorted[sorted.length - 1]! : NaN,
  };
}

/** Throws a wrong-answer failure when the outputs differ from the expected ones. */
function verify(expected: ReadonlyMap<string, DecodedOutput>, actual: ReadonlyMap<string, DecodedOutput>): void {
  const diff = compareOutputs(expected, actual);
  if (diff) throw new RequestFailure(`wrong answer: ${diff}`, true);
}

// ---------------------------------------------------------------- HTTP

async function runHttp(cell: HttpCell): Promise<LoadResult> {
  const url = new URL(cell.url);
  const agent = new http.Agent({ keepAlive: true, maxSockets: cell.concurrency, maxFreeSockets: cell.concurrency });
  const sockets = new Set<Socket>();
  const failures = new Failures();
  const body = Buffer.from(cell.body.buffer, cell.body.byteOffset, cell.body.byteLength);
  let responseBytes: number | undefined;
  const once = (): Promise<void> =>
    new Promise<void>((resolve, reject) => {
      const req = http.request(
        { agent, hostname: url.hostname, port: url.port, path: url.pathname + url.search, method: "POST", headers: cell.headers },
        (res) => {
          const chunks: Buffer[] = [];
          res.on("data", (c: Buffer) => chunks.push(c));
          res.on("error", (e) => reject(new RequestFailure(`response error: ${e.message}`)));
          res.on("end", () => {
            const status = res.statusCode ?? 0;
            const data = chunks.length === 1 ? chunks[0]! : Buffer.concat(chunks);
            if (status !== 200) {
              reject(new RequestFailure(`HTTP ${status}: ${data.toString("utf8", 0, Math.min(data.byteLength, 200))}`));
              return;
            }
            const headerLength = res.headers["inference-header-content-length"] as string | undefined;
            try {
              if (cell.binaryResponse && headerLength === undefined) throw new RequestFailure("binary_data_output was ignored: no Inference-Header-Content-Length in the response", true);
              if (!cell.binaryResponse && headerLength !== undefined) throw new RequestFailure("JSON request got a binary response", true);
              let outputs: Map<string, DecodedOutput>;
              try {
                outputs = decodeResponse(data, headerLength);
              } catch (e) {
                throw new RequestFailure(`undecodable response: ${(e as Error).message}`, true);
              }
              verify(cell.expected, outputs);
            } catch (e) {
              reject(e);
              return;
            }
            responseBytes ??= data.byteLength;
            resolve();
          });
        },
      );
      req.on("socket", (s: Socket) => sockets.add(s));
      req.on("error", (e) => reject(new RequestFailure(`request error: ${(e as NodeJS.ErrnoException).code ?? e.message}`)));
      req.end(body);
    });
  const result = await measure(cell, once, failures);
  agent.destroy();
  return { ...result, connections: sockets.size, requestBytes: body.byteLength, responseBytes };
}

// ---------------------------------------------------------------- gRPC

async function runGrpc(cell: GrpcCell): Promise<LoadResult> {
  const grpc = await import("@grpc/grpc-js");
  const { create } = await import("@bufbuild/protobuf");
  const pb = await import("../src/gen/inference/grpc_service_pb.js");
  const { serviceDefinition } = await import("../src/frontends/grpc/service-definition.js");
  type InferResponse = ModelInferResponse;
  type StreamResponse = ModelStreamInferResponse;

  const def = serviceDefinition(pb.GRPCInferenceService);
  const method = cell.mode === "unary" ? def.ModelInfer! : def.ModelStreamInfer!;
  const failures = new Failures();
  let responseBytes: number | undefined;
  const deserialize = (b: Buffer): unknown => {
    responseBytes ??= b.byteLength;
    return method.responseDeserialize(b);
  };
  const identity = (b: Buffer): Buffer => b;
  // One encoded request per loop, each with its own id (echoed back in stream responses).
  const requests = Array.from({ length: cell.concurrency }, (_, i) =>
    method.requestSerialize(create(pb.ModelInferRequestSchema, {
      modelName: cell.model,
      id: `loop-${i}`,
      inputs: cell.inputs.map((t) => ({ name: t.name, datatype: t.datatype, shape: t.shape.map(BigInt) })),
      rawInputContents: cell.inputs.map((t) => new Uint8Array(t.data.buffer, t.data.byteOffset, t.data.byteLength)),
    })) as Buffer);

  const check = (res: InferResponse | undefined, id: string | undefined): void => {
    if (!res) throw new RequestFailure("stream response without infer_response", true);
    if (id !== undefined && res.id !== id) throw new RequestFailure(`stream response id '${res.id}', expected '${id}'`, true);
    if (res.rawOutputContents.length !== res.outputs.length) {
      throw new RequestFailure(`${res.outputs.length} outputs but ${res.rawOutputContents.length} raw_output_contents (raw input should give raw output)`, true);
    }
    const outputs = new Map<string, DecodedOutput>();
    res.outputs.forEach((o, i) => {
      const raw = res.rawOutputContents[i]!;
      const copy = new Uint8Array(raw).buffer; // aligned copy
      const values = o.datatype === "INT32" ? new Int32Array(copy) : o.datatype === "FP32" ? new Float32Array(copy) : [];
      outputs.set(o.name, { datatype: o.datatype, shape: o.shape.map(Number), values });
    });
    verify(cell.expected, outputs);
  };

  const client = new grpc.Client(cell.address, grpc.credentials.createInsecure(), {
    "grpc.max_receive_message_length": -1,
    "grpc.max_send_message_length": -1,
  });
  await new Promise<void>((resolve, reject) =>
    client.waitForReady(Date.now() + 10_000, (e) => (e ? reject(new Error(`gRPC channel to ${cell.address} not ready: ${e.message}`)) : resolve())));

  let once: (loop: number) => Promise<void>;
  const streams: (ClientDuplexStream<Buffer, StreamResponse> | undefined)[] = [];
  if (cell.mode === "unary") {
    once = (loop) =>
      new Promise<void>((resolve, reject) => {
        client.makeUnaryRequest<Buffer, InferResponse>(method.path, identity, deserialize as (b: Buffer) => InferResponse, requests[loop]!, (err, res) => {
          if (err) {
            reject(new RequestFailure(`gRPC ${grpc.status[err.code] ?? err.code}: ${err.details}`));
            return;
          }
          try {
            check(res, undefined);
            resolve();
          } catch (e) {
            reject(e);
          }
        });
      });
  } else {
    // One bidi stream per loop; at most one request in flight on it.
    const pending: ({ resolve: (r: StreamResponse) => void; reject: (e: Error) => void } | undefined)[] = [];
    const open = (loop: number): ClientDuplexStream<Buffer, StreamResponse> => {
      const s = client.makeBidiStreamRequest<Buffer, StreamResponse>(method.path, identity, deserialize as (b: Buffer) => StreamResponse);
      const fail = (e: Error): void => {
        if (streams[loop] === s) streams[loop] = undefined;
        const p = pending[loop];
        pending[loop] = undefined;
        p?.reject(e);
      };
      s.on("data", (r: StreamResponse) => {
        const p = pending[loop];
        pending[loop] = undefined;
        if (p) p.resolve(r);
        else failures.add("stream response with no request in flight");
      });
      s.on("error", (e: ServiceError) => fail(new RequestFailure(`stream error: gRPC ${grpc.status[e.code] ?? e.code}: ${e.details}`)));
      s.on("end", () => fail(new RequestFailure("stream ended by the server")));
      streams[loop] = s;
      return s;
    };
    once = async (loop) => {
      const s = streams[loop] ?? open(loop);
      const r = await new Promise<StreamResponse>((resolve, reject) => {
        pending[loop] = { resolve, reject };
        s.write(requests[loop]!);
      });
      if (r.errorMessage) throw new RequestFailure(`stream error_message: ${r.errorMessage}`);
      check(r.inferResponse, `loop-${loop}`);
    };
  }
  const result = await measure(cell, once, failures);
  for (const s of streams) s?.end();
  client.close();
  return { ...result, requestBytes: requests[0]!.byteLength, responseBytes };
}

// ---------------------------------------------------------------- in-process

async function runInProcess(cell: InProcessCell): Promise<LoadResult> {
  const ort = (await import("onnxruntime-node")).default;
  // The options Tritium's ONNX Runtime backend uses for a config without parameters.
  const session = await ort.InferenceSession.create(cell.modelPath, { graphOptimizationLevel: "all", executionMode: "sequential" });
  const failures = new Failures();
  const once = async (): Promise<void> => {
    const feeds: Record<string, InstanceType<typeof ort.Tensor>> = {};
    for (const t of cell.inputs) feeds[t.name] = new ort.Tensor(t.datatype === "INT32" ? "int32" : "float32", t.data, t.shape);
    let results;
    try {
      results = await session.run(feeds);
    } catch (e) {
      throw new RequestFailure(`session.run: ${(e as Error).message}`);
    }
    const outputs = new Map<string, DecodedOutput>();
    for (const name of session.outputNames) {
      const r = results[name]!;
      const values = r.data as Int32Array | Float32Array;
      outputs.set(name, { datatype: r.type === "int32" ? "INT32" : r.type === "float32" ? "FP32" : r.type, shape: r.dims.map(Number), values });
    }
    verify(cell.expected, outputs);
  };
  const result = await measure(cell, once, failures);
  await session.release();
  return result;
}

process.once("message", (cell: LoadCell) => {
  const run = cell.kind === "http" ? runHttp(cell) : cell.kind === "grpc" ? runGrpc(cell) : runInProcess(cell);
  run
    .catch((e: unknown): LoadResult => ({
      completed: 0, failed: 0, wrong: 0, warmupFailed: 0, failureSamples: [], wallSeconds: 0,
      p50Ms: NaN, p99Ms: NaN, meanMs: NaN, maxMs: NaN, fatal: (e as Error).stack ?? String(e),
    }))
    .then((result) => process.send!(result, () => process.exit(0)));
});
