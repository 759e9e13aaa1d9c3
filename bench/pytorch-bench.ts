/**
 * TorchScript in Tritium (issue 18): the CNN of scripts/make-torch-models.py
 * served from `model.pt` by Tritium (PyTorch backend, dynamic batching),
 * against a hand-written Flask + PyTorch server (bench/flask_torch_server.py)
 * and against the same network exported to ONNX in Tritium, over HTTP with
 * JSON tensors (what the Flask server speaks), concurrency 1 and 16. Every
 * answer is checked against PyTorch's own. Server CPU counts child processes.
 *
 * Target: Tritium's TorchScript at concurrency 16 ≥ 2× the Flask server.
 *
 *   npm run bench:pytorch [-- --write]     (needs python3 with torch and flask: Debian's python3-torch python3-flask)
 * Environment: BENCH_SECONDS (default 3), BENCH_WARMUP_SECONDS (default 1).
 */
import { execFileSync, spawn } from "node:child_process";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { findPython } from "../src/backends/process-host/python-runtime.js";
import { jsonRequest, type BenchTensor, type DecodedOutput } from "./payload.js";
import {
  ROOT, cellProblems, costText, environment, environmentLines, freePort, httpGetStatus, memoryText, ms, positiveNumber, problemLines, rate, runCellWithCost, runMain,
  sleep, startTritium, supervise, tail, writeReadmeSection, type ServerCost, type ServerHandle,
} from "./harness.js";
import type { LoadResult } from "./load-generator.js";

const SECONDS = positiveNumber(process.env.BENCH_SECONDS, 3, "BENCH_SECONDS");
const WARMUP_SECONDS = positiveNumber(process.env.BENCH_WARMUP_SECONDS, 1, "BENCH_WARMUP_SECONDS");
const WRITE = process.argv.includes("--write");

async function startFlask(python: string, modelFile: string): Promise<ServerHandle> {
  const port = await freePort();
  const child = spawn(python, [path.join(ROOT, "bench", "flask_torch_server.py"), modelFile, String(port)], { stdio: ["ignore", "pipe", "pipe"] });
  const log = tail(child);
  const handle = supervise("Flask + PyTorch", child, port, log, 5000);
  const deadline = Date.now() + 60_000;
  while ((await httpGetStatus(port, "/v2/health/ready")) !== 200) {
    const died = handle.died();
    if (died) throw new Error(died);
    if (Date.now() > deadline) throw new Error(`Flask server not ready after 60 s:\n${log()}`);
    await sleep(200);
  }
  return handle;
}

interface Row {
  server: string;
  concurrency: number;
  result: LoadResult;
  cost?: ServerCost;
}

async function main(): Promise<number> {
  const python = await findPython(["torch", "flask"]);
  if (!python) {
    process.stdout.write("skipped: no python3 with torch and flask here (Debian: apt-get install python3-torch python3-flask)\n");
    return 0;
  }
  const env = environment();
  const repo = fs.mkdtempSync(path.join(os.tmpdir(), "tritium-torch-bench-"));
  execFileSync(python, [path.join(ROOT, "scripts", "make-torch-models.py"), repo, "--onnx"], { stdio: ["ignore", "ignore", "ignore"] });
  const expectedAll = JSON.parse(fs.readFileSync(path.join(repo, "expected.json"), "utf8")) as Record<string, { inputs: Record<string, [number[], number[]]>; outputs: Record<string, [number[], number[]]> }>;
  for (const m of fs.readdirSync(repo)) if (!["torch_cnn", "torch_cnn_onnx"].includes(m)) fs.rmSync(path.join(repo, m), { recursive: true, force: true });
  // One image per request (the first of the script's two), and PyTorch's answer to it.
  const [, flat] = expectedAll.torch_cnn!.inputs.INPUT__0!;
  const [, probs] = expectedAll.torch_cnn!.outputs.OUTPUT__0!;
  const input: BenchTensor = { name: "INPUT__0", datatype: "FP32", shape: [1, 3, 32, 32], data: Float32Array.from(flat.slice(0, 3072)) };
  const expected = new Map<string, DecodedOutput>([["OUTPUT__0", { datatype: "FP32", shape: [1, 10], values: probs.slice(0, 10) }]]);
  const req = jsonRequest([input]);
  const rows: Row[] = [];
  const problems: string[] = [];
  const servers: [string, () => Promise<ServerHandle>, string][] = [
    ["Tritium, `model.pt` (PyTorch backend, dynamic batching)", () => startTritium({ repository: repo, models: ["torch_cnn"] }), "torch_cnn"],
    ["Tritium, the same network as ONNX (dynamic batching)", () => startTritium({ repository: repo, models: ["torch_cnn_onnx"] }), "torch_cnn_onnx"],
    ["hand-written Flask + PyTorch", () => startFlask(python, path.join(repo, "torch_cnn", "1", "model.pt")), "torch_cnn"],
  ];
  try {
    for (const [label, start, model] of servers) {
      const server = await start();
      try {
        for (const concurrency of [1, 16]) {
          process.stderr.write(`  ${label} c=${concurrency} ...`);
          const { result, cost } = await runCellWithCost({
            kind: "http", url: `http://127.0.0.1:${server.port}/v2/models/${model}/infer`, headers: req.headers, body: req.body, binaryResponse: false, expected,
            concurrency, warmupSeconds: WARMUP_SECONDS, seconds: SECONDS,
          }, server);
          process.stderr.write(` ${rate(result)} req/s\n`);
          problems.push(...cellProblems(`${label} c=${concurrency}`, result));
          rows.push({ server: label, concurrency, result, cost });
        }
      } finally {
        await server.stop();
      }
    }
  } finally {
    fs.rmSync(repo, { recursive: true, force: true });
  }
  env.loadEnd = os.loadavg();
  const at16 = (prefix: string) => rate(rows.find((r) => r.server.startsWith(prefix) && r.concurrency === 16)!.result);
  const speedup = at16("Tritium, `model.pt`") / Math.max(1, at16("hand-written"));
  const out = [
    ...environmentLines(env, `${SECONDS} s measured per cell after ${WARMUP_SECONDS} s warm-up; HTTP JSON, keep-alive, one 3×32×32 image per request`),
    "",
    "| Server | Concurrency | req/s | p50 ms | p99 ms | server CPU µs/req | server RSS MB start → end |",
    "|---|--:|--:|--:|--:|--:|--:|",
    ...rows.map((r) => `| ${r.server} | ${r.concurrency} | ${rate(r.result)} | ${ms(r.result.p50Ms)} | ${ms(r.result.p99Ms)} | ${costText(r.cost)} | ${memoryText(r.cost)} |`),
    "",
    `TorchScript in Tritium at concurrency 16: ${speedup.toFixed(2)}× the Flask + PyTorch server (target ≥ 2×: ${speedup >= 2 ? "met" : "**missed**"}).`,
    ...problemLines(problems, []),
  ].join("\n");
  process.stdout.write(`\n${out}\n`);
  if (WRITE) writeReadmeSection("pytorch", "### PyTorch (TorchScript) models", out);
  return problems.length ? 1 : 0;
}

runMain(main);
