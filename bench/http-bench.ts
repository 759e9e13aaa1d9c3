/**
 * End-to-end inference benchmark: Tritium over HTTP and gRPC against the
 * baselines it must beat, measured in one run on one machine.
 *
 *   npm run bench                         # build, run, print the table
 *   npm run bench -- --write              # ... and record it in bench/README.md
 *
 * Options: --write, --models=simple,image_classifier, --concurrency=1,16,
 * --payloads=json,binary,grpc,grpc-stream.
 * Environment: BENCH_SECONDS (measured seconds per cell, default 3),
 * BENCH_WARMUP_SECONDS (default 1).
 *
 * For each model and concurrency it measures, each cell with its own
 * load-generator process (`load-generator.ts`):
 *   in-process    onnxruntime-node InferenceSession.run in the load-generator process, no wire;
 *   hand-written  `handwritten-server.ts` (node:http, session.run on its main thread), child process;
 *   Tritium       `dist/src/cli/main.js` as a child process;
 * the two HTTP servers with JSON tensors and with the binary tensor data
 * extension, and Tritium's gRPC frontend with unary ModelInfer and with
 * ModelStreamInfer (raw_input_contents both).
 * Exit status 1 when a request failed or an answer carried wrong values.
 */
import os from "node:os";
import type { LoadCell, LoadResult } from "./load-generator.js";
import {
  cellProblems, environment, environmentLines, failedText, modelInputs, modelPath, ms, numberList, option,
  positiveNumber, rate, ratio, referenceOutputs, runMain, signedMs, startHandwritten, startTritium, valuesText,
  writeReadmeSection, type ServerHandle,
  problemLines, runCellWithCost, costText, memoryText, type ServerCost,
} from "./harness.js";
import { binaryRequest, jsonRequest, type BenchTensor, type DecodedOutput, type EncodedRequest } from "./payload.js";

const WRITE = process.argv.includes("--write");
const SECONDS = positiveNumber(process.env.BENCH_SECONDS, 3, "BENCH_SECONDS");
const WARMUP_SECONDS = positiveNumber(process.env.BENCH_WARMUP_SECONDS, 1, "BENCH_WARMUP_SECONDS");
const CONCURRENCIES = numberList(option("concurrency"), "1,16", "--concurrency");
const MODELS = (option("models") ?? "simple,image_classifier").split(",");

type ServerKind = "in-process" | "hand-written" | "Tritium";
type Payload = "tensors" | "json" | "binary" | "grpc" | "grpc-stream";
const WIRE_PAYLOADS: readonly Payload[] = ["json", "binary", "grpc", "grpc-stream"];
const PAYLOADS = new Set((option("payloads") ?? WIRE_PAYLOADS.join(",")).split(",") as Payload[]);
for (const p of PAYLOADS) if (!WIRE_PAYLOADS.includes(p)) throw new Error(`--payloads: unknown payload '${p}' (known: ${WIRE_PAYLOADS.join(", ")})`);
const GRPC = PAYLOADS.has("grpc") || PAYLOADS.has("grpc-stream");

/** The order of the rows of one model and concurrency (and of their cells). */
const ORDER: [ServerKind, Payload][] = [
  ["in-process", "tensors"],
  ["hand-written", "json"], ["hand-written", "binary"],
  ["Tritium", "json"], ["Tritium", "binary"], ["Tritium", "grpc"], ["Tritium", "grpc-stream"],
];

interface ModelCase {
  name: string;
  shapes: string;
  inputs: BenchTensor[];
  expected: Map<string, DecodedOutput>;
  json: EncodedRequest;
  binary: EncodedRequest;
}

interface Row {
  model: ModelCase;
  server: ServerKind;
  payload: Payload;
  concurrency: number;
  result: LoadResult;
  /** The server process's CPU per request and memory over the window (absent in-process). */
  cost?: ServerCost;
}

// ---------------------------------------------------------------- measurement

/**
 * Runs every cell, grouped by model and concurrency so that the rows compared
 * with each other run back to back (load on a shared machine drifts).
 * A server that failed to start or died has its cells left out.
 */
async function measureAll(models: ModelCase[], servers: { hw?: ServerHandle; tritium?: ServerHandle & { grpcPort?: number } }, rows: Row[], problems: string[]): Promise<void> {
  const gone = new Set<ServerKind>();
  for (const model of models) {
    for (const concurrency of CONCURRENCIES) {
      for (const [server, payload] of ORDER) {
        if (payload !== "tensors" && !PAYLOADS.has(payload)) continue;
        const handle = server === "hand-written" ? servers.hw : server === "Tritium" ? servers.tritium : undefined;
        if (server === "hand-written" && (payload === "grpc" || payload === "grpc-stream")) continue;
        if (server !== "in-process" && (!handle || gone.has(server))) continue;
        process.stderr.write(`  ${model.name} c=${concurrency} ${server} ${payload} ...`);
        const timing = { concurrency, warmupSeconds: WARMUP_SECONDS, seconds: SECONDS, expected: model.expected };
        let cell: LoadCell;
        if (payload === "tensors") {
          cell = { kind: "inprocess", modelPath: modelPath(model.name), inputs: model.inputs, ...timing };
        } else if (payload === "grpc" || payload === "grpc-stream") {
          cell = {
            kind: "grpc", mode: payload === "grpc" ? "unary" : "stream", address: `127.0.0.1:${servers.tritium!.grpcPort}`,
            model: model.name, inputs: model.inputs, ...timing,
          };
        } else {
          const req = payload === "json" ? model.json : model.binary;
          cell = {
            kind: "http",
            url: `http://127.0.0.1:${handle!.port}/v2/models/${model.name}/infer`,
            headers: req.headers,
            body: req.body,
            binaryResponse: payload === "binary",
            ...timing,
          };
        }
        const { result, cost } = await runCellWithCost(cell, handle);
        rows.push({ model, server, payload, concurrency, result, cost });
        process.stderr.write(` ${rate(result)} req/s, p50 ${ms(result.p50Ms)} ms${result.failed || result.warmupFailed ? `, ${result.failed + result.warmupFailed} FAILED` : ""}${result.fatal ? " (did not run)" : ""}\n`);
        const died = handle?.died();
        if (died) {
          problems.push(died);
          gone.add(server);
        }
      }
    }
  }
}

// ---------------------------------------------------------------- report

function find(rows: Row[], model: ModelCase, server: ServerKind, payload: Payload, concurrency: number): Row | undefined {
  return rows.find((r) => r.model === model && r.server === server && r.payload === payload && r.concurrency === concurrency);
}

function comparison(rows: Row[], row: Row): string {
  const base = find(rows, row.model, "in-process", "tensors", row.concurrency);
  if (row.server === "in-process") return row.concurrency === 1 ? "baseline" : "baseline (calls serialize on one session)";
  const parts: string[] = [];
  const base1 = find(rows, row.model, "in-process", "tensors", 1);
  if (row.concurrency === 1 && base1) parts.push(`p50 ${signedMs(row.result.p50Ms - base1.result.p50Ms)} vs in-process`);
  if (row.server === "hand-written" && base) parts.push(`${ratio(rate(row.result), rate(base.result))} in-process req/s`);
  if (row.server === "Tritium") {
    const grpc = row.payload === "grpc" || row.payload === "grpc-stream";
    // gRPC has no hand-written counterpart: compare with the fastest hand-written path, and with Tritium's own HTTP binary path.
    const hw = find(rows, row.model, "hand-written", grpc ? "binary" : row.payload, row.concurrency);
    if (hw) parts.push(`${ratio(rate(row.result), rate(hw.result))} hand-written${grpc ? " binary" : ""} req/s`);
    const http = grpc ? find(rows, row.model, "Tritium", "binary", row.concurrency) : undefined;
    if (http) parts.push(`${ratio(rate(row.result), rate(http.result))} Tritium HTTP binary`);
  }
  return parts.join("; ");
}

function payloadText(row: Row): string {
  const r = row.result;
  const bytes = `${r.requestBytes ?? "?"} B → ${r.responseBytes ?? "?"} B`;
  switch (row.payload) {
    case "tensors": return "ort.Tensor, no wire";
    case "json": return `JSON ${bytes}`;
    case "binary": return `binary ${bytes}`;
    case "grpc": return `gRPC unary ModelInfer, raw ${bytes}`;
    case "grpc-stream": return `gRPC ModelStreamInfer, raw ${bytes}`;
  }
}

function report(env: ReturnType<typeof environment>, rows: Row[], models: ModelCase[], info: string[], notes: string[]): { markdown: string; ok: boolean } {
  const out: string[] = [];
  out.push(...environmentLines(env, `${SECONDS} s measured per cell after ${WARMUP_SECONDS} s warm-up`));
  out.push("");
  if (info.length) out.push(...info, "");
  out.push("| Model | Server | Payload (request → response) | Concurrency | Req/s | p50 ms | p99 ms | Server CPU µs/req | Server RSS MB | Failed | Values | vs baseline |");
  out.push("|---|---|---|--:|--:|--:|--:|--:|--:|--:|---|---|");
  let ok = true;
  for (const model of models) {
    for (const c of CONCURRENCIES) {
      for (const [server, payload] of ORDER) {
        const row = find(rows, model, server, payload, c);
        if (!row) continue;
        const r = row.result;
        if (r.fatal || r.failed || r.warmupFailed || r.wrong || r.completed === 0) ok = false;
        out.push(`| ${model.name} (${model.shapes}) | ${server} | ${payloadText(row)} | ${c} | ${rate(r)} | ${ms(r.p50Ms)} | ${ms(r.p99Ms)} | ` +
          `${costText(row.cost)} | ${memoryText(row.cost)} | ` +
          `${failedText(r)} | ${valuesText(r)} | ${comparison(rows, row)} |`);
      }
    }
  }

  out.push("");
  out.push("Targets:");
  for (const model of models.filter((m) => m.name === "simple")) {
    const base = find(rows, model, "in-process", "tensors", 1);
    for (const payload of ["binary", "json"] as const) {
      const t = find(rows, model, "Tritium", payload, 1);
      if (!base || !t) continue;
      const added = t.result.p50Ms - base.result.p50Ms;
      out.push(`- simple, concurrency 1, Tritium ${payload}: p50 ${signedMs(added)} over in-process (target < 0.3 ms): ${added < 0.3 ? "met" : "**missed**"}`);
    }
  }
  for (const model of models) {
    for (const c of CONCURRENCIES) {
      const t = find(rows, model, "Tritium", "binary", c);
      const hw = find(rows, model, "hand-written", "binary", c);
      if (!t || !hw) continue;
      const x = rate(hw.result) > 0 ? rate(t.result) / rate(hw.result) : NaN;
      out.push(`- ${model.name}, concurrency ${c}: Tritium binary ${ratio(rate(t.result), rate(hw.result))} the hand-written server's req/s (target ≥ 1×): ${x >= 1 ? "met" : "**missed**"}`);
      const [tc, hc] = [t.cost?.cpuUsPerRequest ?? NaN, hw.cost?.cpuUsPerRequest ?? NaN];
      if (Number.isFinite(tc) && Number.isFinite(hc)) {
        out.push(`- ${model.name}, concurrency ${c}: Tritium binary uses ${ratio(tc, hc)} the hand-written server's CPU per request (${Math.round(tc)} vs ${Math.round(hc)} µs; target ≤ 1.2×): ${tc <= 1.2 * hc ? "met" : "**missed**"}`);
      }
    }
  }

  const details: string[] = [];
  for (const row of rows) {
    const label = `${row.model.name} / ${row.server} ${row.payload} / concurrency ${row.concurrency}`;
    details.push(...cellProblems(label, row.result));
    const r = row.result;
    if (!r.fatal && r.completed === 0) details.push(`- ${label}: no successful request`);
    if (r.connections !== undefined && r.connections > row.concurrency) {
      details.push(`- ${label}: ${r.connections} connections opened for ${row.concurrency} loops (keep-alive not held)`);
    }
  }
  out.push(...problemLines(details, notes));
  return { markdown: out.join("\n"), ok };
}

// ---------------------------------------------------------------- main

async function main(): Promise<number> {
  const env = environment();
  const models: ModelCase[] = [];
  for (const name of MODELS) {
    const { inputs, shapes } = modelInputs(name);
    models.push({ name, shapes, inputs, expected: await referenceOutputs(name, inputs), json: jsonRequest(inputs), binary: binaryRequest(inputs) });
  }
  const rows: Row[] = [];
  const notes: string[] = [];
  const info: string[] = [];

  const servers: { hw?: ServerHandle; tritium?: Awaited<ReturnType<typeof startTritium>> } = {};
  process.stderr.write("Starting the hand-written server and Tritium\n");
  if (PAYLOADS.has("json") || PAYLOADS.has("binary")) {
    try {
      servers.hw = await startHandwritten(models.map((m) => m.name));
    } catch (e) {
      notes.push(`hand-written server: ${(e as Error).message}`);
    }
  }
  try {
    const tritium = await startTritium({ grpc: GRPC, models: MODELS });
    servers.tritium = tritium;
    info.push(`Tritium started as \`${tritium.commandLine}\`` +
      (tritium.dropped.length ? ` (its --help does not list ${tritium.dropped.join(", ")})` : "") + ".");
  } catch (e) {
    notes.push(`Tritium: ${(e as Error).message}`);
  }
  process.stderr.write(`Measuring (${SECONDS} s per cell after ${WARMUP_SECONDS} s warm-up)\n`);
  try {
    await measureAll(models, servers, rows, notes);
  } finally {
    for (const handle of [servers.hw, servers.tritium]) {
      if (!handle) continue;
      const problem = await handle.stop();
      if (problem && !notes.some((n) => n.startsWith(`${handle.name} exited`))) notes.push(problem);
    }
  }

  env.loadEnd = os.loadavg();
  const { markdown, ok } = report(env, rows, models, info, notes);
  process.stdout.write(`\n${markdown}\n`);
  if (WRITE) writeReadmeSection("results", "## Results", markdown);
  return ok && notes.length === 0 ? 0 : 1;
}

runMain(main);
