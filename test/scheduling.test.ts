import assert from "node:assert/strict";
import fs from "node:fs/promises";
import path from "node:path";
import { after, before, describe, it } from "node:test";
import { request as httpRequest } from "node:http";
import { HttpFrontend, createServer, makeTensor, tensorValues, type InferenceServer } from "../src/index.js";
import type { InferenceRequest } from "../src/core/requests/inference.js";
import { GateBackend, gateConfig } from "./gate-backend.js";
import { EXAMPLES, FIXTURES, postJson, startServer, tempRepository, type TestServer } from "./helpers.js";

const x = (v: number, parameters?: InferenceRequest["parameters"], signal?: AbortSignal): InferenceRequest => ({
  model_name: "m",
  inputs: [makeTensor("X", "INT32", [1, 1], new Int32Array([v]))],
  ...(parameters ? { parameters } : {}),
  ...(signal ? { signal } : {}),
});
const tick = (ms = 20) => new Promise((r) => setTimeout(r, ms));

/** A server with one gate model `m` configured by `extra`. */
async function gateServer(extra: string, maxBatchSize = 4, options: Record<string, unknown> = {}): Promise<{ core: InferenceServer; gate: GateBackend }> {
  const repo = await tempRepository({});
  await fs.mkdir(path.join(repo, "m", "1"), { recursive: true });
  await fs.writeFile(path.join(repo, "m", "1", "model.gate"), "");
  await fs.writeFile(path.join(repo, "m", "config.pbtxt"), gateConfig("m", maxBatchSize, extra));
  const gate = new GateBackend();
  const core = await createServer({ modelRepository: repo, backends: [gate], quiet: true, ...options });
  return { core, gate };
}

describe("dynamic batcher", () => {
  it("combines requests queued behind a busy instance into one batch of max_batch_size", async () => {
    const { core, gate } = await gateServer("instance_group [ { count: 1 } ]\ndynamic_batching { }");
    try {
      gate.hold();
      const first = core.infer(x(0));
      await tick();
      const rest = [1, 2, 3, 4].map((v) => core.infer(x(v)));
      await tick();
      gate.release();
      await Promise.all([first, ...rest]);
      assert.deepEqual(gate.executions.map((e) => e.xs), [[0], [1, 2, 3, 4]]);
      const stats = core.statistics("m").model_stats[0]!;
      assert.deepEqual(stats.batch_stats.map((b) => [b.batch_size, b.compute_infer.count]), [[1, 1], [4, 1]]);
      assert.equal(stats.execution_count, 2);
      assert.equal(stats.inference_count, 5);
    } finally {
      await core.stop();
    }
  });

  it("flushes a partial batch after max_queue_delay_microseconds", async () => {
    const { core, gate } = await gateServer("instance_group [ { count: 1 } ]\ndynamic_batching { max_queue_delay_microseconds: 150000 }", 8);
    try {
      const t0 = Date.now();
      await Promise.all([core.infer(x(1)), core.infer(x(2))]);
      assert.ok(Date.now() - t0 >= 140, `waited ${Date.now() - t0} ms`);
      assert.deepEqual(gate.executions.map((e) => e.xs), [[1, 2]]);
    } finally {
      await core.stop();
    }
  });

  it("lets a higher-priority request overtake queued lower-priority ones", async () => {
    const { core, gate } = await gateServer("instance_group [ { count: 1 } ]\ndynamic_batching { priority_levels: 2 default_priority_level: 2 }");
    try {
      gate.hold();
      const a = core.infer(x(0));
      await tick();
      const low = core.infer(x(1));
      const high = core.infer(x(2, { priority: 1 }));
      await tick();
      gate.release();
      await Promise.all([a, low, high]);
      assert.deepEqual(gate.executions.map((e) => e.xs), [[0], [2, 1]]);
    } finally {
      await core.stop();
    }
  });

  it("rejects a request whose queue timeout expires with Triton's UNAVAILABLE message", async () => {
    const { core, gate } = await gateServer(
      "instance_group [ { count: 1 } ]\ndynamic_batching { default_queue_policy { timeout_action: REJECT default_timeout_microseconds: 50000 } }",
    );
    try {
      gate.hold();
      const a = core.infer(x(0));
      await tick();
      const t0 = Date.now();
      await assert.rejects(core.infer(x(1)), (e: any) => e.code === "UNAVAILABLE" && /Request timeout expired/.test(e.message));
      assert.ok(Date.now() - t0 < 1000);
      gate.release();
      await a;
      assert.deepEqual(gate.executions.map((e) => e.xs), [[0]]);
      assert.equal(core.statistics("m").model_stats[0]!.inference_stats.fail!.count, 1);
    } finally {
      await core.stop();
    }
  });

  it("moves a timed-out request behind the others with timeout_action DELAY", async () => {
    const { core, gate } = await gateServer(
      // 300 ms: a busy machine must not let the fresh request expire too before the gate opens.
      "instance_group [ { count: 1 } ]\ndynamic_batching { default_queue_policy { timeout_action: DELAY default_timeout_microseconds: 300000 } }",
    );
    try {
      gate.hold();
      const a = core.infer(x(0));
      await tick();
      const late = core.infer(x(1));
      await tick(400);
      const fresh = core.infer(x(2));
      await tick();
      gate.release();
      await Promise.all([a, late, fresh]);
      assert.deepEqual(gate.executions.map((e) => e.xs), [[0], [2, 1]]);
    } finally {
      await core.stop();
    }
  });

  it("honours a request's own shorter timeout only when allow_timeout_override is set", async () => {
    const { core, gate } = await gateServer(
      "instance_group [ { count: 1 } ]\ndynamic_batching { default_queue_policy { allow_timeout_override: true default_timeout_microseconds: 10000000 } }",
    );
    try {
      gate.hold();
      const a = core.infer(x(0));
      await tick();
      await assert.rejects(core.infer(x(1, { timeout: 20000 })), /Request timeout expired/);
      gate.release();
      await a;
    } finally {
      await core.stop();
    }
  });

  it("refuses a request when the queue is full", async () => {
    const { core, gate } = await gateServer("instance_group [ { count: 1 } ]\ndynamic_batching { default_queue_policy { max_queue_size: 1 } }");
    try {
      gate.hold();
      const a = core.infer(x(0));
      await tick();
      const b = core.infer(x(1));
      await assert.rejects(core.infer(x(2)), (e: any) => e.code === "UNAVAILABLE" && /Exceeds maximum queue size/.test(e.message));
      gate.release();
      await Promise.all([a, b]);
    } finally {
      await core.stop();
    }
  });

  it("drops a queued request whose client goes away; it never executes", async () => {
    const { core, gate } = await gateServer("instance_group [ { count: 1 } ]\ndynamic_batching { }");
    try {
      gate.hold();
      const a = core.infer(x(0));
      await tick();
      const ac = new AbortController();
      const b = core.infer(x(7, undefined, ac.signal));
      await tick();
      ac.abort();
      await assert.rejects(b, (e: any) => e.code === "CANCELLED");
      gate.release();
      await a;
      assert.deepEqual(gate.executions.map((e) => e.xs), [[0]]);
    } finally {
      await core.stop();
    }
  });

  it("drops a queued HTTP request whose client disconnects; it never executes", async () => {
    const { core, gate } = await gateServer("instance_group [ { count: 1 } ]\ndynamic_batching { }");
    const http = new HttpFrontend(core, { address: "127.0.0.1", port: 0 });
    const port = await http.listen();
    try {
      gate.hold();
      const a = core.infer(x(0));
      await tick();
      const body = JSON.stringify({ inputs: [{ name: "X", datatype: "INT32", shape: [1, 1], data: [7] }] });
      const req = httpRequest({ host: "127.0.0.1", port, method: "POST", path: "/v2/models/m/infer", headers: { "Content-Type": "application/json" } });
      req.on("error", () => {});
      req.end(body);
      for (let i = 0; i < 100 && core.getModel("m").pendingRequests === 0; i++) await new Promise((r) => setTimeout(r, 10));
      assert.equal(core.getModel("m").pendingRequests, 1, "queued behind the held batch");
      req.destroy();
      for (let i = 0; i < 100 && core.getModel("m").pendingRequests > 0; i++) await new Promise((r) => setTimeout(r, 10));
      assert.equal(core.getModel("m").pendingRequests, 0, "dropped from the queue");
      gate.release();
      await a;
      assert.deepEqual(gate.executions.map((e) => e.xs), [[0]]);
    } finally {
      gate.release();
      await http.close();
      await core.stop();
    }
  });

  it("answers in arrival order with preserve_ordering even when a later batch finishes first", async () => {
    const { core, gate } = await gateServer("instance_group [ { count: 2 } ]\ndynamic_batching { preserve_ordering: true }", 1);
    try {
      gate.hold();
      const order: number[] = [];
      const a = core.infer(x(1)).then(() => order.push(1));
      await tick();
      gate.release(); // the second request runs on the other instance and is done first
      const b = core.infer(x(2)).then(() => order.push(2));
      await Promise.all([a, b]);
      assert.deepEqual(order, [1, 2]);
    } finally {
      await core.stop();
    }
  });
});

describe("rate limiter and response cache", () => {
  it("runs instances only when their rate limiter resources are free", async () => {
    const { core, gate } = await gateServer(
      "instance_group [ { count: 3 rate_limiter { resources [ { name: \"R\" count: 1 } ] } } ]",
      1,
      { rateLimit: "execution_count", rateLimitResources: ["R:1"] },
    );
    try {
      await Promise.all([1, 2, 3, 4, 5, 6].map((v) => core.infer(x(v))));
      assert.equal(gate.executions.length, 6);
      assert.equal(gate.maxRunning, 1);
    } finally {
      await core.stop();
    }
  });

  it("without the rate limiter the same instances run at once", async () => {
    const { core, gate } = await gateServer("instance_group [ { count: 3 rate_limiter { resources [ { name: \"R\" count: 1 } ] } } ]", 1);
    try {
      gate.hold();
      const all = [1, 2, 3].map((v) => core.infer(x(v)));
      await tick();
      gate.release();
      await Promise.all(all);
      assert.equal(gate.maxRunning, 3);
    } finally {
      await core.stop();
    }
  });

  it("answers an identical request from the response cache without executing", async () => {
    const { core, gate } = await gateServer("response_cache { enable: true }", 4, { responseCacheBytes: 1 << 20 });
    try {
      const r1 = await core.infer(x(5));
      const r2 = await core.infer(x(5));
      await core.infer(x(6));
      assert.deepEqual(tensorValues(r2.outputs[0]!), tensorValues(r1.outputs[0]!));
      assert.equal(gate.executions.length, 2);
      const st = core.statistics("m").model_stats[0]!;
      assert.equal(st.inference_stats.cache_hit!.count, 1);
      assert.equal(st.inference_stats.cache_miss!.count, 2);
      assert.equal(st.inference_stats.success!.count, 3);
    } finally {
      await core.stop();
    }
  });
});

describe("sequence batcher", () => {
  let s: TestServer;
  before(async () => {
    const repo = await tempRepository({
      sequence_control: path.join(FIXTURES, "sequence_control"),
      sequence_state: path.join(FIXTURES, "sequence_state"),
    });
    // A short idle timeout so the test can watch a sequence expire.
    const cfg = path.join(repo, "sequence_control", "config.pbtxt");
    await fs.writeFile(cfg, (await fs.readFile(cfg, "utf8")).replace("max_sequence_idle_microseconds: 2000000", "max_sequence_idle_microseconds: 300000"));
    s = await startServer({ modelRepository: repo });
  });
  after(async () => {
    await s.close();
  });

  const step = (model: string, value: number, params: Record<string, unknown>) =>
    postJson(`${s.url}/v2/models/${model}/infer`, { parameters: params, inputs: [{ name: "INPUT", shape: [1, 1], datatype: "INT32", data: [value] }] });
  const out = (res: { json: any }, name: string) => res.json.outputs.find((o: { name: string }) => o.name === name)?.data[0];

  it("injects START, READY, END and CORRID as the config declares", async () => {
    const a = await step("sequence_control", 10, { sequence_id: 42, sequence_start: true });
    assert.equal(a.status, 200, JSON.stringify(a.json));
    assert.equal(out(a, "OUTPUT"), 11); // (10 + START 1) * READY 1
    assert.equal(out(a, "CORRID_OUT"), 42);
    assert.equal(out(a, "END_OUT"), 0);
    const b = await step("sequence_control", 10, { sequence_id: 42 });
    assert.equal(out(b, "OUTPUT"), 10);
    const c = await step("sequence_control", 3, { sequence_id: 42, sequence_end: true });
    assert.equal(out(c, "OUTPUT"), 3);
    assert.equal(out(c, "END_OUT"), 1);
    const after = await step("sequence_control", 1, { sequence_id: 42 });
    assert.equal(after.status, 400);
    assert.match(after.json.error, /must specify the START flag on the first request of the sequence/);
  });

  it("runs concurrent sequences in one batch, each with its own control values", async () => {
    const ids = [101, 102, 103];
    const results = await Promise.all(ids.map((id) => step("sequence_control", id, { sequence_id: id, sequence_start: true })));
    for (const [i, r] of results.entries()) {
      assert.equal(out(r, "OUTPUT"), ids[i]! + 1);
      assert.equal(out(r, "CORRID_OUT"), ids[i]);
    }
    await Promise.all(ids.map((id) => step("sequence_control", 0, { sequence_id: id, sequence_end: true })));
  });

  it("accepts string correlation IDs", async () => {
    const a = await step("sequence_state", 5, { sequence_id: "session-a", sequence_start: true });
    assert.equal(out(a, "OUTPUT"), 5);
    await step("sequence_state", 0, { sequence_id: "session-a", sequence_end: true });
  });

  it("feeds implicit state from one step to the next, per sequence", async () => {
    const a1 = await step("sequence_state", 1, { sequence_id: 1, sequence_start: true });
    const b1 = await step("sequence_state", 100, { sequence_id: 2, sequence_start: true });
    const a2 = await step("sequence_state", 2, { sequence_id: 1 });
    const b2 = await step("sequence_state", 200, { sequence_id: 2 });
    const a3 = await step("sequence_state", 3, { sequence_id: 1, sequence_end: true });
    assert.deepEqual([out(a1, "OUTPUT"), out(a2, "OUTPUT"), out(a3, "OUTPUT")], [1, 3, 6]);
    assert.deepEqual([out(b1, "OUTPUT"), out(b2, "OUTPUT")], [100, 300]);
    assert.equal(a1.json.outputs.length, 1, "the state output is not returned to the client");
    await step("sequence_state", 0, { sequence_id: 2, sequence_end: true });
  });

  it("refuses requests without a correlation ID and a second START of a running sequence", async () => {
    const none = await step("sequence_control", 1, {});
    assert.equal(none.status, 400);
    assert.match(none.json.error, /must specify a non-zero or non-empty correlation ID/);
    await step("sequence_control", 1, { sequence_id: 7, sequence_start: true });
    const again = await step("sequence_control", 1, { sequence_id: 7, sequence_start: true });
    assert.equal(again.status, 400);
    assert.match(again.json.error, /already in progress/);
    await step("sequence_control", 1, { sequence_id: 7, sequence_end: true });
  });

  it("ends an idle sequence and explains it to its next request", async () => {
    await step("sequence_control", 1, { sequence_id: 9, sequence_start: true });
    await tick(600);
    const late = await step("sequence_control", 1, { sequence_id: 9 });
    assert.equal(late.status, 400);
    assert.match(late.json.error, /ended after being idle/);
  });
});

describe("schedule policy over HTTP", () => {
  it("rejects a malformed priority parameter naming the model", async () => {
    const s = await startServer({ modelRepository: await tempRepository({ simple: path.join(EXAMPLES, "simple") }) });
    try {
      const ones = new Array(16).fill(1);
      const res = await postJson(`${s.url}/v2/models/simple/infer`, {
        parameters: { priority: "high" },
        inputs: [
          { name: "INPUT0", shape: [1, 16], datatype: "INT32", data: ones },
          { name: "INPUT1", shape: [1, 16], datatype: "INT32", data: ones },
        ],
      });
      assert.equal(res.status, 400);
      assert.match(res.json.error, /parameter 'priority' must be a non-negative integer for model 'simple'/);
    } finally {
      await s.close();
    }
  });
});
