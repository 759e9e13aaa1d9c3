import assert from "node:assert/strict";
import diagnostics_channel from "node:diagnostics_channel";
import fs from "node:fs/promises";
import path from "node:path";
import { after, before, describe, it } from "node:test";
import type { Backend, BackendInstance } from "../src/core/backend.js";
import type { BatchRequest, BatchResult } from "../src/core/requests/inference.js";
import { makeTensor } from "../src/core/tensors/tensor-values.js";
import { MetricsFrontend } from "../src/frontends/metrics/metrics-frontend.js";
import {
  EXECUTION_CHANNEL,
  REQUEST_CHANNEL,
  type InferenceRequestEvent,
  type ModelExecutionEvent,
} from "../src/core/observability/events.js";
import { EXAMPLES, getJson, postJson, startServer, tempRepository, type TestServer } from "./helpers.js";

/** A request for `simple` of `batch` rows; INPUT0 = row index, INPUT1 = 1. */
function simpleBody(batch: number, id?: string): unknown {
  const rows = (f: (r: number) => number) => Array.from({ length: batch }, (_, r) => Array.from({ length: 16 }, () => f(r)));
  return {
    ...(id ? { id } : {}),
    inputs: [
      { name: "INPUT0", shape: [batch, 16], datatype: "INT32", data: rows((r) => r) },
      { name: "INPUT1", shape: [batch, 16], datatype: "INT32", data: rows(() => 1) },
    ],
  };
}

/** Same, but INPUT0 has 15 columns: refused by validation (400). */
const badShape = {
  inputs: [
    { name: "INPUT0", shape: [1, 15], datatype: "INT32", data: new Array(15).fill(0) },
    { name: "INPUT1", shape: [1, 16], datatype: "INT32", data: new Array(16).fill(0) },
  ],
};

/** A repository with only `simple`, optionally with extra config text. */
async function simpleRepository(extraConfig = ""): Promise<string> {
  const repo = await tempRepository({ simple: path.join(EXAMPLES, "simple") });
  if (extraConfig) await fs.appendFile(path.join(repo, "simple", "config.pbtxt"), `\n${extraConfig}\n`);
  return repo;
}

describe("statistics extension over HTTP", () => {
  let s: TestServer;
  before(async () => {
    s = await startServer({ modelRepository: await simpleRepository() });
  });
  after(async () => {
    await s.close();
  });

  it("counts requests, inferences, executions and batch sizes of known traffic to simple", async () => {
    const t0 = Date.now();
    for (let i = 0; i < 3; i++) assert.equal((await postJson(`${s.url}/v2/models/simple/infer`, simpleBody(1))).status, 200);
    for (let i = 0; i < 2; i++) assert.equal((await postJson(`${s.url}/v2/models/simple/infer`, simpleBody(2))).status, 200);
    // Refused by validation before scheduling: Triton does not count these.
    assert.equal((await postJson(`${s.url}/v2/models/simple/infer`, badShape)).status, 400);

    const res = await getJson(`${s.url}/v2/models/simple/stats`);
    assert.equal(res.status, 200);
    const [st] = res.json.model_stats;
    assert.deepEqual(Object.keys(st), ["name", "version", "last_inference", "inference_count", "execution_count", "inference_stats", "response_stats", "batch_stats", "memory_usage"]);
    assert.equal(st.name, "simple");
    assert.equal(st.version, "1");
    assert.ok(st.last_inference >= t0 && st.last_inference <= Date.now(), `last_inference ${st.last_inference}`);
    assert.equal(st.inference_count, 3 * 1 + 2 * 2);
    assert.equal(st.execution_count, 5);

    const is = st.inference_stats;
    assert.deepEqual(Object.keys(is), ["success", "fail", "queue", "compute_input", "compute_infer", "compute_output", "cache_hit", "cache_miss"]);
    assert.equal(is.success.count, 5);
    assert.deepEqual(is.fail, { count: 0, ns: 0 });
    for (const k of ["queue", "compute_input", "compute_infer", "compute_output"]) {
      assert.equal(is[k].count, 5, `${k}.count counts successful requests`);
      assert.ok(Number.isInteger(is[k].ns) && is[k].ns > 0, `${k}.ns = ${is[k].ns}`);
    }
    assert.deepEqual(is.cache_hit, { count: 0, ns: 0 });
    assert.deepEqual(is.cache_miss, { count: 0, ns: 0 });
    // Every request's end-to-end time contains its queue time and its execution.
    assert.ok(is.success.ns >= is.queue.ns + is.compute_input.ns + is.compute_infer.ns + is.compute_output.ns);

    assert.deepEqual(st.batch_stats.map((b: { batch_size: number }) => b.batch_size), [1, 2]);
    for (const [i, n] of [3, 2].entries()) {
      const b = st.batch_stats[i];
      assert.deepEqual(Object.keys(b), ["batch_size", "compute_input", "compute_infer", "compute_output"]);
      for (const k of ["compute_input", "compute_infer", "compute_output"]) assert.equal(b[k].count, n);
    }
    // Without batching each request is one execution: per-request and per-batch compute times agree.
    for (const k of ["compute_input", "compute_infer", "compute_output"]) {
      assert.equal(is[k].ns, st.batch_stats[0][k].ns + st.batch_stats[1][k].ns);
    }
  });

  it("lists every loaded model under /v2/models/stats and one version under /versions/{v}/stats", async () => {
    const all = await getJson(`${s.url}/v2/models/stats`);
    assert.deepEqual(all.json.model_stats.map((m: { name: string; version: string }) => `${m.name}:${m.version}`), ["simple:1"]);
    const one = await getJson(`${s.url}/v2/models/simple/versions/1/stats`);
    assert.equal(one.json.model_stats.length, 1);
  });

  it("answers stats for an unknown model or version with Triton's 400 messages", async () => {
    const unknown = await getJson(`${s.url}/v2/models/nope/stats`);
    assert.equal(unknown.status, 400);
    assert.deepEqual(unknown.json, { error: "requested model 'nope' is not available" });
    const version = await getJson(`${s.url}/v2/models/simple/versions/7/stats`);
    assert.equal(version.status, 400);
    assert.deepEqual(version.json, { error: "requested model version is not available for model 'simple'" });
  });

  it("counts a request cancelled before execution as a failure, not an inference", async () => {
    const before = s.core.statistics("simple").model_stats[0]!;
    const ac = new AbortController();
    ac.abort();
    await assert.rejects(
      s.core.infer({
        model_name: "simple",
        signal: ac.signal,
        inputs: [makeTensor("INPUT0", "INT32", [1, 16], new Int32Array(16)), makeTensor("INPUT1", "INT32", [1, 16], new Int32Array(16))],
      }),
      (e: { code?: string }) => e.code === "CANCELLED",
    );
    const after = s.core.statistics("simple").model_stats[0]!;
    assert.equal(after.inference_stats.fail!.count, before.inference_stats.fail!.count + 1);
    assert.ok(after.inference_stats.fail!.ns > before.inference_stats.fail!.ns);
    assert.equal(after.inference_stats.success!.count, before.inference_stats.success!.count);
    assert.equal(after.inference_count, before.inference_count);
    assert.equal(after.execution_count, before.execution_count);
  });
});

describe("statistics with the dynamic batcher", () => {
  let s: TestServer;
  before(async () => {
    // Four requests fill the preferred batch long before the queue delay expires.
    s = await startServer({ modelRepository: await simpleRepository("dynamic_batching { preferred_batch_size: [ 4 ] max_queue_delay_microseconds: 5000000 }") });
  });
  after(async () => {
    await s.close();
  });

  it("counts one execution of batch 4 for four concurrent requests, and charges each request the batch's compute time", async () => {
    const results = await Promise.all(Array.from({ length: 4 }, () => postJson(`${s.url}/v2/models/simple/infer`, simpleBody(1))));
    assert.deepEqual(results.map((r) => r.status), [200, 200, 200, 200]);
    const st = (await getJson(`${s.url}/v2/models/simple/stats`)).json.model_stats[0];
    assert.equal(st.inference_count, 4);
    assert.equal(st.execution_count, 1);
    assert.equal(st.inference_stats.success.count, 4);
    assert.equal(st.batch_stats.length, 1);
    const b = st.batch_stats[0];
    assert.equal(b.batch_size, 4);
    for (const k of ["compute_input", "compute_infer", "compute_output"]) {
      assert.equal(b[k].count, 1);
      assert.equal(st.inference_stats[k].count, 4);
      assert.equal(st.inference_stats[k].ns, 4 * b[k].ns, `${k}: each of the 4 requests is charged the execution's time`);
    }
  });
});

describe("diagnostics channel events", () => {
  let s: TestServer;
  const requests: InferenceRequestEvent[] = [];
  const executions: ModelExecutionEvent[] = [];
  const onRequest = (m: unknown) => requests.push(m as InferenceRequestEvent);
  const onExecution = (m: unknown) => executions.push(m as ModelExecutionEvent);
  before(async () => {
    s = await startServer({ modelRepository: await simpleRepository() });
    diagnostics_channel.subscribe(REQUEST_CHANNEL, onRequest);
    diagnostics_channel.subscribe(EXECUTION_CHANNEL, onExecution);
  });
  after(async () => {
    diagnostics_channel.unsubscribe(REQUEST_CHANNEL, onRequest);
    diagnostics_channel.unsubscribe(EXECUTION_CHANNEL, onExecution);
    await s.close();
  });

  it("publishes one request event and one execution event per answered request, with the statistics' numbers", async () => {
    assert.equal((await postJson(`${s.url}/v2/models/simple/infer`, simpleBody(3, "r1"))).status, 200);
    assert.equal((await postJson(`${s.url}/v2/models/simple/infer`, badShape)).status, 400);
    assert.equal(requests.length, 1, "a request refused by validation publishes nothing");
    assert.equal(executions.length, 1);
    const e = requests[0]!;
    assert.equal(e.model, "simple");
    assert.equal(e.version, "1");
    assert.equal(e.id, "r1");
    assert.equal(e.success, true);
    assert.equal(e.reason, undefined);
    assert.equal(e.batchSize, 3);
    assert.ok(e.totalNs >= e.queueNs + e.computeInputNs + e.computeInferNs + e.computeOutputNs);
    const x = executions[0]!;
    assert.equal(x.batchSize, 3);
    assert.equal(x.source, e.source);
    assert.deepEqual([x.computeInputNs, x.computeInferNs, x.computeOutputNs], [e.computeInputNs, e.computeInferNs, e.computeOutputNs]);

    const st = s.core.statistics("simple").model_stats[0]!;
    assert.equal(st.inference_stats.success!.ns, Math.round(e.totalNs));
    assert.equal(st.inference_stats.queue!.ns, Math.round(e.queueNs));
    assert.equal(st.inference_stats.compute_infer!.ns, Math.round(e.computeInferNs));
  });

  it("publishes a failed request with Triton's reason", async () => {
    const ac = new AbortController();
    ac.abort();
    const n = requests.length;
    await assert.rejects(
      s.core.infer({
        model_name: "simple",
        signal: ac.signal,
        inputs: [makeTensor("INPUT0", "INT32", [1, 16], new Int32Array(16)), makeTensor("INPUT1", "INT32", [1, 16], new Int32Array(16))],
      }),
    );
    assert.equal(requests.length, n + 1);
    const e = requests.at(-1)!;
    assert.equal(e.success, false);
    assert.equal(e.reason, "CANCELED");
    assert.equal(e.computeInferNs, 0);
  });
});

/**
 * A backend with fixed timings (10/20/30 µs per execution) that fails every
 * request of a batch whose first X is negative: the numbers are exact.
 */
class FixedTimingBackend implements Backend {
  readonly name = "fixed";
  readonly platforms = [] as const;
  readonly defaultModelFilename = "model.fixed";
  async createModel() {
    return {
      async createInstance(): Promise<BackendInstance> {
        return {
          name: "fixed_0_0",
          async execute(requests: BatchRequest[]): Promise<BatchResult> {
            const timings = { computeInputNs: 10_000, computeInferNs: 20_000, computeOutputNs: 30_000 };
            const x = (r: BatchRequest) => new Int32Array(r.inputs[0]!.data.buffer, r.inputs[0]!.data.byteOffset, r.inputs[0]!.data.byteLength / 4);
            if (x(requests[0]!)[0]! < 0) return { results: requests.map(() => ({ error: { code: "INTERNAL" as const, message: "negative input" } })), timings };
            return { results: requests.map((r) => ({ outputs: [{ ...r.inputs[0]!, name: "Y" }] })), timings };
          },
          async release() {},
        };
      },
      async release() {},
    };
  }
}

describe("statistics and metrics of a backend with fixed timings", () => {
  let s: TestServer;
  let metrics: MetricsFrontend;
  before(async () => {
    const repo = await tempRepository({});
    await fs.mkdir(path.join(repo, "fixed", "1"), { recursive: true });
    await fs.writeFile(path.join(repo, "fixed", "1", "model.fixed"), "");
    await fs.writeFile(
      path.join(repo, "fixed", "config.pbtxt"),
      'backend: "fixed"\nmax_batch_size: 8\ninput [ { name: "X" data_type: TYPE_INT32 dims: [ 1 ] } ]\noutput [ { name: "Y" data_type: TYPE_INT32 dims: [ 1 ] } ]\n',
    );
    s = await startServer({ modelRepository: repo, backends: [new FixedTimingBackend()] });
    metrics = new MetricsFrontend(s.core, { address: "127.0.0.1", port: 0, allowCpuMetrics: false });
  });
  after(async () => {
    await metrics.close();
    await s.close();
  });

  const x = (values: number[]) => ({ inputs: [{ name: "X", shape: [values.length, 1], datatype: "INT32", data: values }] });

  it("charges each successful request the execution's backend timings and counts a failed execution only as a BACKEND failure", async () => {
    assert.equal((await postJson(`${s.url}/v2/models/fixed/infer`, x([1]))).status, 200);
    assert.equal((await postJson(`${s.url}/v2/models/fixed/infer`, x([1, 2, 3]))).status, 200);
    const failed = await postJson(`${s.url}/v2/models/fixed/infer`, x([-1]));
    assert.equal(failed.status, 500);
    const st = (await getJson(`${s.url}/v2/models/fixed/stats`)).json.model_stats[0];
    assert.equal(st.inference_count, 4);
    assert.equal(st.execution_count, 2, "an execution that answered no request is not counted");
    assert.equal(st.inference_stats.success.count, 2);
    assert.equal(st.inference_stats.fail.count, 1);
    assert.deepEqual(st.inference_stats.compute_input, { count: 2, ns: 20_000 });
    assert.deepEqual(st.inference_stats.compute_infer, { count: 2, ns: 40_000 });
    assert.deepEqual(st.inference_stats.compute_output, { count: 2, ns: 60_000 });
    assert.deepEqual(st.batch_stats, [
      { batch_size: 1, compute_input: { count: 1, ns: 10_000 }, compute_infer: { count: 1, ns: 20_000 }, compute_output: { count: 1, ns: 30_000 } },
      { batch_size: 3, compute_input: { count: 1, ns: 10_000 }, compute_infer: { count: 1, ns: 20_000 }, compute_output: { count: 1, ns: 30_000 } },
    ]);

    const text = await metrics.metrics();
    const line = (name: string) => text.split("\n").find((l) => l.startsWith(name + "{") || l.startsWith(name + " "));
    const failures = text.split("\n").filter((l) => l.startsWith("nv_inference_request_failure{"));
    assert.deepEqual(failures, ["REJECTED", "CANCELED", "BACKEND", "OTHER"].map((r) => `nv_inference_request_failure{model="fixed",reason="${r}",version="1"} ${r === "BACKEND" ? 1 : 0}`));
    assert.equal(line("nv_inference_exec_count"), 'nv_inference_exec_count{model="fixed",version="1"} 2');
    assert.equal(line("nv_inference_count"), 'nv_inference_count{model="fixed",version="1"} 4');
    assert.equal(line("nv_inference_compute_input_duration_us"), 'nv_inference_compute_input_duration_us{model="fixed",version="1"} 20');
    assert.equal(line("nv_inference_compute_infer_duration_us"), 'nv_inference_compute_infer_duration_us{model="fixed",version="1"} 40');
    assert.equal(line("nv_inference_compute_output_duration_us"), 'nv_inference_compute_output_duration_us{model="fixed",version="1"} 60');
  });
});
