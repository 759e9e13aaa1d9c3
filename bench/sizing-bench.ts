/**
 * Sizing for deployment (docs/deployment.md): what each example model adds
 * to the server's memory once loaded, and how many requests one core
 * serves for the ONNX examples (server CPU per request, HTTP binary,
 * concurrency 4, answers checked).
 *
 *   npm run bench:sizing [-- --write]
 * Environment: BENCH_SECONDS (measured seconds per cell, default 3), BENCH_WARMUP_SECONDS (default 1).
 */
import os from "node:os";
import { binaryRequest } from "./payload.js";
import {
  cellProblems, environment, environmentLines, httpCall, modelInputs, positiveNumber, problemLines, rate, referenceOutputs, rssBytes, runCellWithCost, runMain,
  sleep, startTritium, writeReadmeSection,
} from "./harness.js";

const SECONDS = positiveNumber(process.env.BENCH_SECONDS, 3, "BENCH_SECONDS");
const WARMUP_SECONDS = positiveNumber(process.env.BENCH_WARMUP_SECONDS, 1, "BENCH_WARMUP_SECONDS");
const WRITE = process.argv.includes("--write");
/** Every model of examples/model_repository; the ensemble loads its three steps' models itself. */
const MODELS = ["simple", "identity_fp32", "simple_string", "image_classifier", "image_cnn", "image_preprocess", "image_top3", "image_pipeline"];
const THROUGHPUT_MODELS = ["simple", "image_classifier", "image_cnn"];

/** RSS once it has settled: the lowest of a few readings a little apart. */
async function settledRss(pid: number): Promise<number> {
  let low = Infinity;
  for (let i = 0; i < 5; i++) {
    await sleep(200);
    low = Math.min(low, rssBytes(pid));
  }
  return low / 2 ** 20;
}

async function main(): Promise<number> {
  const env = environment();
  const server = await startTritium({ extra: ["--model-control-mode=explicit"] });
  const problems: string[] = [];
  const memoryRows: string[] = [];
  const cpuRows: string[] = [];
  try {
    const empty = await settledRss(server.pid);
    memoryRows.push(`| (no model) | — | ${empty.toFixed(0)} |`);
    let previous = empty;
    for (const model of MODELS) {
      const r = await httpCall(server.port, "POST", `/v2/repository/models/${model}/load`, "{}");
      if (r.status !== 200) problems.push(`load ${model}: ${r.status} ${r.body}`);
      const now = await settledRss(server.pid);
      const added = now - previous;
      memoryRows.push(`| ${model} | ${added >= 0 ? "+" : "−"}${Math.abs(added).toFixed(1)} | ${now.toFixed(0)} |`);
      previous = now;
    }
    for (const model of THROUGHPUT_MODELS) {
      const { inputs } = modelInputs(model);
      const req = binaryRequest(inputs);
      process.stderr.write(`  ${model} c=4 ...`);
      const { result, cost } = await runCellWithCost({
        kind: "http", url: `http://127.0.0.1:${server.port}/v2/models/${model}/infer`, headers: req.headers, body: req.body, binaryResponse: true,
        expected: await referenceOutputs(model, inputs), concurrency: 4, warmupSeconds: WARMUP_SECONDS, seconds: SECONDS,
      }, server);
      process.stderr.write(` ${rate(result)} req/s\n`);
      problems.push(...cellProblems(`${model} c=4`, result));
      const perCore = cost && cost.cpuUsPerRequest > 0 ? Math.round(1e6 / cost.cpuUsPerRequest) : NaN;
      cpuRows.push(`| ${model} | ${rate(result)} | ${cost ? Math.round(cost.cpuUsPerRequest) : "—"} | ${Number.isFinite(perCore) ? perCore : "—"} |`);
    }
  } finally {
    const stop = await server.stop();
    if (stop) problems.push(stop);
  }
  env.loadEnd = os.loadavg();
  const out = [
    ...environmentLines(env, `memory: RSS after each load (lowest of 5 readings, 200 ms apart); throughput: ${SECONDS} s per cell after ${WARMUP_SECONDS} s warm-up, HTTP binary, concurrency 4`),
    `Server: \`${server.commandLine}\`, models loaded one after another through the repository API.`,
    "",
    "| Model loaded | RSS added MB | server RSS MB |",
    "|---|--:|--:|",
    ...memoryRows,
    "",
    "| Model | req/s (2 cores) | server CPU µs/req | requests per core-second |",
    "|---|--:|--:|--:|",
    ...cpuRows,
    ...problemLines(problems, []),
  ].join("\n");
  process.stdout.write(`\n${out}\n`);
  if (WRITE) writeReadmeSection("sizing", "### Sizing: memory per model, requests per core", out);
  return problems.length ? 1 : 0;
}

runMain(main);
