/**
 * What metrics and statistics cost: throughput of `simple` over HTTP with
 * them on versus off (issue 6 target: under 3%).
 *
 *   npm run build && node dist/bench/metrics-overhead.js [--seconds 5] [--warmup 1] [--concurrency 8] [--rounds 3]
 *
 * Each cell runs the server in a fresh child process, so modes never share a
 * JIT or a heap; the rounds alternate the order of the modes to spread drift.
 * This process is the load generator (closed loops over keep-alive
 * connections, batch-1 JSON requests) and, in the "on" mode, the scraper.
 *
 * - off: no metrics frontend, and core's statistics recording replaced by
 *   no-ops (Triton cannot turn statistics off; we do it here to measure them).
 * - on:  statistics and the metrics frontend as `--allow-metrics` starts it
 *   (Triton's default families, CPU metrics polled every 1 s), with a scrape
 *   of /metrics plus /v2/models/simple/stats every second, as Prometheus
 *   would (more often than its usual 15 s, so the cost is an upper bound).
 *   The 3% target applies to this mode.
 * - all: "on" plus every optional family (`summary_latencies=true`,
 *   `histogram_latencies=true`), which observe each request.
 */
import { fork, type ChildProcess } from "node:child_process";
import fs from "node:fs/promises";
import http from "node:http";
import os from "node:os";
import path from "node:path";
import { performance } from "node:perf_hooks";
import { fileURLToPath } from "node:url";

type Mode = "off" | "on" | "all";
const MODES: readonly Mode[] = ["off", "on", "all"];

interface Options {
  seconds: number;
  warmup: number;
  concurrency: number;
  rounds: number;
}

interface Cell {
  mode: Mode;
  round: number;
  rps: number;
  p50: number;
  p99: number;
  failed: number;
  scrapes: number;
  /** Server CPU time per successful request, microseconds. */
  cpuPerRequestUs: number;
}

const HERE = path.dirname(fileURLToPath(import.meta.url));
const ROOT = path.resolve(HERE, "..", "..");

// ---------------------------------------------------------------------------
// Child: the server under test.

async function child(mode: Mode): Promise<void> {
  const { createServer } = await import("../src/index.js");
  const { HttpFrontend } = await import("../src/frontends/http/http-server.js");
  const { MetricsFrontend } = await import("../src/frontends/metrics/metrics-frontend.js");
  const { ModelStatistics } = await import("../src/core/observability/statistics.js");
  if (mode === "off") {
    ModelStatistics.prototype.recordSuccess = () => {};
    ModelStatistics.prototype.recordFailure = () => {};
    ModelStatistics.prototype.recordExecution = () => {};
  }
  const repo = await fs.mkdtemp(path.join(os.tmpdir(), "tritium-bench-"));
  await fs.cp(path.join(ROOT, "examples", "model_repository", "simple"), path.join(repo, "simple"), { recursive: true });
  const core = await createServer({ modelRepository: repo, quiet: true });
  const front = new HttpFrontend(core, { address: "127.0.0.1", port: 0 });
  const port = await front.listen();
  let metricsPort = 0;
  if (mode !== "off") {
    const optional = mode === "all";
    const metrics = new MetricsFrontend(core, {
      address: "127.0.0.1",
      port: 0,
      allowCpuMetrics: true,
      intervalMs: 1000,
      config: { summaryLatencies: optional, histogramLatencies: optional },
    });
    metricsPort = await metrics.listen();
  }
  process.send!({ port, metricsPort });
  // CPU time of the whole server process (main thread and instance workers) over the measured window.
  let mark = process.cpuUsage();
  process.on("message", async (m) => {
    if (m === "mark") mark = process.cpuUsage();
    if (m === "report") {
      const d = process.cpuUsage(mark);
      process.send!({ cpuUs: d.user + d.system });
    }
    if (m === "stop") {
      await core.stop();
      process.exit(0);
    }
  });
}

// ---------------------------------------------------------------------------
// Parent: load generator, scraper, table.

function body(): Buffer {
  const row = Array.from({ length: 16 }, (_, i) => i);
  return Buffer.from(
    JSON.stringify({
      inputs: [
        { name: "INPUT0", shape: [1, 16], datatype: "INT32", data: row },
        { name: "INPUT1", shape: [1, 16], datatype: "INT32", data: row },
      ],
    }),
  );
}

function request(agent: http.Agent, port: number, method: string, urlPath: string, payload?: Buffer): Promise<number> {
  return new Promise((resolve, reject) => {
    const req = http.request({ agent, host: "127.0.0.1", port, method, path: urlPath, headers: payload ? { "Content-Type": "application/json", "Content-Length": payload.byteLength } : {} }, (res) => {
      res.on("data", () => {});
      res.on("end", () => resolve(res.statusCode ?? 0));
      res.on("error", reject);
    });
    req.on("error", reject);
    req.end(payload);
  });
}

async function runCell(mode: Mode, round: number, o: Options): Promise<Cell> {
  const proc: ChildProcess = fork(fileURLToPath(import.meta.url), ["--child", mode], { stdio: ["ignore", "inherit", "inherit", "ipc"] });
  const { port, metricsPort } = await new Promise<{ port: number; metricsPort: number }>((resolve, reject) => {
    proc.once("message", (m) => resolve(m as { port: number; metricsPort: number }));
    proc.once("exit", (code) => reject(new Error(`server child exited with ${code}`)));
  });
  const agent = new http.Agent({ keepAlive: true, maxSockets: o.concurrency });
  const payload = body();
  const latencies: number[] = [];
  let ok = 0;
  let failed = 0;
  const loop = async (endAt: number, measure: boolean) => {
    while (performance.now() < endAt) {
      const t0 = performance.now();
      const status = await request(agent, port, "POST", "/v2/models/simple/infer", payload).catch(() => 0);
      if (!measure) continue;
      if (status === 200) {
        ok++;
        latencies.push(performance.now() - t0);
      } else failed++;
    }
  };
  const warmEnd = performance.now() + o.warmup * 1000;
  await Promise.all(Array.from({ length: o.concurrency }, () => loop(warmEnd, false)));

  let scrapes = 0;
  let scraping = true;
  const scraper = (async () => {
    if (mode === "off") return;
    const sAgent = new http.Agent({ keepAlive: true, maxSockets: 1 });
    while (scraping) {
      await new Promise((r) => setTimeout(r, 1000));
      if (!scraping) break;
      await request(sAgent, metricsPort, "GET", "/metrics");
      await request(sAgent, port, "GET", "/v2/models/simple/stats");
      scrapes++;
    }
    sAgent.destroy();
  })();
  proc.send("mark");
  const start = performance.now();
  await Promise.all(Array.from({ length: o.concurrency }, () => loop(start + o.seconds * 1000, true)));
  const wall = (performance.now() - start) / 1000;
  scraping = false;
  await scraper;
  const cpuUs = await new Promise<number>((resolve) => {
    proc.once("message", (m) => resolve((m as { cpuUs: number }).cpuUs));
    proc.send("report");
  });
  agent.destroy();
  proc.send("stop");
  await new Promise((r) => proc.once("exit", r));
  latencies.sort((a, b) => a - b);
  const pct = (p: number) => latencies[Math.min(latencies.length - 1, Math.max(0, Math.ceil((p / 100) * latencies.length) - 1))] ?? NaN;
  return { mode, round, rps: ok / wall, p50: pct(50), p99: pct(99), failed, scrapes, cpuPerRequestUs: cpuUs / Math.max(1, ok) };
}

/**
 * The request path's share, measured alone (steady even on a busy machine):
 * what one request costs core's statistics, the event publish, and the
 * optional families' observations, in nanoseconds.
 */
async function hotPath(): Promise<{ statistics: number; publish: number; observe: number; scrapeUs: number }> {
  const { ModelStatistics } = await import("../src/core/observability/statistics.js");
  const { requestChannel } = await import("../src/core/observability/events.js");
  const { InferenceMetrics } = await import("../src/frontends/metrics/inference-metrics.js");
  const { Registry } = await import("prom-client");
  const stats = new ModelStatistics();
  const mv = { name: "simple", version: 1, stats, pendingRequests: 0 };
  const event = (i: number) => ({
    model: "simple", version: "1", source: mv, id: undefined, success: true, reason: undefined, batchSize: 1,
    totalNs: 900_000 + (i % 5000) * 100, queueNs: 40_000 + (i % 300), computeInputNs: 30_000, computeInferNs: 200_000 + (i % 700), computeOutputNs: 35_000,
  });
  const time = (n: number, f: (i: number) => void) => {
    for (let i = 0; i < 20_000; i++) f(i);
    const t0 = process.hrtime.bigint();
    for (let i = 0; i < n; i++) f(i);
    return Number(process.hrtime.bigint() - t0) / n;
  };
  const statistics = time(500_000, (i) => {
    stats.recordSuccess(900_000 + i, 40_000, 1, 30_000, 200_000, 35_000);
    stats.recordExecution(1, 30_000, 200_000, 35_000, 0);
  });
  const publish = time(500_000, (i) => {
    if (requestChannel.hasSubscribers) requestChannel.publish(event(i));
  });
  const core = { modelVersions: () => [mv] } as unknown as ConstructorParameters<typeof InferenceMetrics>[0];
  const metrics = new InferenceMetrics(core, new Registry(), { counterLatencies: true, summaryLatencies: true, histogramLatencies: true, summaryQuantiles: [0.5, 0.9, 0.95, 0.99, 0.999] });
  metrics.refresh();
  const observe = time(100_000, (i) => requestChannel.publish(event(i)));
  const registry = new Registry();
  const scraped = new InferenceMetrics(core, registry, { counterLatencies: true, summaryLatencies: true, histogramLatencies: true, summaryQuantiles: [0.5, 0.9, 0.95, 0.99, 0.999] });
  for (let i = 0; i < 1000; i++) requestChannel.publish(event(i));
  const t0 = process.hrtime.bigint();
  for (let i = 0; i < 200; i++) {
    scraped.refresh();
    await registry.metrics();
  }
  const scrapeUs = Number(process.hrtime.bigint() - t0) / 200 / 1000;
  scraped.close();
  metrics.close();
  return { statistics, publish, observe, scrapeUs };
}

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  const m = Math.floor(s.length / 2);
  return s.length % 2 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
}

function arg(name: string, fallback: number): number {
  const i = process.argv.indexOf(`--${name}`);
  return i < 0 ? fallback : Number(process.argv[i + 1]);
}

async function main(): Promise<void> {
  const o: Options = { seconds: arg("seconds", 5), warmup: arg("warmup", 1), concurrency: arg("concurrency", 8), rounds: arg("rounds", 3) };
  const hot = await hotPath();
  const cells: Cell[] = [];
  for (let r = 1; r <= o.rounds; r++) {
    // Rotate the order each round so that drift in the machine's load spreads over the modes.
    const order = MODES.map((_, i) => MODES[(i + r - 1) % MODES.length]!);
    for (const mode of order) cells.push(await runCell(mode, r, o));
  }
  const cpuModel = os.cpus()[0]?.model ?? "unknown CPU";
  console.log(`\nmetrics + statistics overhead — simple, batch 1, JSON over HTTP/1.1 keep-alive`);
  console.log(`${cpuModel} × ${os.cpus().length}, load ${os.loadavg()[0]!.toFixed(2)}, Node ${process.version}, concurrency ${o.concurrency}, ${o.seconds} s per cell after ${o.warmup} s warm-up\n`);
  console.log("| round | mode | req/s | p50 ms | p99 ms | server CPU µs/req | failed | scrapes |");
  console.log("| ---: | --- | ---: | ---: | ---: | ---: | ---: | ---: |");
  for (const c of cells) {
    console.log(`| ${c.round} | ${c.mode} | ${c.rps.toFixed(0)} | ${c.p50.toFixed(2)} | ${c.p99.toFixed(2)} | ${c.cpuPerRequestUs.toFixed(0)} | ${c.failed} | ${c.scrapes} |`);
  }
  const rps = (m: Mode) => median(cells.filter((c) => c.mode === m).map((c) => c.rps));
  const off = rps("off");
  const cost = (m: Mode) => (((off - rps(m)) / off) * 100).toFixed(1);
  console.log(`\nmedian req/s: off ${off.toFixed(0)}, on ${rps("on").toFixed(0)} (cost ${cost("on")}%, target < 3%), all ${rps("all").toFixed(0)} (cost ${cost("all")}%)`);
  // On a shared machine throughput swings with other load; CPU per request is the steadier signal.
  const cpu = (m: Mode) => median(cells.filter((c) => c.mode === m).map((c) => c.cpuPerRequestUs));
  const cpuCost = (m: Mode) => (((cpu(m) - cpu("off")) / cpu("off")) * 100).toFixed(1);
  console.log(`median server CPU per request: off ${cpu("off").toFixed(0)} µs, on ${cpu("on").toFixed(0)} µs (+${cpuCost("on")}%), all ${cpu("all").toFixed(0)} µs (+${cpuCost("all")}%)`);
  const share = (ns: number) => ((ns / 1000 / cpu("off")) * 100).toFixed(3);
  console.log(
    `request path alone: statistics ${hot.statistics.toFixed(0)} ns + event check ${hot.publish.toFixed(0)} ns = ${share(hot.statistics + hot.publish)}% of a request (on); ` +
      `summaries + histograms add ${(hot.observe / 1000).toFixed(1)} µs = ${share(hot.observe)}% (all); ` +
      `one scrape of one model with every family: ${hot.scrapeUs.toFixed(0)} µs`,
  );
}

if (process.argv[2] === "--child") {
  void child(process.argv[3] as Mode);
} else {
  main().catch((e) => {
    console.error(e);
    process.exit(1);
  });
}
