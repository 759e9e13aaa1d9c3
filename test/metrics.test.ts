import assert from "node:assert/strict";
import fs from "node:fs/promises";
import path from "node:path";
import { after, before, describe, it } from "node:test";
import { makeTensor } from "../src/core/tensors/tensor-values.js";
import { MetricsFrontend, type MetricsFrontendOptions } from "../src/frontends/metrics/metrics-frontend.js";
import { parseMetricsConfig } from "../src/frontends/metrics/metrics-config.js";
import { parseMemInfo, parseProcStat } from "../src/frontends/metrics/cpu-metrics.js";
import type { CreateServerOptions } from "../src/index.js";
import { EXAMPLES, getJson, httpRequest, postJson, startServer, tempRepository, type TestServer } from "./helpers.js";

// ---------------------------------------------------------------------------
// Helpers

interface MetricsServer extends TestServer {
  metricsUrl: string;
  metrics: MetricsFrontend;
}

/** core + HTTP (the startServer pattern) + a MetricsFrontend on an ephemeral port. */
async function startMetricsServer(
  options: Partial<CreateServerOptions> & { modelRepository: string | string[] },
  metricsOptions: MetricsFrontendOptions = {},
): Promise<MetricsServer> {
  const s = await startServer(options);
  const metrics = new MetricsFrontend(s.core, { allowCpuMetrics: false, ...metricsOptions, address: "127.0.0.1", port: 0 });
  const port = await metrics.listen();
  return {
    ...s,
    metrics,
    metricsUrl: `http://127.0.0.1:${port}/metrics`,
    async close() {
      await metrics.close();
      await s.close();
    },
  };
}

/** A parsed exposition: HELP and TYPE per family, and every sample by `name{k="v",…}` with sorted labels. */
interface Scrape {
  help: Map<string, string>;
  type: Map<string, string>;
  samples: Map<string, number>;
  /** The label names of every sample of a metric name. */
  labelSets(name: string): string[][];
  get(name: string, labels?: Record<string, string>): number | undefined;
  names(): Set<string>;
}

function parseExposition(text: string): Scrape {
  const help = new Map<string, string>();
  const type = new Map<string, string>();
  const samples = new Map<string, number>();
  const labelsOf = new Map<string, string[][]>();
  for (const line of text.split("\n")) {
    if (line === "") continue;
    let m = /^# HELP (\S+) (.*)$/.exec(line);
    if (m) {
      help.set(m[1]!, m[2]!);
      continue;
    }
    m = /^# TYPE (\S+) (\S+)$/.exec(line);
    if (m) {
      type.set(m[1]!, m[2]!);
      continue;
    }
    m = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? (\S+)$/.exec(line);
    assert.ok(m, `not an exposition line: ${line}`);
    const labels = [...(m[2] ?? "").matchAll(/([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"/g)].map((x) => [x[1]!, x[2]!] as const);
    samples.set(sampleKey(m[1]!, Object.fromEntries(labels)), Number(m[3]));
    const sets = labelsOf.get(m[1]!) ?? [];
    sets.push(labels.map(([k]) => k).sort());
    labelsOf.set(m[1]!, sets);
  }
  return {
    help,
    type,
    samples,
    labelSets: (name) => labelsOf.get(name) ?? [],
    get: (name, labels = {}) => samples.get(sampleKey(name, labels)),
    names: () => new Set(labelsOf.keys()),
  };
}

function sampleKey(name: string, labels: Record<string, string>): string {
  const l = Object.entries(labels)
    .sort(([a], [b]) => a.localeCompare(b))
    .map(([k, v]) => `${k}="${v}"`)
    .join(",");
  return `${name}{${l}}`;
}

async function scrape(s: MetricsServer): Promise<Scrape> {
  const res = await fetch(s.metricsUrl);
  assert.equal(res.status, 200);
  assert.equal(res.headers.get("content-type"), "text/plain; charset=utf-8");
  return parseExposition(await res.text());
}

function simpleBody(batch: number): unknown {
  const rows = (v: number) => Array.from({ length: batch }, () => new Array(16).fill(v));
  return {
    inputs: [
      { name: "INPUT0", shape: [batch, 16], datatype: "INT32", data: rows(2) },
      { name: "INPUT1", shape: [batch, 16], datatype: "INT32", data: rows(1) },
    ],
  };
}

const badShape = {
  inputs: [
    { name: "INPUT0", shape: [1, 15], datatype: "INT32", data: new Array(15).fill(0) },
    { name: "INPUT1", shape: [1, 16], datatype: "INT32", data: new Array(16).fill(0) },
  ],
};

async function simpleRepository(extraConfig = ""): Promise<string> {
  const repo = await tempRepository({ simple: path.join(EXAMPLES, "simple") });
  if (extraConfig) await fs.appendFile(path.join(repo, "simple", "config.pbtxt"), `\n${extraConfig}\n`);
  return repo;
}

async function infer(s: TestServer, batch: number): Promise<void> {
  const res = await postJson(`${s.url}/v2/models/simple/infer`, simpleBody(batch));
  assert.equal(res.status, 200, JSON.stringify(res.json));
}

/** An in-process request whose signal is already aborted: fails CANCELLED in the scheduler. */
async function cancelled(s: TestServer): Promise<void> {
  const ac = new AbortController();
  ac.abort();
  const inputs = [makeTensor("INPUT0", "INT32", [1, 16], new Int32Array(16)), makeTensor("INPUT1", "INT32", [1, 16], new Int32Array(16))];
  await assert.rejects(s.core.infer({ model_name: "simple", signal: ac.signal, inputs }));
}

const SIMPLE = { model: "simple", version: "1" };
const REASONS = ["REJECTED", "CANCELED", "BACKEND", "OTHER"];

/** Triton's families, HELP texts and types (core/src/metrics.cc), facts this test pins. */
const TRITON_FAMILIES: [string, string, string][] = [
  ["nv_inference_request_success", "counter", "Number of successful inference requests, all batch sizes"],
  ["nv_inference_request_failure", "counter", "Number of failed inference requests, all batch sizes"],
  ["nv_inference_count", "counter", "Number of inferences performed (does not include cached requests)"],
  ["nv_inference_exec_count", "counter", "Number of model executions performed (does not include cached requests)"],
  ["nv_inference_request_duration_us", "counter", "Cumulative inference request duration in microseconds (includes cached requests)"],
  ["nv_inference_queue_duration_us", "counter", "Cumulative inference queuing duration in microseconds (includes cached requests)"],
  ["nv_inference_compute_input_duration_us", "counter", "Cumulative compute input duration in microseconds (does not include cached requests)"],
  ["nv_inference_compute_infer_duration_us", "counter", "Cumulative compute inference duration in microseconds (does not include cached requests)"],
  ["nv_inference_compute_output_duration_us", "counter", "Cumulative inference compute output duration in microseconds (does not include cached requests)"],
  ["nv_inference_pending_request_count", "gauge", "Instantaneous number of pending requests awaiting execution per-model."],
];
const LATENCY_COUNTERS = TRITON_FAMILIES.slice(4, 9).map(([n]) => n);

const SUMMARIES: [string, string][] = [
  ["nv_inference_request_summary_us", "Summary of inference request duration in microseconds (includes cached requests)"],
  ["nv_inference_queue_summary_us", "Summary of inference queuing duration in microseconds (includes cached requests)"],
  ["nv_inference_compute_input_summary_us", "Cumulative compute input duration in microseconds (does not include cached requests)"],
  ["nv_inference_compute_infer_summary_us", "Cumulative compute inference duration in microseconds (does not include cached requests)"],
  ["nv_inference_compute_output_summary_us", "Cumulative inference compute output duration in microseconds (does not include cached requests)"],
];

const HISTOGRAMS = [
  "nv_inference_first_response_histogram_ms",
  "nv_inference_request_duration_histogram_us",
  "nv_inference_queue_duration_histogram_us",
  "nv_inference_compute_input_duration_histogram_us",
  "nv_inference_compute_infer_duration_histogram_us",
  "nv_inference_compute_output_duration_histogram_us",
];

// ---------------------------------------------------------------------------

describe("metrics endpoint with Triton's default families", () => {
  let s: MetricsServer;
  before(async () => {
    s = await startMetricsServer({ modelRepository: await simpleRepository() });
  });
  after(async () => {
    await s.close();
  });

  it("serves Triton's families with their exact HELP texts and types, at zero for a loaded model before traffic", async () => {
    const m = await scrape(s);
    for (const [name, type, help] of TRITON_FAMILIES) {
      assert.equal(m.type.get(name), type, name);
      assert.equal(m.help.get(name), help, name);
    }
    for (const [name] of TRITON_FAMILIES) {
      if (name === "nv_inference_request_failure") continue;
      assert.equal(m.get(name, SIMPLE), 0, name);
      assert.deepEqual(m.labelSets(name), [["model", "version"]], `${name} label set`);
    }
    for (const reason of REASONS) assert.equal(m.get("nv_inference_request_failure", { ...SIMPLE, reason }), 0);
    assert.deepEqual(m.labelSets("nv_inference_request_failure"), REASONS.map(() => ["model", "reason", "version"]));
    assert.ok(![...m.names()].some((n) => n.startsWith("nv_gpu_") || n.includes("summary") || n.includes("histogram")));
  });

  it("counts known traffic exactly and agrees with /v2/models/simple/stats", async () => {
    for (let i = 0; i < 3; i++) await infer(s, 1);
    await infer(s, 4);
    // Refused by validation: Triton counts neither a success nor a failure.
    for (let i = 0; i < 2; i++) assert.equal((await postJson(`${s.url}/v2/models/simple/infer`, badShape)).status, 400);
    await cancelled(s);

    const m = await scrape(s);
    assert.equal(m.get("nv_inference_request_success", SIMPLE), 4);
    assert.equal(m.get("nv_inference_count", SIMPLE), 7);
    assert.equal(m.get("nv_inference_exec_count", SIMPLE), 4);
    assert.equal(m.get("nv_inference_pending_request_count", SIMPLE), 0);
    assert.deepEqual(
      REASONS.map((reason) => m.get("nv_inference_request_failure", { ...SIMPLE, reason })),
      [0, 1, 0, 0],
    );

    const st = (await getJson(`${s.url}/v2/models/simple/stats`)).json.model_stats[0];
    assert.equal(st.inference_stats.success.count, m.get("nv_inference_request_success", SIMPLE));
    assert.equal(st.inference_stats.fail.count, 1);
    assert.equal(st.inference_count, m.get("nv_inference_count", SIMPLE));
    assert.equal(st.execution_count, m.get("nv_inference_exec_count", SIMPLE));
    assert.deepEqual(
      st.batch_stats.map((b: { batch_size: number; compute_infer: { count: number } }) => [b.batch_size, b.compute_infer.count]),
      [
        [1, 3],
        [4, 1],
      ],
    );
    const us = (ns: number) => Math.floor(ns / 1000);
    assert.equal(m.get("nv_inference_request_duration_us", SIMPLE), us(st.inference_stats.success.ns));
    assert.equal(m.get("nv_inference_queue_duration_us", SIMPLE), us(st.inference_stats.queue.ns));
    assert.equal(m.get("nv_inference_compute_input_duration_us", SIMPLE), us(st.inference_stats.compute_input.ns));
    assert.equal(m.get("nv_inference_compute_infer_duration_us", SIMPLE), us(st.inference_stats.compute_infer.ns));
    assert.equal(m.get("nv_inference_compute_output_duration_us", SIMPLE), us(st.inference_stats.compute_output.ns));
    assert.ok(m.get("nv_inference_compute_infer_duration_us", SIMPLE)! > 0);
  });

  it("answers only GET /metrics: other methods 405, other paths 400, as tritonserver", async () => {
    assert.equal((await httpRequest(s.metricsUrl + "/")).status, 200);
    assert.equal((await httpRequest(s.metricsUrl + "?x=1")).status, 200);
    const post = await httpRequest(s.metricsUrl, { method: "POST" });
    assert.equal(post.status, 405);
    assert.deepEqual(post.json, { error: "Method Not Allowed" });
    assert.equal((await httpRequest(s.metricsUrl.replace("/metrics", "/v2/metrics"))).status, 400);
  });
});

describe("metrics for models that load and unload", () => {
  let s: MetricsServer;
  before(async () => {
    s = await startMetricsServer({ modelRepository: await simpleRepository(), modelControlMode: "explicit", startupModels: ["simple"] });
  });
  after(async () => {
    await s.close();
  });

  it("drops a model's series when it unloads and restarts them from zero when it loads again", async () => {
    await infer(s, 2);
    assert.equal((await scrape(s)).get("nv_inference_count", SIMPLE), 2);
    await s.core.unloadModel("simple");
    const gone = await scrape(s);
    assert.equal(gone.labelSets("nv_inference_count").length, 0);
    assert.equal(gone.help.get("nv_inference_count"), TRITON_FAMILIES[2]![2], "the family stays, without samples");
    await s.core.loadModel("simple");
    const back = await scrape(s);
    assert.equal(back.get("nv_inference_count", SIMPLE), 0);
    await infer(s, 1);
    assert.equal((await scrape(s)).get("nv_inference_count", SIMPLE), 1);
  });
});

describe("nv_inference_pending_request_count", () => {
  let s: MetricsServer;
  before(async () => {
    // Two requests never reach the preferred batch of 4, so they wait out the queue delay.
    s = await startMetricsServer({ modelRepository: await simpleRepository("dynamic_batching { preferred_batch_size: [ 4 ] max_queue_delay_microseconds: 1500000 }") });
  });
  after(async () => {
    await s.close();
  });

  it("counts requests waiting in the scheduler, and drops to 0 once they execute", async () => {
    const inflight = [postJson(`${s.url}/v2/models/simple/infer`, simpleBody(1)), postJson(`${s.url}/v2/models/simple/infer`, simpleBody(1))];
    let pending = 0;
    for (let i = 0; i < 50 && pending < 2; i++) {
      await new Promise((r) => setTimeout(r, 20));
      pending = (await scrape(s)).get("nv_inference_pending_request_count", SIMPLE)!;
    }
    assert.equal(pending, 2);
    assert.deepEqual((await Promise.all(inflight)).map((r) => r.status), [200, 200]);
    const m = await scrape(s);
    assert.equal(m.get("nv_inference_pending_request_count", SIMPLE), 0);
    assert.equal(m.get("nv_inference_exec_count", SIMPLE), 1);
    assert.equal(m.get("nv_inference_count", SIMPLE), 2);
  });
});

describe("--metrics-config", () => {
  it("counter_latencies=false drops the latency counters and keeps the counts", async () => {
    const s = await startMetricsServer({ modelRepository: await simpleRepository() }, { config: parseMetricsConfig(["counter_latencies=false"]) });
    try {
      await infer(s, 1);
      const m = await scrape(s);
      for (const name of LATENCY_COUNTERS) assert.equal(m.type.get(name), undefined, name);
      assert.equal(m.get("nv_inference_request_success", SIMPLE), 1);
      assert.equal(m.get("nv_inference_count", SIMPLE), 1);
    } finally {
      await s.close();
    }
  });

  it("summary_latencies=true adds Triton's summaries, whose counts and sums follow the counters", async () => {
    const s = await startMetricsServer({ modelRepository: await simpleRepository() }, { config: parseMetricsConfig(["summary_latencies=true"]) });
    try {
      for (let i = 0; i < 5; i++) await infer(s, 1);
      const m = await scrape(s);
      for (const [i, [name, help]] of SUMMARIES.entries()) {
        assert.equal(m.type.get(name), "summary", name);
        assert.equal(m.help.get(name), help, name);
        assert.equal(m.get(`${name}_count`, SIMPLE), 5, `${name}_count`);
        for (const q of ["0.5", "0.9", "0.95", "0.99", "0.999"]) assert.ok(m.get(name, { ...SIMPLE, quantile: q })! >= 0, `${name} quantile ${q}`);
        // Summaries add each request's whole microseconds; the counter rounds the total: they differ by < 1 µs per request.
        const counter = m.get(LATENCY_COUNTERS[i]!, SIMPLE)!;
        const sum = m.get(`${name}_sum`, SIMPLE)!;
        assert.ok(sum <= counter && counter - sum <= 5, `${name}_sum ${sum} vs counter ${counter}`);
      }
    } finally {
      await s.close();
    }
  });

  it("summary_quantiles picks the quantiles", async () => {
    const s = await startMetricsServer({ modelRepository: await simpleRepository() }, { config: parseMetricsConfig(["summary_latencies=true", 'summary_quantiles="0.5:0.05,0.99:0.001"']) });
    try {
      await infer(s, 1);
      const m = await scrape(s);
      const quantiles = [...m.samples.keys()].filter((k) => k.startsWith("nv_inference_queue_summary_us{")).map((k) => /quantile="([^"]+)"/.exec(k)?.[1]);
      assert.deepEqual(quantiles, ["0.5", "0.99"]);
    } finally {
      await s.close();
    }
  });

  it("histogram_latencies=true adds a histogram per phase and the first-response histogram, per server in the process", async () => {
    const cfg = { config: parseMetricsConfig(["histogram_latencies=true"]) };
    const a = await startMetricsServer({ modelRepository: await simpleRepository() }, cfg);
    const b = await startMetricsServer({ modelRepository: await simpleRepository() }, cfg);
    try {
      const zero = await scrape(a);
      for (const name of HISTOGRAMS) {
        assert.equal(zero.type.get(name), "histogram", name);
        assert.equal(zero.get(`${name}_count`, SIMPLE), 0, `${name} exists at zero before traffic`);
      }
      assert.equal(zero.help.get("nv_inference_first_response_histogram_ms"), "Duration from request to first response in milliseconds");
      assert.deepEqual(
        [...zero.samples.keys()].filter((k) => k.startsWith("nv_inference_first_response_histogram_ms_bucket")).map((k) => /le="([^"]+)"/.exec(k)?.[1]),
        ["100", "500", "2000", "5000", "+Inf"],
      );
      for (let i = 0; i < 3; i++) await infer(a, 1);
      await infer(a, 2);
      const m = await scrape(a);
      for (const name of HISTOGRAMS) {
        assert.equal(m.get(`${name}_count`, SIMPLE), 4, `${name}_count`);
        assert.equal(m.get(`${name}_bucket`, { ...SIMPLE, le: "+Inf" }), 4);
      }
      assert.equal(m.get("nv_inference_request_duration_histogram_us_sum", SIMPLE)! <= m.get("nv_inference_request_duration_us", SIMPLE)!, true);
      // Server b shares the process (and the diagnostics channel) but saw no traffic.
      const other = await scrape(b);
      for (const name of HISTOGRAMS) assert.equal(other.get(`${name}_count`, SIMPLE), 0, `${name} of another server`);
    } finally {
      await a.close();
      await b.close();
    }
  });

  it("rejects malformed settings", () => {
    assert.throws(() => parseMetricsConfig(["summary_latencies"]), /expects <key>=<value>/);
    assert.throws(() => parseMetricsConfig(["histogram_latencies=yes"]), /true or false/);
    assert.throws(() => parseMetricsConfig(["summary_quantiles=0.5"]), /summary_quantiles/);
    const warnings: string[] = [];
    parseMetricsConfig(["nope=1"], (w) => warnings.push(w));
    assert.equal(warnings.length, 1);
  });
});

describe("CPU metrics", () => {
  it("reports nv_cpu_utilization and memory from /proc, refreshed every --metrics-interval-ms", { skip: process.platform !== "linux" }, async () => {
    const s = await startMetricsServer({ modelRepository: await simpleRepository() }, { allowCpuMetrics: true, intervalMs: 50 });
    try {
      await new Promise((r) => setTimeout(r, 150));
      const m = await scrape(s);
      assert.equal(m.help.get("nv_cpu_utilization"), "CPU utilization rate [0.0 - 1.0]");
      assert.equal(m.help.get("nv_cpu_memory_total_bytes"), "CPU total memory (RAM), in bytes");
      assert.equal(m.help.get("nv_cpu_memory_used_bytes"), "CPU used memory (RAM), in bytes");
      for (const n of ["nv_cpu_utilization", "nv_cpu_memory_total_bytes", "nv_cpu_memory_used_bytes"]) {
        assert.equal(m.type.get(n), "gauge");
        assert.deepEqual(m.labelSets(n), [[]], `${n} has no labels`);
      }
      const util = m.get("nv_cpu_utilization")!;
      assert.ok(util >= 0 && util <= 1, `utilization ${util}`);
      const total = m.get("nv_cpu_memory_total_bytes")!;
      const used = m.get("nv_cpu_memory_used_bytes")!;
      assert.ok(total > 0 && used > 0 && used <= total);
      assert.ok(![...m.names()].some((n) => n.startsWith("nv_gpu_")), "no GPU metrics without a GPU");
    } finally {
      await s.close();
    }
  });

  it("are absent with --allow-cpu-metrics=false", async () => {
    const s = await startMetricsServer({ modelRepository: await simpleRepository() }, { allowCpuMetrics: false });
    try {
      assert.ok(![...(await scrape(s)).names()].some((n) => n.startsWith("nv_cpu_")));
    } finally {
      await s.close();
    }
  });

  it("parses /proc/stat and /proc/meminfo as Triton does", () => {
    assert.deepEqual(parseProcStat("cpu  100 5 50 800 20 3 2 1 7 0\ncpu0 1 2 3\n"), { busy: 161, total: 981 });
    assert.deepEqual(parseMemInfo("MemTotal:       1000 kB\nMemFree:         100 kB\nMemAvailable:    400 kB\n"), { total: 1024000, used: 614400 });
  });
});
