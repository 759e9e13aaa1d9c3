/**
 * Measurement windows and perf_analyzer's stability rule: windows of
 * `--measurement-interval` repeat until the last three agree (each one's
 * throughput and latency percentile within `--stability-percentage` of the
 * three's mean) or `--max-trials` windows have passed. A step reports the
 * last three windows merged, with the server's time per request taken from
 * the statistics extension's counters, read before and after each window.
 */
import type { InferenceServerClient, ModelStatistics } from "../index.js";
import type { PerfOptions } from "./args.js";
import type { Load, RequestRecord } from "./load.js";

/** The server's cumulative counters for the model. */
interface ServerCounters {
  success: number;
  /** Nanoseconds: total request time, queue, compute input/infer/output. */
  total: number;
  queue: number;
  computeInput: number;
  computeInfer: number;
  computeOutput: number;
}

/** One window's numbers. */
export interface Window {
  durationNs: number;
  records: RequestRecord[];
  /** Counter deltas over the window; undefined when the server has no statistics. */
  server?: ServerCounters;
}

/** What one step of the sweep reports (times in microseconds, rounded down as perf_analyzer does). */
export interface StepResult {
  /** The concurrency or the request rate of the step. */
  load: number;
  stable: boolean;
  windows: number;
  requests: number;
  throughput: number;
  clientSendUs: number;
  networkServerUs: number;
  serverQueueUs: number;
  serverComputeInputUs: number;
  serverComputeInferUs: number;
  serverComputeOutputUs: number;
  clientRecvUs: number;
  /** Latency percentiles: 50, 90, 95, 99 (and the stabilizing one). */
  percentiles: Map<number, number>;
  avgLatencyUs: number;
  /** Server-side request count over the reported windows (0 without statistics). */
  serverRequests: number;
}

const now = (): number => performance.now() * 1e6;
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

function counters(s: ModelStatistics | undefined): ServerCounters | undefined {
  if (!s) return undefined;
  const i = s.inference_stats;
  return { success: i.success.count, total: i.success.ns, queue: i.queue.ns, computeInput: i.compute_input.ns, computeInfer: i.compute_infer.ns, computeOutput: i.compute_output.ns };
}

async function readCounters(client: InferenceServerClient, options: PerfOptions): Promise<ServerCounters | undefined> {
  try {
    const stats = await client.getInferenceStatistics(options.model, options.modelVersion);
    // Without a version asked for, sum every version's counters: requests go to whichever the policy serves.
    const all = stats.model_stats.map(counters).filter((c): c is ServerCounters => c !== undefined);
    if (!all.length) return undefined;
    return all.reduce(add);
  } catch {
    return undefined;
  }
}

function combine(a: ServerCounters, b: ServerCounters, sign: 1 | -1): ServerCounters {
  return {
    success: a.success + sign * b.success, total: a.total + sign * b.total, queue: a.queue + sign * b.queue,
    computeInput: a.computeInput + sign * b.computeInput, computeInfer: a.computeInfer + sign * b.computeInfer, computeOutput: a.computeOutput + sign * b.computeOutput,
  };
}
const add = (a: ServerCounters, b: ServerCounters) => combine(a, b, 1);
const subtract = (a: ServerCounters, b: ServerCounters) => combine(a, b, -1);

/** The p-th percentile of sorted values (nearest rank). */
export function percentile(sorted: number[], p: number): number {
  if (!sorted.length) return 0;
  return sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1))]!;
}

function latencies(records: RequestRecord[]): number[] {
  return records.map((r) => r.end - r.start).sort((a, b) => a - b);
}

/** Throughput (inferences per second: requests × batch) of a window. */
function throughput(w: Window, batch: number): number {
  return (w.records.length * batch) / (w.durationNs / 1e9);
}

/** The latency a step must hold steady: the given percentile, or the mean as perf_analyzer does without --percentile. */
function stabilizingLatency(sorted: number[], p: number | undefined): number {
  if (p !== undefined) return percentile(sorted, p);
  return sorted.length ? sorted.reduce((a, b) => a + b, 0) / sorted.length : 0;
}

/** perf_analyzer's rule: each of the last three within ±pct of their mean, for throughput and the latency percentile. */
export function isStable(values: { throughput: number; latency: number }[], pct: number): boolean {
  if (values.length < 3) return false;
  const last = values.slice(-3);
  const within = (xs: number[]) => {
    const mean = xs.reduce((a, b) => a + b, 0) / xs.length;
    return xs.every((x) => x >= mean * (1 - pct / 100) && x <= mean * (1 + pct / 100));
  };
  return last.every((v) => v.throughput > 0) && within(last.map((v) => v.throughput)) && within(last.map((v) => v.latency));
}

/** Measures one window: server counters, the interval, counters again; the records that completed inside it. */
async function measureWindow(client: InferenceServerClient, load: Load, options: PerfOptions): Promise<Window> {
  const before = await readCounters(client, options);
  const start = now();
  await sleep(options.measurementIntervalMs);
  const end = now();
  const after = await readCounters(client, options);
  const records = load.records.filter((r) => r.end >= start && r.end < end);
  load.forget(end);
  return { durationNs: end - start, records, server: before && after ? subtract(after, before) : undefined };
}

/**
 * Runs windows on a started load until they are stable (or the trials run
 * out), reporting each pass through `progress`, and returns the step's
 * result from the last three windows.
 */
export async function measureStep(
  client: InferenceServerClient,
  load: Load,
  value: number,
  options: PerfOptions,
  progress: (line: string) => void,
): Promise<StepResult> {
  const windows: Window[] = [];
  const summary: { throughput: number; latency: number }[] = [];
  while (windows.length < options.maxTrials) {
    const w = await measureWindow(client, load, options);
    if (load.failure) throw load.failure;
    windows.push(w);
    const tp = throughput(w, options.batchSize);
    const lat = stabilizingLatency(latencies(w.records), options.percentile) / 1000;
    summary.push({ throughput: tp, latency: lat });
    progress(`  Pass [${windows.length}] throughput: ${round(tp)} infer/sec. ${options.percentile === undefined ? "Avg" : `p${options.percentile}`} latency: ${Math.floor(lat)} usec`);
    if (isStable(summary, options.stabilityPercentage)) break;
  }
  const stable = isStable(summary, options.stabilityPercentage);
  return summarize(windows.slice(-3), value, stable, windows.length, options);
}

/** Merges windows into a step's result (perf_analyzer's CSV arithmetic). */
export function summarize(windows: Window[], value: number, stable: boolean, count: number, options: PerfOptions): StepResult {
  const records = windows.flatMap((w) => w.records);
  const duration = windows.reduce((a, w) => a + w.durationNs, 0);
  const n = Math.max(1, records.length);
  const avg = (f: (r: RequestRecord) => number) => records.reduce((a, r) => a + f(r), 0) / n;
  const sorted = latencies(records);
  const avgLatency = avg((r) => r.end - r.start);
  const send = avg((r) => r.encodeNs);
  const recv = avg((r) => r.decodeNs);
  const server = windows.every((w) => w.server) ? windows.map((w) => w.server!).reduce(add) : undefined;
  const per = (ns: number) => (server && server.success > 0 ? ns / server.success : 0);
  const queue = per(server?.queue ?? 0);
  const compute = per(server?.computeInput ?? 0) + per(server?.computeInfer ?? 0) + per(server?.computeOutput ?? 0);
  // Client wait less the server's share is the network and the server's (de)serialization; capped at 0
  // because the two sides are measured apart.
  const network = Math.max(0, avgLatency - send - recv - queue - compute);
  const us = (ns: number) => Math.floor(ns / 1000);
  const percentiles = new Map<number, number>();
  for (const p of [50, 90, 95, 99, ...(options.percentile === undefined ? [] : [options.percentile])]) percentiles.set(p, us(percentile(sorted, p)));
  return {
    load: value,
    stable,
    windows: count,
    requests: records.length,
    throughput: (records.length * options.batchSize) / (duration / 1e9),
    clientSendUs: us(send),
    networkServerUs: us(network),
    serverQueueUs: us(queue),
    serverComputeInputUs: us(per(server?.computeInput ?? 0)),
    serverComputeInferUs: us(per(server?.computeInfer ?? 0)),
    serverComputeOutputUs: us(per(server?.computeOutput ?? 0)),
    clientRecvUs: us(recv),
    percentiles,
    avgLatencyUs: us(avgLatency),
    serverRequests: server?.success ?? 0,
  };
}

/** perf_analyzer prints throughput with up to 6 significant digits. */
export function round(x: number): string {
  return String(Number(x.toPrecision(6)));
}
