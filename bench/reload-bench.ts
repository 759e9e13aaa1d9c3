/**
 * Model management benchmark (issue 5), Tritium in explicit model control mode:
 *
 * 1. Load time: POST /v2/repository/models/image_classifier/load, timed until
 *    it has answered 200 and /v2/models/image_classifier/ready answers 200;
 *    repeated, with an unload (and a wait until it is no longer ready) before
 *    each load. Median and max.
 * 2. Another model during reloads: `simple` under steady load (its own
 *    load-generator process, binary HTTP, every answer checked) for a window
 *    without reloads, a window during which image_classifier is reloaded back
 *    to back (a load call on a loaded model: the new instance loads beside the
 *    old one, which is then released), and a second window without reloads.
 *    Target: p99 during reloads no more than 1.5× the steady-state p99 (the
 *    mean of the two quiet windows), and no failed request.
 *
 *   npm run bench:reload                        # build, run, print the table
 *   npm run bench:reload -- --write             # ... and record it in bench/README.md
 *
 * Options: --write, --loads=10 (timed loads), --concurrency=4 (loops on simple).
 * Environment: BENCH_SECONDS (measured seconds per window, default 3),
 * BENCH_WARMUP_SECONDS (default 1).
 * Exit status 1 when a request or a load failed.
 */
import os from "node:os";
import { performance } from "node:perf_hooks";
import type { LoadResult } from "./load-generator.js";
import {
  cellProblems, environment, environmentLines, failedText, httpCall, httpGetStatus, median, modelInputs, ms, option,
  positiveNumber, rate, ratio, referenceOutputs, runMain, sleep, startTritium, valuesText, writeReadmeSection,
  runCellWithCost, costText, memoryText, type ServerCost,
  type TritiumHandle,
  problemLines,
} from "./harness.js";
import { binaryRequest } from "./payload.js";

const RELOADED = "image_classifier";
const STEADY = "simple";
const WRITE = process.argv.includes("--write");
const SECONDS = positiveNumber(process.env.BENCH_SECONDS, 3, "BENCH_SECONDS");
const WARMUP_SECONDS = positiveNumber(process.env.BENCH_WARMUP_SECONDS, 1, "BENCH_WARMUP_SECONDS");
const LOADS = Math.round(positiveNumber(option("loads"), 10, "--loads"));
const CONCURRENCY = Math.round(positiveNumber(option("concurrency"), 4, "--concurrency"));

interface LoadTiming {
  /** The load call, until its 200. */
  callMs: number;
  /** From the load call to the first 200 of the model's ready endpoint. */
  readyMs: number;
}

interface Window {
  label: string;
  result: LoadResult;
  reloads?: { count: number; failed: number; callMs: number[]; samples: string[] };
  /** The server's CPU per request and memory over the window. */
  cost?: ServerCost;
}

// ---------------------------------------------------------------- load / unload

async function load(t: TritiumHandle): Promise<{ ok: true; callMs: number } | { ok: false; error: string }> {
  const t0 = performance.now();
  const res = await httpCall(t.port, "POST", `/v2/repository/models/${RELOADED}/load`, "{}");
  const callMs = performance.now() - t0;
  return res.status === 200 ? { ok: true, callMs } : { ok: false, error: `load: HTTP ${res.status}: ${res.body.slice(0, 200)}` };
}

async function unload(t: TritiumHandle): Promise<void> {
  const res = await httpCall(t.port, "POST", `/v2/repository/models/${RELOADED}/unload`, "{}");
  if (res.status !== 200) throw new Error(`unload: HTTP ${res.status}: ${res.body.slice(0, 200)}`);
  const deadline = Date.now() + 30_000;
  while ((await httpGetStatus(t.port, `/v2/models/${RELOADED}/ready`)) === 200) {
    if (Date.now() > deadline) throw new Error(`${RELOADED} still ready 30 s after its unload returned`);
    await sleep(5);
  }
}

/** One timed load from the unloaded state. */
async function timedLoad(t: TritiumHandle): Promise<LoadTiming> {
  const t0 = performance.now();
  const res = await httpCall(t.port, "POST", `/v2/repository/models/${RELOADED}/load`, "{}");
  const callMs = performance.now() - t0;
  if (res.status !== 200) throw new Error(`load: HTTP ${res.status}: ${res.body.slice(0, 300)}`);
  const deadline = Date.now() + 30_000;
  while ((await httpGetStatus(t.port, `/v2/models/${RELOADED}/ready`)) !== 200) {
    if (Date.now() > deadline) throw new Error(`${RELOADED} not ready 30 s after its load returned 200`);
    await sleep(1);
  }
  return { callMs, readyMs: performance.now() - t0 };
}

// ---------------------------------------------------------------- main

async function main(): Promise<number> {
  const env = environment();
  const notes: string[] = [];
  const info: string[] = [];
  const timings: LoadTiming[] = [];
  const windows: Window[] = [];

  const { inputs } = modelInputs(STEADY);
  const expected = await referenceOutputs(STEADY, inputs);
  const req = binaryRequest(inputs);

  process.stderr.write("Starting Tritium in explicit mode\n");
  const tritium = await startTritium({ extra: ["--model-control-mode=explicit", `--load-model=${STEADY}`], models: [STEADY] });
  info.push(`Tritium started as \`${tritium.commandLine}\`${tritium.dropped.length ? ` (its --help does not list ${tritium.dropped.join(", ")})` : ""}.`);
  try {
    // 1. Load time, from unloaded to READY.
    process.stderr.write(`Timing ${LOADS} loads of ${RELOADED}\n`);
    try {
      if ((await httpGetStatus(tritium.port, `/v2/models/${RELOADED}/ready`)) === 200) await unload(tritium);
      for (let i = 0; i < LOADS; i++) {
        const t = await timedLoad(tritium);
        timings.push(t);
        process.stderr.write(`  load ${i + 1}: call ${ms(t.callMs)} ms, READY after ${ms(t.readyMs)} ms\n`);
        await unload(tritium);
      }
    } catch (e) {
      notes.push(`load timing stopped after ${timings.length} loads: ${(e as Error).message}`);
    }

    // 2. simple's latency: quiet, during back-to-back reloads, quiet again.
    const first = await load(tritium);
    if (!first.ok) notes.push(`loading ${RELOADED} before the reload windows: ${first.error}`);
    const cell = {
      kind: "http" as const, url: `http://127.0.0.1:${tritium.port}/v2/models/${STEADY}/infer`, headers: req.headers, body: req.body,
      binaryResponse: true, expected, concurrency: CONCURRENCY, warmupSeconds: WARMUP_SECONDS, seconds: SECONDS,
    };
    for (const label of ["steady", "during reloads", "steady (after)"]) {
      process.stderr.write(`  ${STEADY} c=${CONCURRENCY}, ${label} ...`);
      if (label !== "during reloads") {
        const { result, cost } = await runCellWithCost(cell, tritium);
        windows.push({ label, result, cost });
      } else {
        const reloads = { count: 0, failed: 0, callMs: [] as number[], samples: [] as string[] };
        let stop = false;
        let loop: Promise<void> | undefined;
        const { result, cost } = await runCellWithCost(cell, tritium, () => {
          loop = (async () => {
            while (!stop) {
              const r = await load(tritium);
              if (stop && r.ok) break; // finished after the window: not counted
              reloads.count++;
              if (r.ok) reloads.callMs.push(r.callMs);
              else {
                reloads.failed++;
                if (reloads.samples.length < 3) reloads.samples.push(r.error);
              }
            }
          })();
        });
        stop = true;
        await loop;
        if (!loop) notes.push("the load generator never reported the end of its warm-up: no reloads ran");
        windows.push({ label, result, reloads, cost });
        process.stderr.write(` ${reloads.count} reloads,`);
      }
      const r = windows[windows.length - 1]!.result;
      process.stderr.write(` ${rate(r)} req/s, p99 ${ms(r.p99Ms)} ms${r.failed || r.warmupFailed ? `, ${r.failed + r.warmupFailed} FAILED` : ""}\n`);
      const died = tritium.died();
      if (died) {
        notes.push(died);
        break;
      }
    }
  } finally {
    const problem = await tritium.stop();
    if (problem && !notes.some((n) => n.startsWith(`${tritium.name} exited`))) notes.push(problem);
  }

  env.loadEnd = os.loadavg();
  const { markdown, ok } = report(env, timings, windows, info, notes);
  process.stdout.write(`\n${markdown}\n`);
  if (WRITE) writeReadmeSection("reload", "### Model reload", markdown);
  return ok && notes.length === 0 ? 0 : 1;
}

// ---------------------------------------------------------------- report

function report(env: ReturnType<typeof environment>, timings: LoadTiming[], windows: Window[], info: string[], notes: string[]): { markdown: string; ok: boolean } {
  const out: string[] = [];
  let ok = true;
  out.push(...environmentLines(env, `${LOADS} timed loads; ${SECONDS} s measured per latency window after ${WARMUP_SECONDS} s warm-up`));
  out.push("");
  if (info.length) out.push(...info, "");

  out.push(`Load time of \`${RELOADED}\` (FP32 [1,3,32,32] → [1,10], one CPU instance), from unloaded:`);
  out.push("");
  out.push("| Measure | Loads | Median ms | Max ms |");
  out.push("|---|--:|--:|--:|");
  const calls = timings.map((t) => t.callMs);
  const readies = timings.map((t) => t.readyMs);
  out.push(`| load call until its 200 | ${timings.length} | ${ms(median(calls))} | ${ms(Math.max(...calls))} |`);
  out.push(`| load call until /v2/models/${RELOADED}/ready is 200 | ${timings.length} | ${ms(median(readies))} | ${ms(Math.max(...readies))} |`);
  if (timings.length < LOADS) ok = false;

  out.push("");
  out.push(`\`${STEADY}\` (2× INT32 [1,16], binary HTTP, ${CONCURRENCY} closed loops) while \`${RELOADED}\` is reloaded back to back:`);
  out.push("");
  out.push(`| Window | Reloads of ${RELOADED} (failed) | Reload call median ms | Req/s | p50 ms | p99 ms | Max ms | Server CPU µs/req | Server RSS MB | Failed | Values |`);
  out.push("|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|---|");
  for (const w of windows) {
    const r = w.result;
    if (r.fatal || r.failed || r.warmupFailed || r.wrong || r.completed === 0) ok = false;
    if (w.reloads?.failed) ok = false;
    const reloads = w.reloads ? `${w.reloads.count} (${w.reloads.failed})` : "—";
    const reloadMs = w.reloads ? ms(median(w.reloads.callMs)) : "—";
    out.push(`| ${w.label} | ${reloads} | ${reloadMs} | ${rate(r)} | ${ms(r.p50Ms)} | ${ms(r.p99Ms)} | ${ms(r.maxMs)} | ${costText(w.cost)} | ${memoryText(w.cost)} | ${failedText(r)} | ${valuesText(r)} |`);
  }

  out.push("");
  out.push("Targets (issue 5):");
  const steady = windows.filter((w) => !w.reloads && !w.result.fatal);
  const during = windows.find((w) => w.reloads);
  if (steady.length && during) {
    const base = steady.reduce((a, w) => a + w.result.p99Ms, 0) / steady.length;
    const x = during.result.p99Ms / base;
    out.push(`- ${STEADY} p99 during reloads ${ms(during.result.p99Ms)} ms, ${ratio(during.result.p99Ms, base)} its steady-state p99 of ${ms(base)} ms ` +
      `(mean of the quiet windows; target ≤ 1.5×): ${x <= 1.5 ? "met" : "**missed**"}`);
    const failed = windows.reduce((a, w) => a + w.result.failed + w.result.warmupFailed, 0);
    out.push(`- failed ${STEADY} requests across the windows: ${failed} (target 0): ${failed === 0 ? "met" : "**missed**"}`);
  }

  const details: string[] = [];
  for (const w of windows) {
    details.push(...cellProblems(`${STEADY} / ${w.label}`, w.result));
    if (w.reloads?.failed) details.push(`- ${w.label}: ${w.reloads.failed} reload calls failed, e.g. ${w.reloads.samples.map((s) => `\`${s}\``).join(", ")}`);
    if (w.reloads && w.reloads.count === 0) details.push(`- ${w.label}: no reload completed in the window`);
  }
  out.push(...problemLines(details, notes));
  return { markdown: out.join("\n"), ok };
}

runMain(main);
