/**
 * What the benchmark scripts share: options, the load-generator process,
 * server processes (the hand-written baseline and Tritium) with supervision,
 * HTTP control calls, the benchmark models and their expected outputs, the
 * machine description and the README section writer.
 */
import { ALLOCATOR_ENV } from "../src/cli/allocator-env.js";
import { fork, spawn, spawnSync, type ChildProcess } from "node:child_process";
import fs from "node:fs";
import http from "node:http";
import net, { type AddressInfo } from "node:net";
import os from "node:os";
import path from "node:path";
import { fileURLToPath, pathToFileURL } from "node:url";
import type { LoadCell, LoadResult } from "./load-generator.js";
import { compareOutputs, seededFloats, type BenchTensor, type DecodedOutput } from "./payload.js";

export const ROOT = fileURLToPath(new URL("../../", import.meta.url));
export const HERE = fileURLToPath(new URL(".", import.meta.url));
export const REPOSITORY = path.join(ROOT, "examples", "model_repository");
export const TRITIUM_MAIN = path.join(ROOT, "dist", "src", "cli", "main.js");
export const README = path.join(ROOT, "bench", "README.md");

// ---------------------------------------------------------------- options

export function option(name: string): string | undefined {
  const prefix = `--${name}=`;
  return process.argv.find((a) => a.startsWith(prefix))?.slice(prefix.length);
}

export function positiveNumber(v: string | undefined, fallback: number, what: string): number {
  if (v === undefined || v === "") return fallback;
  const n = Number(v);
  if (!(n > 0)) throw new Error(`${what} must be a positive number, got '${v}'`);
  return n;
}

export function numberList(v: string | undefined, fallback: string, what: string): number[] {
  return (v ?? fallback).split(",").map((c) => positiveNumber(c, 1, what));
}

// ---------------------------------------------------------------- models

export interface ModelInputs {
  inputs: BenchTensor[];
  /** For tables: what goes in and out. */
  shapes: string;
}

export function modelInputs(name: string): ModelInputs {
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
    case "image_cnn":
      return {
        shapes: "FP32 [1,3,64,64] → FP32 [1,10]",
        inputs: [{ name: "INPUT", datatype: "FP32", shape: [1, 3, 64, 64], data: seededFloats(3 * 64 * 64, 43) }],
      };
    default:
      throw new Error(`no benchmark inputs defined for model '${name}'`);
  }
}

export function modelPath(model: string, repository = REPOSITORY): string {
  return path.join(repository, model, "1", "model.onnx");
}

/** Expected outputs: one onnxruntime-node run in this process (session released right after). */
export async function referenceOutputs(model: string, inputs: BenchTensor[]): Promise<Map<string, DecodedOutput>> {
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
    if (diff) throw new Error(`examples/model_repository/${model} does not compute sum/difference: ${diff}`);
  }
  return out;
}

/** The batch-1 inputs repeated `n` times along the batch dimension, and the outputs that go with them. */
export function batched(inputs: readonly BenchTensor[], expected: ReadonlyMap<string, DecodedOutput>, n: number): { inputs: BenchTensor[]; expected: Map<string, DecodedOutput> } {
  const repeat = <T extends Int32Array | Float32Array>(data: T): T => {
    const out = new (data.constructor as new (len: number) => T)(data.length * n);
    for (let i = 0; i < n; i++) out.set(data, i * data.length);
    return out;
  };
  return {
    inputs: inputs.map((t) => ({ ...t, shape: [t.shape[0]! * n, ...t.shape.slice(1)], data: repeat(t.data) })),
    expected: new Map([...expected].map(([k, o]) => {
      const values = Array.from({ length: n }, () => Array.from(o.values)).flat();
      return [k, { ...o, shape: [o.shape[0]! * n, ...o.shape.slice(1)], values }];
    })),
  };
}

// ---------------------------------------------------------------- the load generator

/**
 * Runs one cell in a fresh load-generator process. `onMeasuring` is called
 * when its warm-up is over and the measured window begins.
 */
export function runCell(cell: LoadCell, onMeasuring?: () => void): Promise<LoadResult> {
  return new Promise((resolve) => {
    const child = fork(path.join(HERE, "load-generator.js"), [], { serialization: "advanced", stdio: ["ignore", "inherit", "inherit", "ipc"] });
    let result: LoadResult | undefined;
    const timer = setTimeout(() => child.kill("SIGKILL"), (cell.warmupSeconds + cell.seconds + 60) * 1000);
    child.on("message", (m) => {
      if ((m as { phase?: string }).phase === "measuring") onMeasuring?.();
      else result = m as LoadResult;
    });
    child.once("exit", (code, signal) => {
      clearTimeout(timer);
      resolve(result ?? fatalResult(`load generator exited (${signal ?? `code ${code}`}) without a result`));
    });
    child.send(cell);
  });
}

export function fatalResult(message: string): LoadResult {
  return { completed: 0, failed: 0, wrong: 0, warmupFailed: 0, failureSamples: [], wallSeconds: 0, p50Ms: NaN, p99Ms: NaN, meanMs: NaN, maxMs: NaN, fatal: message };
}

// ---------------------------------------------------------------- HTTP control calls

export async function freePort(): Promise<number> {
  const srv = net.createServer();
  await new Promise<void>((resolve) => srv.listen(0, "127.0.0.1", resolve));
  const port = (srv.address() as AddressInfo).port;
  await new Promise<void>((resolve) => srv.close(() => resolve()));
  return port;
}

/** One request on a fresh connection; status 0 and the error text when the request itself failed. */
export function httpCall(port: number, method: "GET" | "POST", urlPath: string, body?: string, timeoutMs = 120_000): Promise<{ status: number; body: string }> {
  return new Promise((resolve) => {
    const payload = body === undefined ? undefined : Buffer.from(body, "utf8");
    const req = http.request(
      {
        host: "127.0.0.1", port, path: urlPath, method, agent: false,
        headers: payload ? { "Content-Type": "application/json", "Content-Length": String(payload.byteLength) } : { "Content-Length": "0" },
      },
      (res) => {
        const chunks: Buffer[] = [];
        res.on("data", (c: Buffer) => chunks.push(c));
        res.on("end", () => resolve({ status: res.statusCode ?? 0, body: Buffer.concat(chunks).toString("utf8") }));
        res.on("error", (e) => resolve({ status: 0, body: e.message }));
      },
    );
    req.on("error", (e) => resolve({ status: 0, body: e.message }));
    req.setTimeout(timeoutMs, () => req.destroy(new Error(`no answer within ${timeoutMs} ms`)));
    req.end(payload);
  });
}

export async function httpGetStatus(port: number, urlPath: string): Promise<number> {
  return (await httpCall(port, "GET", urlPath, undefined, 2000)).status;
}

// ---------------------------------------------------------------- server processes

export interface ServerHandle {
  name: string;
  port: number;
  /** The server's process, for its CPU time and memory from /proc. */
  pid: number;
  /** Stops the server; resolves with a problem description, or undefined when it exited cleanly. */
  stop(): Promise<string | undefined>;
  /** Set if the process exited while it should have been serving. */
  died(): string | undefined;
  /** The last lines the process wrote. */
  log(): string;
}

/** Keeps the last lines a child wrote, for error reports. */
export function tail(child: ChildProcess, keep = 40): () => string {
  const lines: string[] = [];
  const add = (chunk: Buffer): void => {
    lines.push(...chunk.toString("utf8").split("\n").filter(Boolean));
    if (lines.length > keep) lines.splice(0, lines.length - keep);
  };
  child.stdout?.on("data", add);
  child.stderr?.on("data", add);
  return () => lines.join("\n");
}

export function supervise(name: string, child: ChildProcess, port: number, log: () => string, graceMs: number): ServerHandle {
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
    pid: child.pid ?? 0,
    log,
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

/** `handwritten-server.ts` as a child process, one session per model from `repository`. */
export function startHandwritten(models: string[], repository = REPOSITORY): Promise<ServerHandle> {
  return startForkedServer("handwritten-server.js", [repository, ...models]);
}

/** A baseline server in bench/ forked with `args`; it sends `{ port }` once it listens. */
export async function startForkedServer(script: string, args: string[], name = "hand-written server"): Promise<ServerHandle> {
  // Baselines run with Tritium's allocator settings: the comparison is of the servers, not of malloc.
  const child = fork(path.join(HERE, script), args, { env: { ...process.env, ...ALLOCATOR_ENV }, stdio: ["ignore", "pipe", "pipe", "ipc"] });
  const log = tail(child);
  const port = await new Promise<number>((resolve, reject) => {
    const timer = setTimeout(() => {
      child.kill("SIGKILL");
      reject(new Error(`${name} did not listen within 60 s:\n${log()}`));
    }, 60_000);
    child.once("message", (m) => {
      clearTimeout(timer);
      resolve((m as { port: number }).port);
    });
    child.once("exit", (code) => {
      clearTimeout(timer);
      reject(new Error(`${name} exited (code ${code}) before listening:\n${log()}`));
    });
  });
  return supervise(name, child, port, log, 5000);
}

export interface TritiumHandle extends ServerHandle {
  /** The flags it was started with, and the optional ones its --help does not list. */
  args: string[];
  dropped: string[];
  /** Port of the gRPC frontend, when it was asked for. */
  grpcPort?: number;
  /** `node dist/src/cli/main.js ...` as a reader can retype it (temporary paths shortened). */
  commandLine: string;
  /** The server's `process.memoryUsage()`; only with `heapProbe`. */
  heap(): Promise<NodeJS.MemoryUsage>;
}

export interface TritiumOptions {
  name?: string;
  repository?: string;
  /** Serve gRPC on a free port (otherwise `--allow-grpc=false`). */
  grpc?: boolean;
  /** More flags, each `--flag=value`; passed whether or not --help lists them. */
  extra?: string[];
  /** Models whose readiness to report if the server does not become ready. */
  models?: string[];
  /** Load `heap-probe.js` into the server, so `heap()` can ask for its V8 heap. */
  heapProbe?: boolean;
}

/**
 * Tritium as a child process on free ports; resolves when /v2/health/ready
 * answers 200. Optional flags that this build's --help does not list are
 * dropped (and reported) rather than failing the start.
 */
export async function startTritium(opts: TritiumOptions = {}): Promise<TritiumHandle> {
  if (!fs.existsSync(TRITIUM_MAIN)) throw new Error(`${TRITIUM_MAIN} not found: run 'npm run build' first`);
  const name = opts.name ?? "Tritium";
  const repository = opts.repository ?? REPOSITORY;
  const port = await freePort();
  const grpcPort = opts.grpc ? await freePort() : undefined;
  const help = spawnSync(process.execPath, [TRITIUM_MAIN, "--help"], { encoding: "utf8" });
  const text = `${help.stdout ?? ""}${help.stderr ?? ""}`;
  const wanted: [flag: string, required: boolean][] = [
    [`--model-repository=${repository}`, true],
    [`--http-port=${port}`, true],
    ...(grpcPort !== undefined
      ? ([[`--grpc-port=${grpcPort}`, true], ["--grpc-address=127.0.0.1", false]] as [string, boolean][])
      : ([["--allow-grpc=false", false]] as [string, boolean][])),
    ["--allow-metrics=false", false],
    ...(opts.extra ?? []).map((f): [string, boolean] => [f, true]),
  ];
  const args: string[] = [];
  const dropped: string[] = [];
  for (const [flag, required] of wanted) {
    const flagName = flag.split("=")[0]!;
    if (required || new RegExp(`${flagName}\\b`).test(text)) args.push(flag);
    else dropped.push(flag);
  }
  const probe = opts.heapProbe ? ["--import", pathToFileURL(path.join(HERE, "heap-probe.js")).href] : [];
  // The allocator settings main.ts would relaunch with, given here so that the measured pid is the server.
  const env = { ...process.env, ...ALLOCATOR_ENV };
  const child = spawn(process.execPath, [...probe, TRITIUM_MAIN, ...args], { cwd: ROOT, env, stdio: ["ignore", "pipe", "pipe", ...(opts.heapProbe ? ["ipc" as const] : [])] });
  const log = tail(child);
  const handle = supervise(name, child, port, log, 35_000);
  const deadline = Date.now() + 120_000;
  for (;;) {
    const died = handle.died();
    if (died) throw new Error(died);
    if ((await httpGetStatus(port, "/v2/health/ready")) === 200) break;
    if (Date.now() > deadline) {
      const states = await Promise.all((opts.models ?? []).map(async (m) => `${m}: ${await httpGetStatus(port, `/v2/models/${m}/ready`)}`));
      await handle.stop();
      throw new Error(`${name} not ready after 120 s (model ready statuses ${states.join(", ") || "not asked"}):\n${log()}`);
    }
    await new Promise((r) => setTimeout(r, 100));
  }
  const shown = args.map((a) => a.replace(ROOT, "").replace(os.tmpdir(), "$TMPDIR"));
  const heap = (): Promise<NodeJS.MemoryUsage> => {
    if (!opts.heapProbe) return Promise.reject(new Error("started without heapProbe"));
    return new Promise((resolve) => {
      child.once("message", (m) => resolve(m as NodeJS.MemoryUsage));
      child.send("memory");
    });
  };
  return { ...handle, args, dropped, grpcPort, heap, commandLine: `node dist/src/cli/main.js ${shown.join(" ")}` };
}

// ---------------------------------------------------------------- the server's own cost, from /proc

/**
 * CPU seconds (user + system) a process has used so far, all its threads
 * and its live child processes (a Python model's instances) included.
 */
export function cpuSeconds(pid: number): number {
  // Fields after the command name (which may hold spaces): utime and stime are the 12th and 13th.
  let total = 0;
  try {
    const stat = fs.readFileSync(`/proc/${pid}/stat`, "utf8");
    const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
    total = (Number(fields[11]) + Number(fields[12])) / CLOCK_TICKS;
    for (const task of fs.readdirSync(`/proc/${pid}/task`)) {
      const children = fs.readFileSync(`/proc/${pid}/task/${task}/children`, "utf8").trim();
      for (const child of children ? children.split(" ") : []) total += cpuSeconds(Number(child));
    }
  } catch {
    // A process that has just ended: what it used is no longer to be had.
  }
  return total;
}

/** Linux reports CPU time in ticks of 1/100 s on every platform Node supports. */
const CLOCK_TICKS = 100;

/** Resident memory of a process, bytes. */
export function rssBytes(pid: number): number {
  const m = /^VmRSS:\s+(\d+) kB/m.exec(fs.readFileSync(`/proc/${pid}/status`, "utf8"));
  return m ? Number(m[1]) * 1024 : NaN;
}

/** What a server spent on a measured window: CPU per successful request and its memory before and after. */
export interface ServerCost {
  cpuUsPerRequest: number;
  rssStartMB: number;
  rssEndMB: number;
}

/**
 * Runs one cell and measures the server process over its measured window
 * (from the load generator's "measuring" signal to its result).
 */
export async function runCellWithCost(cell: LoadCell, server: ServerHandle | undefined, onMeasuring?: () => void): Promise<{ result: LoadResult; cost?: ServerCost }> {
  if (!server) return { result: await runCell(cell, onMeasuring) };
  let cpu0 = NaN;
  let rss0 = NaN;
  const result = await runCell(cell, () => {
    cpu0 = cpuSeconds(server.pid);
    rss0 = rssBytes(server.pid);
    onMeasuring?.();
  });
  if (!Number.isFinite(cpu0) || server.died()) return { result };
  const cpu = cpuSeconds(server.pid) - cpu0;
  return { result, cost: { cpuUsPerRequest: result.completed > 0 ? (cpu * 1e6) / result.completed : NaN, rssStartMB: rss0 / 2 ** 20, rssEndMB: rssBytes(server.pid) / 2 ** 20 } };
}

export const costText = (c: ServerCost | undefined): string => (c && Number.isFinite(c.cpuUsPerRequest) ? `${Math.round(c.cpuUsPerRequest)}` : "—");
export const memoryText = (c: ServerCost | undefined): string => (c ? `${Math.round(c.rssStartMB)} → ${Math.round(c.rssEndMB)}` : "—");

// ---------------------------------------------------------------- report helpers

export function rate(r: LoadResult): number {
  return r.wallSeconds > 0 ? Math.round(r.completed / r.wallSeconds) : 0;
}
export const ms = (x: number): string => (Number.isFinite(x) ? x.toFixed(3) : "—");
export const ratio = (a: number, b: number): string => (b > 0 ? `${(a / b).toFixed(2)}×` : "—");
export const signedMs = (x: number): string => (Number.isFinite(x) ? `${x >= 0 ? "+" : "−"}${Math.abs(x).toFixed(3)} ms` : "—");

export function failedText(r: LoadResult): string {
  if (r.fatal) return "**did not run**";
  const n = r.failed + r.warmupFailed;
  if (n === 0) return "0";
  return `**${r.failed}**${r.warmupFailed ? ` (+${r.warmupFailed} warm-up)` : ""}`;
}

/** The Values column: every answer is checked by the load generator. */
export function valuesText(r: LoadResult): string {
  if (r.fatal || r.completed + r.wrong === 0) return "—";
  return r.wrong ? `**WRONG** (${r.wrong})` : "ok";
}

/** One line per problem of a cell (did not run, failures, wrong answers). */
export function cellProblems(label: string, r: LoadResult): string[] {
  const out: string[] = [];
  if (r.fatal) out.push(`- ${label}: did not run: ${r.fatal.split("\n")[0]}`);
  if (r.failed || r.warmupFailed) {
    out.push(`- ${label}: ${r.failed} failed (${r.wrong} of them wrong answers; +${r.warmupFailed} in warm-up), e.g. ${r.failureSamples.map((s) => `\`${s.replace(/\s+/g, " ")}\``).join(", ")}`);
  }
  return out;
}

export interface Environment {
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

/** The "Problems:" list under a results table: failed cells first, then notes; nothing when all went well. */
export function problemLines(details: readonly string[], notes: readonly string[]): string[] {
  if (!details.length && !notes.length) return [];
  return ["", "Problems:", ...details, ...notes.map((n) => `- ${n.replace(/\n/g, "\n  ")}`)];
}

export function environment(): Environment {
  return {
    cpu: cpuModel(),
    cores: os.cpus().length,
    os: `${os.type()} ${os.release()} ${os.arch()}`,
    node: process.version,
    ort: ortVersion(),
    started: new Date(),
    loadStart: os.loadavg(),
    loadEnd: [],
  };
}

/** The lines that open every results section: machine, versions, date, load average, timing. */
export function environmentLines(env: Environment, timing: string): string[] {
  const load = (l: number[]): string => l.map((x) => x.toFixed(2)).join(" / ");
  return [
    `Machine: ${env.cpu}, ${env.cores} cores (${env.os}) · Node ${env.node} · onnxruntime-node ${env.ort}`,
    "",
    `Run ${env.started.toISOString().slice(0, 16).replace("T", " ")} UTC: ${timing}; ` +
      `load average (1/5/15 min) ${load(env.loadStart)} at start, ${load(env.loadEnd)} at end.`,
  ];
}

/**
 * Replaces what lies between `<!-- bench:<key>:begin -->` and its end marker
 * in bench/README.md; when the markers are missing, appends them under
 * `heading`.
 */
export function writeReadmeSection(key: string, heading: string, markdown: string): void {
  const begin = `<!-- bench:${key}:begin -->`;
  const end = `<!-- bench:${key}:end -->`;
  const current = fs.existsSync(README) ? fs.readFileSync(README, "utf8") : "# Benchmarks\n";
  const from = current.indexOf(begin);
  const to = current.indexOf(end);
  const text = from >= 0 && to > from
    ? `${current.slice(0, from + begin.length)}\n${markdown}\n${current.slice(to)}`
    : `${current.trimEnd()}\n\n${heading}\n\n${begin}\n${markdown}\n${end}\n`;
  fs.writeFileSync(README, text);
  process.stderr.write(`\nwrote ${path.relative(ROOT, README)} (${key})\n`);
}

export function median(xs: readonly number[]): number {
  if (xs.length === 0) return NaN;
  const s = [...xs].sort((a, b) => a - b);
  const mid = s.length >> 1;
  return s.length % 2 ? s[mid]! : (s[mid - 1]! + s[mid]!) / 2;
}

export const sleep = (msec: number): Promise<void> => new Promise((r) => setTimeout(r, msec));

/** Runs main, exits with its status; an exception prints its stack and exits 1. */
export function runMain(main: () => Promise<number>): void {
  main().then(
    (code) => process.exit(code),
    (e: unknown) => {
      process.stderr.write(`${(e as Error).stack ?? String(e)}\n`);
      process.exit(1);
    },
  );
}
