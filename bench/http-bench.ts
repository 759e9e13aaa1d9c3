/**
 * End-to-end HTTP benchmark: Tritium against the baselines it must beat,
 * measured in one run on one machine.
 *
 *   npm run bench                         # build, run, print the table
 *   npm run bench -- --write              # ... and record it in bench/README.md
 *
 * Options: --write, --models=simple,image_classifier, --concurrency=1,16.
 * Environment: BENCH_SECONDS (measured seconds per cell, default 5),
 * BENCH_WARMUP_SECONDS (default 1).
 *
 * For each model and concurrency it measures, each cell with its own
 * load-generator process (`load-generator.ts`):
 *   in-process    onnxruntime-node InferenceSession.run in the load-generator process, no HTTP;
 *   hand-written  `handwritten-server.ts` (node:http, session.run on its main thread), child process;
 *   Tritium       `dist/src/cli/main.js` as a child process;
 * the two servers with JSON tensors and with the binary tensor data extension.
 * Exit status 1 when a request failed or an answer carried wrong values.
 */
import { fork, spawn, spawnSync, type ChildProcess } from "node:child_process";
import fs from "node:fs";
import http from "node:http";
import net, { type AddressInfo } from "node:net";
import os from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";
import type { LoadCell, LoadResult } from "./load-generator.js";
import {
  binaryRequest, compareOutputs, decodeResponse, jsonRequest, seededFloats,
  type BenchTensor, type DecodedOutput, type EncodedRequest,
} from "./payload.js";

const ROOT = fileURLToPath(new URL("../../", import.meta.url));
const HERE = fileURLToPath(new URL(".", import.meta.url));
const REPOSITORY = path.join(ROOT, "examples", "model_repository");
const TRITIUM_MAIN = path.join(ROOT, "dist", "src", "cli", "main.js");
const README = path.join(ROOT, "bench", "README.md");
const BEGIN = "<!-- bench:results:begin -->";
const END = "<!-- bench:results:end -->";

// ---------------------------------------------------------------- options

function option(name: string): string | undefined {
  const prefix = `--${name}=`;
  return process.argv.find((a) => a.startsWith(prefix))?.slice(prefix.length);
}
function positiveNumber(v: string | undefined, fallback: number, what: string): number {
  if (v === undefined || v === "") return fallback;
  const n = Number(v);
  if (!(n > 0)) throw new Error(`${what} must be a positive number, got '${v}'`);
  return n;
}
const WRITE = process.argv.includes("--write");
const SECONDS = positiveNumber(process.env.BENCH_SECONDS, 5, "BENCH_SECONDS");
const WARMUP_SECONDS = positiveNumber(process.env.BENCH_WARMUP_SECONDS, 1, "BENCH_WARMUP_SECONDS");
const CONCURRENCIES = (option("concurrency") ?? "1,16").split(",").map((c) => positiveNumber(c, 1, "--concurrency"));
const MODELS = (option("models") ?? "simple,image_classifier").split(",");

// ---------------------------------------------------------------- models

interface ModelCase {
  name: string;
  /** For the table: what goes in and out. */
  shapes: string;
  inputs: BenchTensor[];
  expected: Map<string, DecodedOutput>;
  json: EncodedRequest;
  binary: EncodedRequest;
}

function modelInputs(name: string): { inputs: BenchTensor[]; shapes: string } {
  switch (name) {
    case "simple": // Triton's simple client: INPUT0 = 0..15, INPUT1 = ones.
      return {
        shapes: "2× INT32 [1,16] → 2× INT32 [1,16]",
        inputs: [
          { name: "INPUT0", datatype: "INT32", shape: [1, 16], data: Int32Array.from({ length: 16 }, (_, i) => i) },
          { name: "INPUT1", datatype: "INT32", shape: [1, 16], data: new Int32Array(16).fill(1) },
        ],
      };
    case "image_classifier":
      return {
        shapes: "FP32 [1,3,32,32] → FP32 [1,10]",
        inputs: [{ name: "INPUT", datatype: "FP32", shape: [1, 3, 32, 32], data: seededFloats(3 * 32 * 32, 42) }],
      };
    default:
      throw new Error(`no benchmark inputs defined for model '${name}'`);
  }
}

/** Expected outputs: one onnxruntime-node run in this process (session released right after). */
async function referenceOutputs(model: string, inputs: BenchTensor[]): Promise<Map<string, DecodedOutput>> {
  const ort = (await import("onnxruntime-node")).default;
  const session = await ort.InferenceSession.create(modelPath(model));
  const feeds: Record<string, InstanceType<typeof ort.Tensor>> = {};
  for (const t of inputs) feeds[t.name] = new ort.Tensor(t.datatype === "INT32" ? "int32" : "float32", t.data, t.shape);
  const results = await session.run(feeds);
  const out = new Map<string, DecodedOutput>();
  for (const name of session.outputNames) {
    const r = results[name]!;
    out.set(name, { datatype: r.type === "int32" ? "INT32" : "FP32", shape: r.dims.map(Number), values: Array.from(r.data as Float32Array | Int32Array) });
  }
  await session.release();
  if (model === "simple") {
    // The model itself must be Triton's simple: sum and difference.
    const [a, b] = [inputs[0]!.data, inputs[1]!.data];
    const want = new Map<string, DecodedOutput>([
      ["OUTPUT0", { datatype: "INT32", shape: [1, 16], values: Array.from(a, (x, i) => x + b[i]!) }],
      ["OUTPUT1", { datatype: "INT32", shape: [1, 16], values: Array.from(a, (x, i) => x - b[i]!) }],
    ]);
    const diff = compareOutputs(want, out);
    if (diff) throw new Error(`examples/model_repository/simple does not compute sum/difference: ${diff}`);
  }
  return out;
}

function modelPath(model: string): string {
  return path.join(REPOSITORY, model, "1", "model.onnx");
}

// ---------------------------------------------------------------- processes

function runCell(cell: LoadCell): Promise<LoadResult> {
  return new Promise((resolve) => {
    const child = fork(path.join(HERE, "load-generator.js"), [], { serialization: "advanced", stdio: ["ignore", "inherit", "inherit", "ipc"] });
    let result: LoadResult | undefined;
    const timer = setTimeout(() => child.kill("SIGKILL"), (cell.warmupSeconds + cell.seconds + 60) * 1000);
    child.once("message", (m) => {
      result = m as LoadResult;
    });
    child.once("exit", (code, signal) => {
      clearTimeout(timer);
      resolve(result ?? fatal(`load generator exited (${signal ?? `code ${code}`}) without a result`));
    });
    child.send(cell);
  });
}

function fatal(message: string): LoadResult {
  return { completed: 0, failed: 0, warmupFailed: 0, failureSamples: [], wallSeconds: 0, p50Ms: NaN, p99Ms: NaN, meanMs: NaN, maxMs: NaN, fatal: message };
}

async function freePort(): Promise<number> {
  const srv = net.createServer();
  await new Promise<void>((resolve) => srv.listen(0, "127.0.0.1", resolve));
  const port = (srv.address() as AddressInfo).port;
  await new Promise<void>((resolve) => srv.close(() => resolve()));
  return port;
}

function httpGetStatus(port: number, urlPath: string): Promise<number> {
  return new Promise((resolve) => {
    const req = http.get({ host: "127.0.0.1", port, path: urlPath, agent: false }, (res) => {
      res.resume();
      res.on("end", () => resolve(res.statusCode ?? 0));
    });
    req.on("error", () => resolve(0));
    req.setTimeout(2000, () => req.destroy());
  });
}

interface ServerHandle {
  name: string;
  port: number;
  /** Stops the server; resolves with a problem description, or undefined when it exited cleanly. */
  stop(): Promise<string | undefined>;
  /** Set if the process exited while it should have been serving. */
  died(): string | undefined;
}

/** Keeps the last lines a child wrote, for error reports. */
function tail(child: ChildProcess, keep = 40): () => string {
  const lines: string[] = [];
  const add = (chunk: Buffer): void => {
    lines.push(...chunk.toString("utf8").split("\n").filter(Boolean));
    if (lines.length > keep) lines.splice(0, lines.length - keep);
  };
  child.stdout?.on("data", add);
  child.stderr?.on("data", add);
  return () => lines.join("\n");
}

function supervise(name: string, child: ChildProcess, port: number, log: () => string, graceMs: number): ServerHandle {
  let exit: string | undefined;
  let stopping = false;
  const exited = new Promise<void>((resolve) => {
    child.once("exit", (code, signal) => {
      exit = signal ? `signal ${signal}` : `code ${code}`;
      resolve();
    });
  });
  return {
    name,
    port,
    died: () => (!stopping && exit !== undefined ? `${name} exited (${exit}) during the benchmark:\n${log()}` : undefined),
    async stop() {
      if (exit !== undefined) return `${name} had already exited (${exit}):\n${log()}`;
      stopping = true;
      child.kill("SIGTERM");
      const timeout = new Promise<"timeout">((resolve) => setTimeout(() => resolve("timeout"), graceMs).unref());
      if ((await Promise.race([exited, timeout])) === "timeout") {
        child.kill("SIGKILL");
        await exited;
        return `${name} did not exit within ${graceMs / 1000} s of SIGTERM; killed`;
      }
      return exit === "code 0" ? undefined : `${name} exited with ${exit} after SIGTERM:\n${log()}`;
    },
  };
}

async function startHandwritten(models: string[]): Promise<ServerHandle> {
  const child = fork(path.join(HERE, "handwritten-server.js"), [REPOSITORY, ...models], { stdio: ["ignore", "pipe", "pipe", "ipc"] });
  const log = tail(child);
  const port = await new Promise<number>((resolve, reject) => {
    const timer = setTimeout(() => {
      child.kill("SIGKILL");
      reject(new Error(`hand-written server did not listen within 60 s:\n${log()}`));
    }, 60_000);
    child.once("message", (m) => {
      clearTimeout(timer);
      resolve((m as { port: number }).port);
    });
    child.once("exit", (code) => {
      clearTimeout(timer);
      reject(new Error(`hand-written server exited (code ${code}) before listening:\n${log()}`));
    });
  });
  return supervise("hand-written server", child, port, log, 5000);
}

/** The flags we want, minus any that this build's `--help` does not list. */
function tritiumArgs(port: number): { args: string[]; dropped: string[] } {
  const help = spawnSync(process.execPath, [TRITIUM_MAIN, "--help"], { encoding: "utf8" });
  const text = `${help.stdout ?? ""}${help.stderr ?? ""}`;
  const wanted: [flag: string, required: boolean][] = [
    [`--model-repository=${REPOSITORY}`, true],
    [`--http-port=${port}`, true],
    ["--allow-grpc=false", false],
    ["--allow-metrics=false", false],
  ];
  const args: string[] = [];
  const dropped: string[] = [];
  for (const [flag, required] of wanted) {
    const name = flag.split("=")[0]!;
    if (required || new RegExp(`${name}\\b`).test(text)) args.push(flag);
    else dropped.push(flag);
  }
  return { args, dropped };
}

async function startTritium(): Promise<ServerHandle & { args: string[]; dropped: string[] }> {
  if (!fs.existsSync(TRITIUM_MAIN)) throw new Error(`${TRITIUM_MAIN} not found: run 'npm run build' first`);
  const port = await freePort();
  const { args, dropped } = tritiumArgs(port);
  const child = spawn(process.execPath, [TRITIUM_MAIN, ...args], { cwd: ROOT, stdio: ["ignore", "pipe", "pipe"] });
  const log = tail(child);
  const handle = supervise("Tritium", child, port, log, 35_000);
  const deadline = Date.now() + 120_000;
  for (;;) {
    const died = handle.died();
    if (died) throw new Error(died);
    if ((await httpGetStatus(port, "/v2/health/ready")) === 200) break;
    if (Date.now() > deadline) {
      const states = await Promise.all(MODELS.map(async (m) => `${m}: ${await httpGetStatus(port, `/v2/models/${m}/ready`)}`));
      await handle.stop();
      throw new Error(`Tritium not ready after 120 s (model ready statuses ${states.join(", ")}):\n${log()}`);
    }
    await new Promise((r) => setTimeout(r, 100));
  }
  return { ...handle, args, dropped };
}

// ---------------------------------------------------------------- measurement

type ServerKind = "in-process" | "hand-written" | "Tritium";
type Payload = "tensors" | "json" | "binary";

interface Row {
  model: ModelCase;
  server: ServerKind;
  payload: Payload;
  concurrency: number;
  result: LoadResult;
  requestBytes?: number;
  responseBytes?: number;
  /** Undefined when the first answer carried the expected values. */
  wrong?: string;
}

function check(model: ModelCase, payload: Payload, result: LoadResult): { wrong?: string; responseBytes?: number } {
  if (result.fatal) return { wrong: "cell did not run" };
  const first = result.first;
  if (!first) return { wrong: "no successful response to check" };
  if ("outputs" in first) return { wrong: compareOutputs(model.expected, first.outputs) };
  try {
    if (payload === "binary" && first.headerLength === undefined) return { wrong: "binary_data_output was ignored: no Inference-Header-Content-Length in the response", responseBytes: first.body.byteLength };
    if (payload === "json" && first.headerLength !== undefined) return { wrong: "JSON request got a binary response", responseBytes: first.body.byteLength };
    return { wrong: compareOutputs(model.expected, decodeResponse(first.body, first.headerLength)), responseBytes: first.body.byteLength };
  } catch (e) {
    return { wrong: `undecodable response: ${(e as Error).message}`, responseBytes: first.body.byteLength };
  }
}

/**
 * Runs every cell, grouped by model and concurrency so that the rows compared
 * with each other run back to back (load on a shared machine drifts).
 * A server that failed to start or died has its cells left out.
 */
async function measureAll(models: ModelCase[], servers: Partial<Record<ServerKind, ServerHandle>>, rows: Row[], problems: string[]): Promise<void> {
  const order: [ServerKind, Payload][] = [["in-process", "tensors"], ["hand-written", "json"], ["hand-written", "binary"], ["Tritium", "json"], ["Tritium", "binary"]];
  const gone = new Set<ServerKind>();
  for (const model of models) {
    for (const concurrency of CONCURRENCIES) {
      for (const [server, payload] of order) {
        const handle = servers[server];
        if (server !== "in-process" && (!handle || gone.has(server))) continue;
        process.stderr.write(`  ${model.name} c=${concurrency} ${server} ${payload} ...`);
        let result: LoadResult;
        let requestBytes: number | undefined;
        if (payload === "tensors") {
          result = await runCell({ kind: "inprocess", modelPath: modelPath(model.name), inputs: model.inputs, concurrency, warmupSeconds: WARMUP_SECONDS, seconds: SECONDS });
        } else {
          const req = payload === "json" ? model.json : model.binary;
          requestBytes = req.body.byteLength;
          result = await runCell({
            kind: "http",
            url: `http://127.0.0.1:${handle!.port}/v2/models/${model.name}/infer`,
            headers: req.headers,
            body: req.body,
            concurrency,
            warmupSeconds: WARMUP_SECONDS,
            seconds: SECONDS,
          });
        }
        const { wrong, responseBytes } = check(model, payload, result);
        rows.push({ model, server, payload, concurrency, result, requestBytes, responseBytes, wrong });
        process.stderr.write(` ${rate(result)} req/s, p50 ${ms(result.p50Ms)} ms${result.failed || result.warmupFailed ? `, ${result.failed + result.warmupFailed} FAILED` : ""}\n`);
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

function rate(r: LoadResult): number {
  return r.wallSeconds > 0 ? Math.round(r.completed / r.wallSeconds) : 0;
}
const ms = (x: number): string => (Number.isFinite(x) ? x.toFixed(3) : "—");
const ratio = (a: number, b: number): string => (b > 0 ? `${(a / b).toFixed(2)}×` : "—");
const signedMs = (x: number): string => (Number.isFinite(x) ? `${x >= 0 ? "+" : "−"}${Math.abs(x).toFixed(3)} ms` : "—");

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
    const hw = find(rows, row.model, "hand-written", row.payload, row.concurrency);
    if (hw) parts.push(`${ratio(rate(row.result), rate(hw.result))} hand-written req/s`);
  }
  return parts.join("; ");
}

function payloadText(row: Row): string {
  if (row.payload === "tensors") return "ort.Tensor, no wire";
  const name = row.payload === "json" ? "JSON" : "binary";
  return `${name} ${row.requestBytes} B → ${row.responseBytes ?? "?"} B`;
}

function failedText(r: LoadResult): string {
  if (r.fatal) return "**did not run**";
  const n = r.failed + r.warmupFailed;
  if (n === 0) return "0";
  return `**${r.failed}**${r.warmupFailed ? ` (+${r.warmupFailed} warm-up)` : ""}`;
}

interface Environment {
  cpu: string;
  cores: number;
  os: string;
  node: string;
  ort: string;
  started: Date;
  loadStart: number[];
  loadEnd: number[];
}

function cpuModel(): string {
  try {
    const m = /^model name\s*:\s*(.+)$/m.exec(fs.readFileSync("/proc/cpuinfo", "utf8"));
    if (m) return m[1]!.trim();
  } catch {
    // not Linux: fall through
  }
  return os.cpus()[0]?.model ?? "unknown CPU";
}

function ortVersion(): string {
  try {
    return (JSON.parse(fs.readFileSync(path.join(ROOT, "node_modules", "onnxruntime-node", "package.json"), "utf8")) as { version: string }).version;
  } catch {
    return "unknown";
  }
}

function report(env: Environment, rows: Row[], models: ModelCase[], info: string[], notes: string[]): { markdown: string; ok: boolean } {
  const out: string[] = [];
  const load = (l: number[]): string => l.map((x) => x.toFixed(2)).join(" / ");
  out.push(`Machine: ${env.cpu}, ${env.cores} cores (${env.os}) · Node ${env.node} · onnxruntime-node ${env.ort}`);
  out.push("");
  out.push(`Run ${env.started.toISOString().slice(0, 16).replace("T", " ")} UTC: ${SECONDS} s measured per cell after ${WARMUP_SECONDS} s warm-up; ` +
    `load average (1/5/15 min) ${load(env.loadStart)} at start, ${load(env.loadEnd)} at end.`);
  out.push("");
  if (info.length) out.push(...info, "");
  out.push("| Model | Server | Payload (request → response) | Concurrency | Req/s | p50 ms | p99 ms | Failed | Values | vs baseline |");
  out.push("|---|---|---|--:|--:|--:|--:|--:|---|---|");
  const order: [ServerKind, Payload][] = [["in-process", "tensors"], ["hand-written", "json"], ["hand-written", "binary"], ["Tritium", "json"], ["Tritium", "binary"]];
  let ok = true;
  for (const model of models) {
    for (const c of CONCURRENCIES) {
      for (const [server, payload] of order) {
        const row = find(rows, model, server, payload, c);
        if (!row) continue;
        const r = row.result;
        if (r.fatal || r.failed || r.warmupFailed || row.wrong) ok = false;
        out.push(`| ${model.name} (${model.shapes}) | ${server} | ${payloadText(row)} | ${c} | ${rate(r)} | ${ms(r.p50Ms)} | ${ms(r.p99Ms)} | ` +
          `${failedText(r)} | ${row.wrong ? "**WRONG**" : "ok"} | ${comparison(rows, row)} |`);
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
    }
  }

  const details: string[] = [];
  for (const row of rows) {
    const r = row.result;
    const label = `${row.model.name} / ${row.server} ${row.payload} / concurrency ${row.concurrency}`;
    if (r.fatal) details.push(`- ${label}: did not run: ${r.fatal.split("\n")[0]}`);
    if (r.failed || r.warmupFailed) details.push(`- ${label}: ${r.failed} failed (+${r.warmupFailed} in warm-up), e.g. ${r.failureSamples.map((s) => `\`${s.replace(/\s+/g, " ")}\``).join(", ")}`);
    if (row.wrong) details.push(`- ${label}: wrong answer: ${row.wrong}`);
    if (r.connections !== undefined && r.connections > row.concurrency) {
      details.push(`- ${label}: ${r.connections} connections opened for ${row.concurrency} loops (keep-alive not held)`);
    }
  }
  if (details.length || notes.length) {
    out.push("");
    out.push("Problems:");
    out.push(...details, ...notes.map((n) => `- ${n.replace(/\n/g, "\n  ")}`));
  }
  return { markdown: out.join("\n"), ok };
}

const DEFAULT_README = `# Benchmarks

\`bench/http-bench.ts\` measures Tritium's HTTP inference path against two
baselines in the same run on the same machine. Not a test: run it on demand,
on a quiet machine.

    npm run bench                                   # build, run, print the table
    npm run build && node dist/bench/http-bench.js --write   # also record it below

\`BENCH_SECONDS\` (default 5) sets the measured time per cell,
\`BENCH_WARMUP_SECONDS\` (default 1) the warm-up before it;
\`--models=simple,image_classifier\` and \`--concurrency=1,16\` narrow the run.

${BEGIN}
${END}
`;

function writeReadme(markdown: string): void {
  const current = fs.existsSync(README) ? fs.readFileSync(README, "utf8") : DEFAULT_README;
  const from = current.indexOf(BEGIN);
  const to = current.indexOf(END);
  const text = from >= 0 && to > from
    ? `${current.slice(0, from + BEGIN.length)}\n${markdown}\n${current.slice(to)}`
    : `${current.trimEnd()}\n\n${BEGIN}\n${markdown}\n${END}\n`;
  fs.writeFileSync(README, text);
}

// ---------------------------------------------------------------- main

async function main(): Promise<number> {
  const env: Environment = {
    cpu: cpuModel(),
    cores: os.cpus().length,
    os: `${os.type()} ${os.release()} ${os.arch()}`,
    node: process.version,
    ort: ortVersion(),
    started: new Date(),
    loadStart: os.loadavg(),
    loadEnd: [],
  };
  const models: ModelCase[] = [];
  for (const name of MODELS) {
    const { inputs, shapes } = modelInputs(name);
    models.push({ name, shapes, inputs, expected: await referenceOutputs(name, inputs), json: jsonRequest(inputs), binary: binaryRequest(inputs) });
  }
  const rows: Row[] = [];
  const notes: string[] = [];
  const info: string[] = [];

  const servers: Partial<Record<ServerKind, ServerHandle>> = {};
  process.stderr.write("Starting the hand-written server and Tritium\n");
  try {
    servers["hand-written"] = await startHandwritten(models.map((m) => m.name));
  } catch (e) {
    notes.push(`hand-written server: ${(e as Error).message}`);
  }
  try {
    const tritium = await startTritium();
    servers.Tritium = tritium;
    info.push(`Tritium started as \`node dist/src/cli/main.js ${tritium.args.map((a) => a.replace(ROOT, "")).join(" ")}\`` +
      (tritium.dropped.length ? ` (its --help does not list ${tritium.dropped.join(", ")})` : "") + ".");
  } catch (e) {
    notes.push(`Tritium: ${(e as Error).message}`);
  }
  process.stderr.write(`Measuring (${SECONDS} s per cell after ${WARMUP_SECONDS} s warm-up)\n`);
  try {
    await measureAll(models, servers, rows, notes);
  } finally {
    for (const handle of Object.values(servers)) {
      const problem = await handle.stop();
      if (problem && !notes.some((n) => n.startsWith(`${handle.name} exited`))) notes.push(problem);
    }
  }

  env.loadEnd = os.loadavg();
  const { markdown, ok } = report(env, rows, models, info, notes);
  process.stdout.write(`\n${markdown}\n`);
  if (WRITE) {
    writeReadme(markdown);
    process.stderr.write(`\nwrote ${path.relative(ROOT, README)}\n`);
  }
  return ok && notes.length === 0 ? 0 : 1;
}

main().then(
  (code) => process.exit(code),
  (e: unknown) => {
    process.stderr.write(`${(e as Error).stack ?? String(e)}\n`);
    process.exit(1);
  },
);
