/**
 * Load generator: a child process forked by `http-bench.ts` (with
 * `serialization: "advanced"`), so it never shares an event loop or CPU
 * accounting with the server under test. It receives one {@link LoadCell},
 * runs a warm-up then a fixed-duration measurement, sends back a
 * {@link LoadResult} and exits.
 *
 * - `http` cells: `concurrency` closed loops, each sending the same request
 *   again as soon as its previous answer has been read completely, over a
 *   keep-alive `http.Agent` with `maxSockets = concurrency`. Every response's
 *   status is checked; anything but 200 (or a socket error) is a failure,
 *   counted and sampled, never dropped.
 * - `inprocess` cells: the baseline. An `onnxruntime-node` InferenceSession
 *   in this process; each loop builds fresh `ort.Tensor`s over the same typed
 *   arrays, awaits `session.run()` and reads the outputs' data. onnxruntime-node
 *   runs `session.run` synchronously on the calling thread, so several loops
 *   serialize on it: concurrency > 1 measures the single-session ceiling and
 *   queueing, not parallelism.
 */
import http from "node:http";
import { performance } from "node:perf_hooks";
import type { Socket } from "node:net";
import type { BenchTensor, DecodedOutput } from "./payload.js";

export interface HttpCell {
  kind: "http";
  url: string;
  headers: Record<string, string>;
  body: Uint8Array;
  concurrency: number;
  warmupSeconds: number;
  seconds: number;
}

export interface InProcessCell {
  kind: "inprocess";
  modelPath: string;
  inputs: BenchTensor[];
  concurrency: number;
  warmupSeconds: number;
  seconds: number;
}

export type LoadCell = HttpCell | InProcessCell;

export interface LoadResult {
  /** Successful requests in the measured window. */
  completed: number;
  /** Failed requests in the measured window. */
  failed: number;
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
  /** Connections the agent opened over the whole cell (keep-alive: should equal concurrency). */
  connections?: number;
  /** The first successful answer: raw response (http) or outputs (inprocess). */
  first?: { status: number; headerLength?: string; contentType?: string; body: Uint8Array } | { outputs: Map<string, DecodedOutput> };
  /** Set when the cell could not run at all. */
  fatal?: string;
}

interface Phase {
  ok: number;
  failed: number;
  latencies: number[];
}

class Failures {
  samples: string[] = [];
  add(what: string): void {
    if (this.samples.length < 5 && !this.samples.includes(what)) this.samples.push(what);
  }
}

/** Runs `concurrency` closed loops of `once` until `endAt`; resolves when the last in-flight call ends. */
async function runPhase(concurrency: number, endAt: number, once: () => Promise<void>, phase: Phase): Promise<void> {
  const loop = async (): Promise<void> => {
    while (performance.now() < endAt) {
      const t0 = performance.now();
      try {
        await once();
        phase.latencies.push(performance.now() - t0);
        phase.ok++;
      } catch {
        phase.failed++;
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

async function measure(cell: LoadCell, once: () => Promise<void>, failures: Failures): Promise<LoadResult> {
  const warm: Phase = { ok: 0, failed: 0, latencies: [] };
  await runPhase(cell.concurrency, performance.now() + cell.warmupSeconds * 1000, once, warm);
  const phase: Phase = { ok: 0, failed: 0, latencies: [] };
  const start = performance.now();
  await runPhase(cell.concurrency, start + cell.seconds * 1000, once, phase);
  const wallSeconds = (performance.now() - start) / 1000;
  const sorted = phase.latencies.sort((a, b) => a - b);
  return {
    completed: phase.ok,
    failed: phase.failed,
    warmupFailed: warm.failed,
    failureSamples: failures.samples,
    wallSeconds,
    p50Ms: percentile(sorted, 50),
    p99Ms: percentile(sorted, 99),
    meanMs: sorted.reduce((a, b) => a + b, 0) / Math.max(1, sorted.length),
    maxMs: sorted.length ? sorted[sorted.length - 1]! : NaN,
  };
}

async function runHttp(cell: HttpCell): Promise<LoadResult> {
  const url = new URL(cell.url);
  const agent = new http.Agent({ keepAlive: true, maxSockets: cell.concurrency, maxFreeSockets: cell.concurrency });
  const sockets = new Set<Socket>();
  const failures = new Failures();
  const body = Buffer.from(cell.body.buffer, cell.body.byteOffset, cell.body.byteLength);
  let first: LoadResult["first"];
  const once = (): Promise<void> =>
    new Promise<void>((resolve, reject) => {
      const req = http.request(
        { agent, hostname: url.hostname, port: url.port, path: url.pathname + url.search, method: "POST", headers: cell.headers },
        (res) => {
          const chunks: Buffer[] = [];
          res.on("data", (c: Buffer) => chunks.push(c));
          res.on("error", (e) => {
            failures.add(`response error: ${e.message}`);
            reject(e);
          });
          res.on("end", () => {
            const status = res.statusCode ?? 0;
            const data = chunks.length === 1 ? chunks[0]! : Buffer.concat(chunks);
            if (status !== 200) {
              failures.add(`HTTP ${status}: ${data.toString("utf8", 0, Math.min(data.byteLength, 200))}`);
              reject(new Error(`HTTP ${status}`));
              return;
            }
            if (first === undefined) {
              first = {
                status,
                headerLength: res.headers["inference-header-content-length"] as string | undefined,
                contentType: res.headers["content-type"],
                body: new Uint8Array(data),
              };
            }
            resolve();
          });
        },
      );
      req.on("socket", (s: Socket) => sockets.add(s));
      req.on("error", (e) => {
        failures.add(`request error: ${(e as NodeJS.ErrnoException).code ?? e.message}`);
        reject(e);
      });
      req.end(body);
    });
  const result = await measure(cell, once, failures);
  agent.destroy();
  return { ...result, connections: sockets.size, first };
}

async function runInProcess(cell: InProcessCell): Promise<LoadResult> {
  const ort = (await import("onnxruntime-node")).default;
  // The options Tritium's ONNX Runtime backend uses for a config without parameters.
  const session = await ort.InferenceSession.create(cell.modelPath, { graphOptimizationLevel: "all", executionMode: "sequential" });
  const failures = new Failures();
  let first: Map<string, DecodedOutput> | undefined;
  const once = async (): Promise<void> => {
    const feeds: Record<string, InstanceType<typeof ort.Tensor>> = {};
    for (const t of cell.inputs) feeds[t.name] = new ort.Tensor(t.datatype === "INT32" ? "int32" : "float32", t.data, t.shape);
    let results;
    try {
      results = await session.run(feeds);
    } catch (e) {
      failures.add(`session.run: ${(e as Error).message}`);
      throw e;
    }
    const outputs = new Map<string, DecodedOutput>();
    for (const name of session.outputNames) {
      const r = results[name]!;
      const values = r.data as Int32Array | Float32Array;
      outputs.set(name, { datatype: r.type === "int32" ? "INT32" : r.type === "float32" ? "FP32" : r.type, shape: r.dims.map(Number), values });
    }
    first ??= outputs;
  };
  const result = await measure(cell, once, failures);
  await session.release();
  return { ...result, first: first && { outputs: first } };
}

process.once("message", (cell: LoadCell) => {
  const run = cell.kind === "http" ? runHttp(cell) : runInProcess(cell);
  run
    .catch((e: unknown): LoadResult => ({
      completed: 0, failed: 0, warmupFailed: 0, failureSamples: [], wallSeconds: 0,
      p50Ms: NaN, p99Ms: NaN, meanMs: NaN, maxMs: NaN, fatal: (e as Error).stack ?? String(e),
    }))
    .then((result) => process.send!(result, () => process.exit(0)));
});
