/**
 * Soak: mixed traffic against one Tritium for a few minutes, watching the
 * server's memory. A server that keeps anything of a finished request grows
 * here interval after interval.
 *
 *   npm run bench:soak                    # build, run, print the table
 *   npm run bench:soak -- --write         # ... and record it in bench/README.md
 *
 * Environment: BENCH_SOAK_SECONDS (whole run, default 180), BENCH_SOAK_INTERVAL
 * (seconds per interval, default 30).
 *
 * Traffic, four load-generator processes at once in every interval:
 *   HTTP JSON on `simple` (concurrency 2), HTTP binary on `image_classifier`
 *   with dynamic batching (concurrency 6), gRPC unary on `simple`
 *   (concurrency 2) and gRPC streaming on `image_classifier` (concurrency 2).
 * In the middle interval `image_classifier` is reloaded through the
 * repository API while its traffic runs. After each interval the server's
 * RSS (from /proc) and V8 heap (through `heap-probe.ts`) are read.
 * The first interval is the warm-up: memory at the end must stay within 10%
 * of memory after it. Exit status 1 when it does not, or a request failed.
 */
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import type { LoadCell, LoadResult } from "./load-generator.js";
import {
  REPOSITORY, cellProblems, cpuSeconds, environment, environmentLines, httpCall, modelInputs, ms, option, positiveNumber, problemLines,
  referenceOutputs, rssBytes, runCell, runMain, startTritium, writeReadmeSection,
} from "./harness.js";
import { binaryRequest, jsonRequest } from "./payload.js";

const WRITE = process.argv.includes("--write") || option("write") !== undefined;
const TOTAL = positiveNumber(process.env.BENCH_SOAK_SECONDS, 180, "BENCH_SOAK_SECONDS");
const INTERVAL = positiveNumber(process.env.BENCH_SOAK_INTERVAL, 30, "BENCH_SOAK_INTERVAL");
const INTERVALS = Math.max(2, Math.round(TOTAL / INTERVAL));
/** Allowed growth from after the warm-up to the end. */
const TOLERANCE = 0.1;

interface Sample {
  label: string;
  rssMB: number;
  heapUsedMB: number;
  /** Memory outside the V8 heap that JS objects own (ArrayBuffers among it). */
  externalMB: number;
  requests: number;
  failed: number;
  p99Ms: number;
  cpuUsPerRequest: number;
  event?: string;
}

const MB = 2 ** 20;

async function main(): Promise<number> {
  const env = environment();
  const repo = fs.mkdtempSync(path.join(os.tmpdir(), "tritium-soak-"));
  for (const m of ["simple", "image_classifier"]) fs.cpSync(path.join(REPOSITORY, m), path.join(repo, m), { recursive: true });
  fs.appendFileSync(path.join(repo, "image_classifier", "config.pbtxt"), "\ndynamic_batching { max_queue_delay_microseconds: 500 }\n");

  const simple = modelInputs("simple");
  const image = modelInputs("image_classifier");
  const expected = { simple: await referenceOutputs("simple", simple.inputs), image: await referenceOutputs("image_classifier", image.inputs) };
  const tritium = await startTritium({ repository: repo, grpc: true, heapProbe: true, extra: ["--model-control-mode=explicit", "--load-model=*"] });
  const notes: string[] = [];
  const details: string[] = [];
  const samples: Sample[] = [];

  const cells = (): [string, LoadCell][] => {
    const timing = { warmupSeconds: 0.01, seconds: INTERVAL };
    const json = jsonRequest(simple.inputs);
    const binary = binaryRequest(image.inputs);
    const url = (m: string) => `http://127.0.0.1:${tritium.port}/v2/models/${m}/infer`;
    const grpc = `127.0.0.1:${tritium.grpcPort}`;
    return [
      ["HTTP JSON simple", { kind: "http", url: url("simple"), headers: json.headers, body: json.body, binaryResponse: false, concurrency: 2, expected: expected.simple, ...timing }],
      ["HTTP binary image_classifier (batched)", { kind: "http", url: url("image_classifier"), headers: binary.headers, body: binary.body, binaryResponse: true, concurrency: 6, expected: expected.image, ...timing }],
      ["gRPC unary simple", { kind: "grpc", mode: "unary", address: grpc, model: "simple", inputs: simple.inputs, concurrency: 2, expected: expected.simple, ...timing }],
      ["gRPC stream image_classifier (batched)", { kind: "grpc", mode: "stream", address: grpc, model: "image_classifier", inputs: image.inputs, concurrency: 2, expected: expected.image, ...timing }],
    ];
  };

  const sample = async (label: string, results: LoadResult[], cpu: number, event?: string): Promise<Sample> => {
    const heap = await tritium.heap();
    const requests = results.reduce((n, r) => n + r.completed, 0);
    const s: Sample = {
      label,
      rssMB: rssBytes(tritium.pid) / MB,
      heapUsedMB: heap.heapUsed / MB,
      externalMB: heap.external / MB,
      requests,
      failed: results.reduce((n, r) => n + r.failed + r.warmupFailed, 0),
      p99Ms: Math.max(...results.map((r) => r.p99Ms)),
      cpuUsPerRequest: requests ? (cpu * 1e6) / requests : NaN,
      event,
    };
    process.stderr.write(`  ${label}: RSS ${s.rssMB.toFixed(1)} MB, heap ${s.heapUsedMB.toFixed(1)} MB, external ${s.externalMB.toFixed(1)} MB, ${requests} requests, p99 ${ms(s.p99Ms)} ms${event ? `, ${event}` : ""}\n`);
    return s;
  };

  try {
    samples.push(await sample("start", [], 0));
    const reloadAt = Math.floor(INTERVALS / 2);
    for (let i = 0; i < INTERVALS; i++) {
      const cpu0 = cpuSeconds(tritium.pid);
      const running = cells().map(([label, cell]) => runCell(cell).then((r) => [label, r] as const));
      let event: string | undefined;
      if (i === reloadAt) {
        await new Promise((r) => setTimeout(r, (INTERVAL * 1000) / 3));
        const t0 = performance.now();
        const res = await httpCall(tritium.port, "POST", "/v2/repository/models/image_classifier/load", "{}");
        event = res.status === 200 ? `image_classifier reloaded (${Math.round(performance.now() - t0)} ms)` : `reload failed: HTTP ${res.status} ${res.body}`;
        if (res.status !== 200) notes.push(event);
      }
      const done = await Promise.all(running);
      for (const [label, r] of done) details.push(...cellProblems(`interval ${i + 1}, ${label}`, r));
      const end = (i + 1) * INTERVAL;
      samples.push(await sample(i === 0 ? `${end} s (warm-up)` : `${end} s`, done.map(([, r]) => r), cpuSeconds(tritium.pid) - cpu0, event));
      const died = tritium.died();
      if (died) throw new Error(died);
    }
  } finally {
    const problem = await tritium.stop();
    if (problem) notes.push(problem);
    fs.rmSync(repo, { recursive: true, force: true });
  }

  env.loadEnd = os.loadavg();
  const warm = samples[1]!;
  const last = samples[samples.length - 1]!;
  const growth = (a: number, b: number) => (b - a) / a;
  const rssOk = growth(warm.rssMB, last.rssMB) <= TOLERANCE;
  const heapOk = growth(warm.heapUsedMB, last.heapUsedMB) <= TOLERANCE;
  const pct = (x: number) => `${x >= 0 ? "+" : "−"}${Math.abs(x * 100).toFixed(1)}%`;

  const out: string[] = [];
  out.push(...environmentLines(env, `${INTERVALS} intervals of ${INTERVAL} s, the first one the warm-up`));
  out.push("", `Tritium started as \`${tritium.commandLine}\` over a copy of \`simple\` and \`image_classifier\` (the latter with \`dynamic_batching\`).`);
  out.push("Traffic in every interval, all at once: HTTP JSON `simple` ×2, HTTP binary `image_classifier` ×6, gRPC unary `simple` ×2, gRPC stream `image_classifier` ×2 (closed loops).", "");
  out.push("| After | Server RSS MB | V8 heap live MB (after GC) | External MB | Requests | Failed | Worst p99 ms | Server CPU µs/req | Event |");
  out.push("|---|--:|--:|--:|--:|--:|--:|--:|---|");
  for (const s of samples) {
    out.push(`| ${s.label} | ${s.rssMB.toFixed(1)} | ${s.heapUsedMB.toFixed(1)} | ${s.externalMB.toFixed(1)} | ${s.requests} | ${s.failed} | ${s.requests ? ms(s.p99Ms) : "—"} | ${Number.isFinite(s.cpuUsPerRequest) ? Math.round(s.cpuUsPerRequest) : "—"} | ${s.event ?? ""} |`);
  }
  const total = samples.reduce((n, s) => n + s.requests, 0);
  out.push("");
  out.push(`Memory from the end of the warm-up to the end (${total} requests in all): RSS ${pct(growth(warm.rssMB, last.rssMB))} (target ≤ +10%): ${rssOk ? "met" : "**missed**"}; ` +
    `V8 heap used ${pct(growth(warm.heapUsedMB, last.heapUsedMB))} (target ≤ +10%): ${heapOk ? "met" : "**missed**"}.`);
  out.push(...problemLines(details, notes));
  const markdown = out.join("\n");
  process.stdout.write(`\n${markdown}\n`);
  if (WRITE) writeReadmeSection("soak", "## Soak: memory under mixed traffic", markdown);
  return rssOk && heapOk && details.length === 0 && notes.length === 0 ? 0 : 1;
}

runMain(main);
