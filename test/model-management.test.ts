import assert from "node:assert/strict";
import fs from "node:fs/promises";
import path from "node:path";
import { describe, it } from "node:test";
import { Logger } from "../src/core/observability/logger.js";
import { EXAMPLES, FIXTURES, postJson, startServer, tempRepository, waitFor } from "./helpers.js";

const ones = Array.from({ length: 16 }, () => 1);
const simpleBody = {
  inputs: [
    { name: "INPUT0", shape: [1, 16], datatype: "INT32", data: ones },
    { name: "INPUT1", shape: [1, 16], datatype: "INT32", data: ones },
  ],
};
const versionedBody = { inputs: [{ name: "INPUT0", shape: [1, 16], datatype: "INT32", data: ones }] };
const index = async (url: string) => (await postJson(`${url}/v2/repository/index`, {})).json as { name: string; version?: string; state?: string; reason?: string }[];

describe("model management", () => {
  it("refuses load and unload outside explicit mode with Triton's message and status", async () => {
    const s = await startServer({ modelRepository: EXAMPLES });
    try {
      const res = await postJson(`${s.url}/v2/repository/models/simple/unload`, {});
      assert.equal(res.status, 503);
      assert.deepEqual(res.json, { error: "explicit model load / unload is not allowed if polling is enabled" });
      assert.equal((await postJson(`${s.url}/v2/models/simple/infer`, simpleBody)).status, 200);
    } finally {
      await s.close();
    }
  });

  it("loads and unloads models in explicit mode and the index follows", async () => {
    const s = await startServer({ modelRepository: EXAMPLES, modelControlMode: "explicit", startupModels: ["identity_fp32"] });
    try {
      let idx = await index(s.url);
      assert.deepEqual(idx.find((m) => m.name === "simple"), { name: "simple" });
      assert.equal(idx.find((m) => m.name === "identity_fp32")?.state, "READY");
      assert.equal((await postJson(`${s.url}/v2/models/simple/infer`, simpleBody)).status, 404);

      assert.equal((await postJson(`${s.url}/v2/repository/models/simple/load`, {})).status, 200);
      assert.equal((await postJson(`${s.url}/v2/models/simple/infer`, simpleBody)).status, 200);
      idx = await index(s.url);
      assert.deepEqual(idx.find((m) => m.name === "simple"), { name: "simple", version: "1", state: "READY", reason: "" });

      assert.equal((await postJson(`${s.url}/v2/repository/models/simple/unload`, {})).status, 200);
      idx = await index(s.url);
      assert.equal(idx.find((m) => m.name === "simple")?.state, "UNAVAILABLE");
      const after = await postJson(`${s.url}/v2/models/simple/infer`, simpleBody);
      assert.equal(after.status, 404);
      assert.match(after.json.error, /Request for unknown model: 'simple'/);
      const ready = await postJson(`${s.url}/v2/repository/index`, { ready: true });
      assert.deepEqual(ready.json.map((m: { name: string }) => m.name), ["identity_fp32"]);
      assert.equal((await fetch(`${s.url}/v2/health/ready`)).status, 200, "an unloaded model does not make the server unready");
    } finally {
      await s.close();
    }
  });

  it("stays ready while an explicit load of another model runs", async () => {
    const s = await startServer({ modelRepository: EXAMPLES, modelControlMode: "explicit", startupModels: ["simple"] });
    try {
      const load = postJson(`${s.url}/v2/repository/models/image_classifier/load`, {});
      const seen: number[] = [];
      let done = false;
      void load.then(() => (done = true));
      while (!done) {
        seen.push((await fetch(`${s.url}/v2/health/ready`)).status);
        await new Promise((r) => setTimeout(r, 5));
      }
      assert.equal((await load).status, 200);
      assert.ok(seen.length > 0);
      assert.deepEqual([...new Set(seen)], [200]);
    } finally {
      await s.close();
    }
  });

  it("loads a model pushed through the load API with a config and file overrides", async () => {
    const s = await startServer({ modelRepository: EXAMPLES, modelControlMode: "explicit" });
    try {
      const model = await fs.readFile(path.join(EXAMPLES, "simple", "1", "model.onnx"));
      const config = {
        name: "pushed",
        backend: "onnxruntime",
        max_batch_size: 8,
        input: [
          { name: "INPUT0", data_type: "TYPE_INT32", dims: [16] },
          { name: "INPUT1", data_type: "TYPE_INT32", dims: [16] },
        ],
        output: [
          { name: "OUTPUT0", data_type: "TYPE_INT32", dims: [16] },
          { name: "OUTPUT1", data_type: "TYPE_INT32", dims: [16] },
        ],
      };
      const load = await postJson(`${s.url}/v2/repository/models/pushed/load`, {
        parameters: { config: JSON.stringify(config), "file:1/model.onnx": model.toString("base64") },
      });
      assert.equal(load.status, 200, JSON.stringify(load.json));
      const res = await postJson(`${s.url}/v2/models/pushed/infer`, simpleBody);
      assert.equal(res.status, 200);
      assert.deepEqual(res.json.outputs[0].data, ones.map(() => 2));

      const noConfig = await postJson(`${s.url}/v2/repository/models/other/load`, { parameters: { "file:1/model.onnx": model.toString("base64") } });
      assert.equal(noConfig.status, 400);
      assert.match(noConfig.json.error, /failed to load 'other'/);
      assert.match(noConfig.json.error, /'config' parameter must be provided/);
    } finally {
      await s.close();
    }
  });

  it("switches answers to a new version on reload and unloads the old one", async () => {
    const repo = await tempRepository({});
    await fs.mkdir(path.join(repo, "versioned"));
    await fs.copyFile(path.join(FIXTURES, "versioned", "config.pbtxt"), path.join(repo, "versioned", "config.pbtxt"));
    await fs.cp(path.join(FIXTURES, "versioned", "1"), path.join(repo, "versioned", "1"), { recursive: true });
    const s = await startServer({ modelRepository: repo, modelControlMode: "explicit", startupModels: ["versioned"] });
    try {
      let res = await postJson(`${s.url}/v2/models/versioned/infer`, versionedBody);
      assert.equal(res.json.model_version, "1");
      assert.deepEqual(res.json.outputs[0].data, ones.map(() => 2));
      await fs.cp(path.join(FIXTURES, "versioned", "2"), path.join(repo, "versioned", "2"), { recursive: true });
      assert.equal((await postJson(`${s.url}/v2/repository/models/versioned/load`, {})).status, 200);
      res = await postJson(`${s.url}/v2/models/versioned/infer`, versionedBody);
      assert.equal(res.json.model_version, "2");
      assert.deepEqual(res.json.outputs[0].data, ones.map(() => 3));
      const v1 = await postJson(`${s.url}/v2/models/versioned/versions/1/infer`, versionedBody);
      assert.equal(v1.status, 404);
    } finally {
      await s.close();
    }
  });

  it("keeps the serving version when a reload finds a broken model file", async () => {
    const repo = await tempRepository({ simple: path.join(EXAMPLES, "simple") });
    const s = await startServer({ modelRepository: repo, modelControlMode: "explicit", startupModels: ["simple"] });
    try {
      await fs.writeFile(path.join(repo, "simple", "1", "model.onnx"), "this is not an onnx model");
      const reload = await postJson(`${s.url}/v2/repository/models/simple/load`, {});
      assert.equal(reload.status, 400);
      assert.match(reload.json.error, /^failed to load 'simple'/);
      assert.equal((await postJson(`${s.url}/v2/models/simple/infer`, simpleBody)).status, 200);
      const entry = (await index(s.url)).find((m) => m.name === "simple");
      assert.equal(entry?.state, "READY");
      assert.match(entry?.reason ?? "", /failed to load ONNX model/);
    } finally {
      await s.close();
    }
  });

  it("lets in-flight requests finish on unload and rejects new ones", async () => {
    const s = await startServer({ modelRepository: EXAMPLES, modelControlMode: "explicit", startupModels: ["image_classifier"] });
    try {
      const body = { inputs: [{ name: "INPUT", shape: [16, 3, 32, 32], datatype: "FP32", data: new Array(16 * 3 * 32 * 32).fill(0.5) }] };
      const inflight = Array.from({ length: 6 }, () => postJson(`${s.url}/v2/models/image_classifier/infer`, body));
      await new Promise((r) => setTimeout(r, 30));
      const unload = postJson(`${s.url}/v2/repository/models/image_classifier/unload`, {});
      const results = await Promise.all(inflight);
      assert.equal((await unload).status, 200);
      const statuses = results.map((r) => r.status);
      // Requests that reached the model before the unload all complete; none fails half-way.
      assert.ok(statuses.every((st) => st === 200 || st === 404), `statuses ${statuses}`);
      assert.ok(statuses.filter((st) => st === 200).length >= 1, `statuses ${statuses}`);
      assert.equal((await postJson(`${s.url}/v2/models/image_classifier/infer`, body)).status, 404);
    } finally {
      await s.close();
    }
  });

  it("runs warm-up samples before READY and fails the load when a sample fails", async () => {
    const repo = await tempRepository({ good: path.join(EXAMPLES, "simple"), bad: path.join(EXAMPLES, "simple") });
    const warmup = (dims: string) => `
model_warmup [ {
  name: "zeros"
  batch_size: 2
  inputs { key: "INPUT0" value: { data_type: TYPE_INT32 dims: ${dims} zero_data: true } }
  inputs { key: "INPUT1" value: { data_type: TYPE_INT32 dims: ${dims} random_data: true } }
} ]`;
    for (const name of ["good", "bad"]) {
      const file = path.join(repo, name, "config.pbtxt");
      const text = (await fs.readFile(file, "utf8")).replace('name: "simple"', `name: "${name}"`);
      await fs.writeFile(file, text + warmup(name === "good" ? "[ 16 ]" : "[ 15 ]"));
    }
    const s = await startServer({ modelRepository: repo, strictReadiness: false });
    try {
      const idx = await index(s.url);
      assert.equal(idx.find((m) => m.name === "good")?.state, "READY");
      const bad = idx.find((m) => m.name === "bad");
      assert.equal(bad?.state, "UNAVAILABLE");
      assert.match(bad?.reason ?? "", /warmup sample 'zeros' failed/);
      const stats: any = await (await fetch(`${s.url}/v2/models/good/stats`)).json();
      assert.equal(stats.model_stats[0].inference_count, 0, "warm-up is not counted as inference");
    } finally {
      await s.close();
    }
  });

  it("loads a cold model on its first request, once for concurrent requests", async () => {
    const lines: string[] = [];
    const logger = new Logger({}, (l) => lines.push(l));
    const s = await startServer({ modelRepository: EXAMPLES, modelControlMode: "explicit", modelLoadOnDemand: true, logger });
    try {
      const results = await Promise.all(Array.from({ length: 5 }, () => postJson(`${s.url}/v2/models/simple/infer`, simpleBody)));
      assert.deepEqual(results.map((r) => r.status), [200, 200, 200, 200, 200]);
      assert.equal(lines.filter((l) => l.includes("loading: simple:1")).length, 1);
    } finally {
      await s.close();
    }
  });

  it("unloads the least recently used model to stay within the memory budget", async () => {
    const s = await startServer({
      modelRepository: EXAMPLES,
      modelControlMode: "explicit",
      modelLoadOnDemand: true,
      modelMemoryBudget: 1000, // simple (~240 B) and identity_fp32 (~150 B) fit; image_classifier (~7 KB) alone does not
    });
    try {
      assert.equal((await postJson(`${s.url}/v2/models/simple/infer`, simpleBody)).status, 200);
      const idBody = { inputs: [{ name: "INPUT0", shape: [1, 2], datatype: "FP32", data: [1, 2] }] };
      assert.equal((await postJson(`${s.url}/v2/models/identity_fp32/infer`, idBody)).status, 200);
      let ready = (await postJson(`${s.url}/v2/repository/index`, { ready: true })).json.map((m: { name: string }) => m.name);
      assert.deepEqual(ready, ["identity_fp32", "simple"]);
      const stats: any = await (await fetch(`${s.url}/v2/models/simple/stats`)).json();
      assert.ok(stats.model_stats[0].memory_usage[0].byte_size > 0);
      const img = { inputs: [{ name: "INPUT", shape: [1, 3, 32, 32], datatype: "FP32", data: new Array(3 * 32 * 32).fill(0.1) }] };
      assert.equal((await postJson(`${s.url}/v2/models/image_classifier/infer`, img)).status, 200);
      ready = (await postJson(`${s.url}/v2/repository/index`, { ready: true })).json.map((m: { name: string }) => m.name);
      assert.deepEqual(ready, ["image_classifier"]);
    } finally {
      await s.close();
    }
  });

  it("polls the repository: adds, reloads and removes models with no failed request on a model that stays", async () => {
    const repo = await tempRepository({ simple: path.join(EXAMPLES, "simple") });
    const s = await startServer({ modelRepository: repo, modelControlMode: "poll", repositoryPollSecs: 1 });
    let failures = 0;
    let sent = 0;
    let running = true;
    const load = (async () => {
      while (running) {
        const r = await postJson(`${s.url}/v2/models/simple/infer`, simpleBody);
        sent++;
        if (r.status !== 200) failures++;
      }
    })();
    try {
      await fs.cp(path.join(EXAMPLES, "identity_fp32"), path.join(repo, "identity_fp32"), { recursive: true });
      await waitFor(async () => (await index(s.url)).some((m) => m.name === "identity_fp32" && m.state === "READY"));
      // Touch simple's config: a reload while the load generator runs.
      const cfg = path.join(repo, "simple", "config.pbtxt");
      await fs.appendFile(cfg, "\n# changed\n");
      const before = s.core.getModel("simple");
      await waitFor(async () => s.core.getModel("simple") !== before);
      await fs.rm(path.join(repo, "identity_fp32"), { recursive: true });
      await waitFor(async () => (await index(s.url)).every((m) => m.name !== "identity_fp32"));
    } finally {
      running = false;
      await load;
      await s.close();
    }
    assert.ok(sent > 10, `sent ${sent}`);
    assert.equal(failures, 0);
  });
});

