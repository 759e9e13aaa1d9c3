/**
 * Ensemble overhead (issue 11): an ensemble of two `simple` steps
 * ((a+b)+(a-b) = 2a, (a+b)-(a-b) = 2b) against calling `simple` directly,
 * one request at a time, in one run:
 *   - in-process (`server.infer`): the ensemble's own cost per step is
 *     (p50 ensemble − 2 × p50 simple) / 2 (target: under 0.5 ms);
 *   - over HTTP (JSON, keep-alive, the HTTP frontend in this process): the
 *     ensemble as one request against a client making the two calls itself.
 * Every answer is checked.
 *
 *   npm run build && node dist/bench/ensemble-bench.js [--requests=3000] [--write]
 */
import fs from "node:fs";
import http from "node:http";
import os from "node:os";
import path from "node:path";
import { HttpFrontend, Logger, createServer, makeTensor, tensorValues } from "../src/index.js";
import { REPOSITORY, environment, environmentLines, ms, option, positiveNumber, runMain, writeReadmeSection } from "./harness.js";

const REQUESTS = positiveNumber(option("requests"), 3000, "--requests");
const WRITE = process.argv.includes("--write");

const ENSEMBLE = `
name: "twice"
platform: "ensemble"
max_batch_size: 8
input [ { name: "A" data_type: TYPE_INT32 dims: [ 16 ] }, { name: "B" data_type: TYPE_INT32 dims: [ 16 ] } ]
output [ { name: "TWO_A" data_type: TYPE_INT32 dims: [ 16 ] }, { name: "TWO_B" data_type: TYPE_INT32 dims: [ 16 ] } ]
ensemble_scheduling { step [
  { model_name: "simple" input_map { key: "INPUT0" value: "A" } input_map { key: "INPUT1" value: "B" }
    output_map { key: "OUTPUT0" value: "SUM" } output_map { key: "OUTPUT1" value: "DIFF" } },
  { model_name: "simple" input_map { key: "INPUT0" value: "SUM" } input_map { key: "INPUT1" value: "DIFF" }
    output_map { key: "OUTPUT0" value: "TWO_A" } output_map { key: "OUTPUT1" value: "TWO_B" } }
] }
`;

const a = Int32Array.from({ length: 16 }, (_, i) => i + 1);
const b = Int32Array.from({ length: 16 }, (_, i) => 100 - i);

/** p50 and p99 in ms of `REQUESTS` sequential calls of `call`, after a warm-up of a tenth as many. */
async function latency(call: () => Promise<void>): Promise<{ p50: number; p99: number }> {
  for (let i = 0; i < REQUESTS / 10; i++) await call();
  const times: number[] = [];
  for (let i = 0; i < REQUESTS; i++) {
    const t0 = process.hrtime.bigint();
    await call();
    times.push(Number(process.hrtime.bigint() - t0) / 1e6);
  }
  times.sort((x, y) => x - y);
  return { p50: times[Math.floor(times.length / 2)]!, p99: times[Math.floor(times.length * 0.99)]! };
}

function check(ok: boolean, what: string): void {
  if (!ok) throw new Error(`wrong answer: ${what}`);
}

const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });

function post(port: number, model: string, body: string): Promise<{ outputs: { name: string; data: number[] }[] }> {
  return new Promise((resolve, reject) => {
    const req = http.request({ host: "127.0.0.1", port, method: "POST", path: `/v2/models/${model}/infer`, agent, headers: { "Content-Type": "application/json" } }, (res) => {
      const chunks: Buffer[] = [];
      res.on("data", (c: Buffer) => chunks.push(c));
      res.on("end", () => (res.statusCode === 200 ? resolve(JSON.parse(Buffer.concat(chunks).toString())) : reject(new Error(`${model}: HTTP ${res.statusCode}: ${Buffer.concat(chunks)}`))));
    });
    req.on("error", reject);
    req.end(body);
  });
}

const json = (names: [string, string], x: Int32Array, y: Int32Array) =>
  JSON.stringify({ inputs: [
    { name: names[0], datatype: "INT32", shape: [1, 16], data: Array.from(x) },
    { name: names[1], datatype: "INT32", shape: [1, 16], data: Array.from(y) },
  ] });

async function main(): Promise<number> {
  const env = environment();
  const repo = fs.mkdtempSync(path.join(os.tmpdir(), "tritium-ensemble-bench-"));
  fs.cpSync(path.join(REPOSITORY, "simple"), path.join(repo, "simple"), { recursive: true });
  fs.mkdirSync(path.join(repo, "twice", "1"), { recursive: true });
  fs.writeFileSync(path.join(repo, "twice", "config.pbtxt"), ENSEMBLE);
  const server = await createServer({ modelRepository: repo, logger: new Logger({ info: false, warning: false, error: true }) });
  const frontend = new HttpFrontend(server, { address: "127.0.0.1", port: 0 });
  const port = await frontend.listen();
  const rows: string[] = [];
  let overhead = NaN;
  try {
    const direct = await latency(async () => {
      const r = await server.infer({ model_name: "simple", inputs: [makeTensor("INPUT0", "INT32", [1, 16], a), makeTensor("INPUT1", "INT32", [1, 16], b)] });
      check((tensorValues(r.outputs[0]!) as Int32Array)[0] === a[0]! + b[0]!, "simple");
    });
    const ensemble = await latency(async () => {
      const r = await server.infer({ model_name: "twice", inputs: [makeTensor("A", "INT32", [1, 16], a), makeTensor("B", "INT32", [1, 16], b)] });
      check((tensorValues(r.outputs[0]!) as Int32Array)[5] === 2 * a[5]!, "twice");
    });
    overhead = (ensemble.p50 - 2 * direct.p50) / 2;
    const directBody = json(["INPUT0", "INPUT1"], a, b);
    const httpDirect = await latency(async () => {
      const r = await post(port, "simple", directBody);
      check(r.outputs[0]!.data[0] === a[0]! + b[0]!, "HTTP simple");
    });
    const byHand = await latency(async () => {
      const first = await post(port, "simple", directBody);
      const second = await post(port, "simple", json(["INPUT0", "INPUT1"], Int32Array.from(first.outputs[0]!.data), Int32Array.from(first.outputs[1]!.data)));
      check(second.outputs[0]!.data[5] === 2 * a[5]!, "HTTP by hand");
    });
    const ensembleBody = json(["A", "B"], a, b);
    const httpEnsemble = await latency(async () => {
      const r = await post(port, "twice", ensembleBody);
      check(r.outputs[0]!.data[5] === 2 * a[5]!, "HTTP twice");
    });
    rows.push(`| in-process | \`simple\` once | ${ms(direct.p50)} | ${ms(direct.p99)} | |`);
    rows.push(`| in-process | ensemble \`twice\` (2 steps of \`simple\`) | ${ms(ensemble.p50)} | ${ms(ensemble.p99)} | ${ms(overhead)} ms per step over calling \`simple\` twice |`);
    rows.push(`| HTTP JSON | \`simple\` once | ${ms(httpDirect.p50)} | ${ms(httpDirect.p99)} | |`);
    rows.push(`| HTTP JSON | the client calls \`simple\` twice (the second on the first's outputs) | ${ms(byHand.p50)} | ${ms(byHand.p99)} | |`);
    rows.push(`| HTTP JSON | ensemble \`twice\` | ${ms(httpEnsemble.p50)} | ${ms(httpEnsemble.p99)} | ${(byHand.p50 / httpEnsemble.p50).toFixed(2)}× faster than calling by hand |`);
  } finally {
    const closing = frontend.close();
    await server.stop();
    frontend.closeAllConnections();
    await closing;
    agent.destroy();
    fs.rmSync(repo, { recursive: true, force: true });
  }
  env.loadEnd = os.loadavg();
  const out = [
    ...environmentLines(env, `${REQUESTS} sequential requests per row after ${REQUESTS / 10} to warm up`),
    "",
    "| Path | Calls | p50 ms | p99 ms | |",
    "|---|---|--:|--:|---|",
    ...rows,
    "",
    `Target: the ensemble's own cost under 0.5 ms per step at p50: ${ms(overhead)} ms: ${overhead < 0.5 ? "met" : "**missed**"}`,
  ].join("\n");
  process.stdout.write(`\n${out}\n`);
  if (WRITE) writeReadmeSection("ensemble", "### Ensemble overhead", out);
  return 0;
}

runMain(main);
