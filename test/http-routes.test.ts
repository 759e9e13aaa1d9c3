/**
 * Every HTTP route of the KServe v2 protocol and Triton's extensions that
 * Tritium serves, over real HTTP against real ONNX models: status codes,
 * bodies and JSON shapes (key order included) as Triton answers them.
 */
import assert from "node:assert/strict";
import fs from "node:fs/promises";
import path from "node:path";
import { after, before, describe, it } from "node:test";
import { EXAMPLES, FIXTURES, httpRequest, startServer, tempRepository, type RawResponse, type TestServer } from "./helpers.js";

const simpleInputs = (batch = 1) => [
  { name: "INPUT0", shape: [batch, 16], datatype: "INT32", data: Array.from({ length: 16 * batch }, (_, i) => i) },
  { name: "INPUT1", shape: [batch, 16], datatype: "INT32", data: Array.from({ length: 16 * batch }, () => 1) },
];

describe("HTTP routes", () => {
  let s: TestServer;
  let extra: string;
  const get = (p: string, headers: Record<string, string> = {}): Promise<RawResponse> => httpRequest(s.url + p, { headers });
  const post = (p: string, body: unknown, headers: Record<string, string> = {}): Promise<RawResponse> =>
    httpRequest(s.url + p, { method: "POST", headers: { "Content-Type": "application/json", ...headers }, body: JSON.stringify(body) });

  before(async () => {
    extra = await tempRepository({
      add_sub_fp32: path.join(FIXTURES, "add_sub_fp32"),
      versioned: path.join(FIXTURES, "versioned"),
    });
    s = await startServer({ modelRepository: [EXAMPLES, extra] });
  });
  after(async () => {
    await s?.close();
    if (extra) await fs.rm(extra, { recursive: true, force: true });
  });

  describe("health", () => {
    it("answers GET /v2/health/live with 200 and an empty body", async () => {
      const res = await get("/v2/health/live");
      assert.equal(res.status, 200);
      assert.equal(res.body.byteLength, 0);
    });

    it("answers GET /v2/health/ready with 200 and an empty body when every model is ready", async () => {
      const res = await get("/v2/health/ready");
      assert.equal(res.status, 200);
      assert.equal(res.body.byteLength, 0);
    });
  });

  describe("server metadata", () => {
    it("returns name 'triton', Tritium's version and the implemented extensions in Triton's key order", async () => {
      const res = await get("/v2");
      assert.equal(res.status, 200);
      assert.match(String(res.headers["content-type"]), /^application\/json/);
      assert.deepEqual(Object.keys(res.json), ["name", "version", "extensions"]);
      assert.equal(res.json.name, "triton");
      assert.match(res.json.version, /^\d+\.\d+\.\d+/);
      for (const ext of ["classification", "model_repository", "model_configuration", "binary_tensor_data", "parameters", "statistics"]) {
        assert.ok(res.json.extensions.includes(ext), `extension ${ext} missing from ${JSON.stringify(res.json.extensions)}`);
      }
      // Triton's order: the extensions we list appear in the order Triton lists them.
      const tritonOrder = ["classification", "sequence", "model_repository", "model_repository(unload_dependents)", "schedule_policy",
        "model_configuration", "system_shared_memory", "cuda_shared_memory", "binary_tensor_data", "parameters", "statistics", "trace", "logging"];
      const positions = res.json.extensions.map((e: string) => tritonOrder.indexOf(e));
      assert.ok(positions.every((p: number) => p >= 0), `unknown extension in ${JSON.stringify(res.json.extensions)}`);
      assert.deepEqual(positions, [...positions].sort((a: number, b: number) => a - b));
    });

    it("accepts a trailing slash on /v2/", async () => {
      const res = await get("/v2/");
      assert.equal(res.status, 200);
      assert.equal(res.json.name, "triton");
    });
  });

  describe("model metadata", () => {
    it("describes a batching model with -1 batch dimension, ready versions and platform", async () => {
      const res = await get("/v2/models/simple");
      assert.equal(res.status, 200);
      assert.deepEqual(res.json, {
        name: "simple",
        versions: ["1"],
        platform: "onnxruntime_onnx",
        inputs: [
          { name: "INPUT0", datatype: "INT32", shape: [-1, 16] },
          { name: "INPUT1", datatype: "INT32", shape: [-1, 16] },
        ],
        outputs: [
          { name: "OUTPUT0", datatype: "INT32", shape: [-1, 16] },
          { name: "OUTPUT1", datatype: "INT32", shape: [-1, 16] },
        ],
      });
      assert.deepEqual(Object.keys(res.json), ["name", "versions", "platform", "inputs", "outputs"]);
      assert.deepEqual(Object.keys(res.json.inputs[0]), ["name", "datatype", "shape"]);
    });

    it("describes a model with max_batch_size 0 without a batch dimension", async () => {
      const res = await get("/v2/models/add_sub_fp32");
      assert.equal(res.status, 200);
      assert.deepEqual(res.json.inputs, [
        { name: "INPUT0", datatype: "FP32", shape: [4] },
        { name: "INPUT1", datatype: "FP32", shape: [4] },
      ]);
    });

    it("reports BYTES for TYPE_STRING tensors", async () => {
      const res = await get("/v2/models/simple_string");
      assert.deepEqual(res.json.inputs, [{ name: "INPUT0", datatype: "BYTES", shape: [-1, -1] }]);
    });

    it("answers /v2/models/{m}/versions/{v} for a served version", async () => {
      const res = await get("/v2/models/versioned/versions/3");
      assert.equal(res.status, 200);
      assert.equal(res.json.name, "versioned");
      assert.deepEqual(res.json.versions, ["3"]);
    });

    it("answers 404 for a version that is not served", async () => {
      const res = await get("/v2/models/versioned/versions/1");
      assert.equal(res.status, 404);
      assert.deepEqual(res.json, { error: "Request for unknown model: 'versioned' version 1 is not found" });
    });

    it("answers 400 with Triton's message for an unknown model", async () => {
      const res = await get("/v2/models/nope");
      assert.equal(res.status, 400);
      assert.deepEqual(res.json, { error: "Request for unknown model: 'nope' is not found" });
    });

    it("treats a non-numeric version segment as an unknown path (Triton's route regex is [0-9]+)", async () => {
      const res = await get("/v2/models/simple/versions/latest");
      assert.equal(res.status, 404);
      assert.deepEqual(res.json, { error: "Not Found" });
    });
  });

  describe("model readiness", () => {
    it("answers 200 with an empty body for a ready model, with and without version", async () => {
      for (const p of ["/v2/models/simple/ready", "/v2/models/simple/versions/1/ready", "/v2/models/versioned/versions/3/ready"]) {
        const res = await get(p);
        assert.equal(res.status, 200, p);
        assert.equal(res.body.byteLength, 0, p);
      }
    });

    it("answers 400 {\"error\":\"Model version not ready\"} for an unknown model or version, as Triton's HandleModelReady does", async () => {
      // Triton's ModelIsReady swallows the lookup error and reports not-ready.
      for (const p of ["/v2/models/nope/ready", "/v2/models/versioned/versions/2/ready", "/v2/models/nope/versions/1/ready"]) {
        const res = await get(p);
        assert.equal(res.status, 400, p);
        assert.deepEqual(res.json, { error: "Model version not ready" }, p);
      }
    });
  });

  describe("model configuration", () => {
    it("returns the complete config as Triton prints it: proto names, declaration order, defaults, enum names, int64 numbers", async () => {
      const res = await get("/v2/models/simple/config");
      assert.equal(res.status, 200);
      assert.match(String(res.headers["content-type"]), /^application\/json/);
      // The byte-for-byte shape of Triton 2.x's answer for this config.pbtxt
      // (normalized: default version policy, pinned memory, group name
      // `<model>_<index>`, default_model_filename of the ONNX Runtime backend).
      const tensorIn = (n: string) =>
        `{"name":"${n}","data_type":"TYPE_INT32","format":"FORMAT_NONE","dims":[16],"is_shape_tensor":false,"allow_ragged_batch":false,"optional":false,"is_non_linear_format_io":false}`;
      const tensorOut = (n: string) =>
        `{"name":"${n}","data_type":"TYPE_INT32","dims":[16],"label_filename":"","is_shape_tensor":false,"is_non_linear_format_io":false}`;
      const expected =
        `{"name":"simple","platform":"onnxruntime_onnx","backend":"onnxruntime","runtime":"","version_policy":{"latest":{"num_versions":1}},` +
        `"max_batch_size":8,"input":[${tensorIn("INPUT0")},${tensorIn("INPUT1")}],"output":[${tensorOut("OUTPUT0")},${tensorOut("OUTPUT1")}],` +
        `"batch_input":[],"batch_output":[],"optimization":{"priority":"PRIORITY_DEFAULT","input_pinned_memory":{"enable":true},` +
        `"output_pinned_memory":{"enable":true},"gather_kernel_buffer_threshold":0,"eager_batching":false},` +
        `"instance_group":[{"name":"simple_0","kind":"KIND_CPU","count":1,"gpus":[],"secondary_devices":[],"profile":[],"passive":false,"host_policy":""}],` +
        `"default_model_filename":"model.onnx","cc_model_filenames":{},"metric_tags":{},"parameters":{},"model_warmup":[]}`;
      assert.equal(res.body.toString("utf8"), expected);
    });

    it("prints int64 fields as JSON numbers and never uses protobuf JSON camelCase names", async () => {
      const res = await get("/v2/models/versioned/config");
      assert.equal(res.status, 200);
      assert.deepEqual(res.json.input[0].dims, [16]);
      assert.equal(typeof res.json.max_batch_size, "number");
      assert.equal(typeof res.json.optimization.gather_kernel_buffer_threshold, "number");
      // No camelCase (protobuf JSON names) anywhere.
      const keys: string[] = [];
      const walk = (v: unknown) => {
        if (Array.isArray(v)) v.forEach(walk);
        else if (v && typeof v === "object") for (const [k, x] of Object.entries(v)) (keys.push(k), walk(x));
      };
      walk(res.json);
      assert.deepEqual(keys.filter((k) => /[a-z][A-Z]/.test(k)), [], "camelCase keys in config JSON");
    });

    it("prints label_filename and the version in the config URL", async () => {
      const res = await get("/v2/models/image_classifier/versions/1/config");
      assert.equal(res.status, 200);
      assert.equal(res.json.output[0].label_filename, "labels.txt");
      assert.deepEqual(res.json.input[0].dims, [3, 32, 32]);
      assert.equal(res.json.input[0].data_type, "TYPE_FP32");
    });

    it("prints TYPE_STRING for BYTES tensors", async () => {
      const res = await get("/v2/models/simple_string/config");
      assert.equal(res.json.input[0].data_type, "TYPE_STRING");
      assert.deepEqual(res.json.input[0].dims, [-1]);
    });

    it("answers 400 for an unknown model's config", async () => {
      const res = await get("/v2/models/nope/config");
      assert.equal(res.status, 400);
      assert.deepEqual(res.json, { error: "Request for unknown model: 'nope' is not found" });
    });
  });

  describe("statistics", () => {
    const duration = (d: unknown) => {
      assert.deepEqual(Object.keys(d as object), ["count", "ns"]);
      const { count, ns } = d as { count: number; ns: number };
      assert.ok(Number.isInteger(count) && count >= 0 && Number.isInteger(ns) && ns >= 0);
    };

    it("counts inferences of a model in Triton's model_stats shape", async () => {
      for (let i = 0; i < 2; i++) {
        const r = await post("/v2/models/simple/infer", { inputs: simpleInputs(2) });
        assert.equal(r.status, 200);
      }
      const res = await get("/v2/models/simple/stats");
      assert.equal(res.status, 200);
      assert.deepEqual(Object.keys(res.json), ["model_stats"]);
      assert.equal(res.json.model_stats.length, 1);
      const m = res.json.model_stats[0];
      assert.deepEqual(Object.keys(m), [
        "name", "version", "last_inference", "inference_count", "execution_count",
        "inference_stats", "response_stats", "batch_stats", "memory_usage",
      ]);
      assert.equal(m.name, "simple");
      assert.equal(m.version, "1");
      assert.ok(m.last_inference > Date.now() - 60_000 && m.last_inference <= Date.now(), `last_inference ${m.last_inference} is ms since epoch`);
      assert.ok(m.inference_count >= 4, `inference_count ${m.inference_count} counts batch items`);
      assert.ok(m.execution_count >= 1 && m.execution_count <= m.inference_count);
      assert.deepEqual(Object.keys(m.inference_stats), [
        "success", "fail", "queue", "compute_input", "compute_infer", "compute_output", "cache_hit", "cache_miss",
      ]);
      for (const d of Object.values(m.inference_stats)) duration(d);
      assert.ok(m.inference_stats.success.count >= 2);
      assert.ok(m.inference_stats.success.ns > 0);
      assert.ok(m.inference_stats.compute_infer.count >= 1);
      assert.ok(Array.isArray(m.batch_stats) && m.batch_stats.length >= 1);
      for (const b of m.batch_stats) {
        assert.deepEqual(Object.keys(b), ["batch_size", "compute_input", "compute_infer", "compute_output"]);
        assert.ok(Number.isInteger(b.batch_size) && b.batch_size >= 1);
        duration(b.compute_input);
        duration(b.compute_infer);
        duration(b.compute_output);
      }
      assert.ok(m.batch_stats.some((b: { batch_size: number }) => b.batch_size === 2));
      assert.deepEqual(m.response_stats, {});
      assert.ok(Array.isArray(m.memory_usage));
    });

    it("returns every loaded model from /v2/models/stats and one version from /versions/{v}/stats", async () => {
      const all = await get("/v2/models/stats");
      assert.equal(all.status, 200);
      const names = all.json.model_stats.map((m: { name: string }) => m.name);
      for (const n of ["add_sub_fp32", "identity_fp32", "image_classifier", "simple", "simple_string", "versioned"]) {
        assert.ok(names.includes(n), `${n} missing from ${JSON.stringify(names)}`);
      }
      const one = await get("/v2/models/versioned/versions/3/stats");
      assert.equal(one.status, 200);
      assert.deepEqual(one.json.model_stats.map((m: { name: string; version: string }) => [m.name, m.version]), [["versioned", "3"]]);
      // Triton's statistics messages (tritonserver.cc), both INVALID_ARG.
      const missing = await get("/v2/models/nope/stats");
      assert.equal(missing.status, 400);
      assert.deepEqual(missing.json, { error: "requested model 'nope' is not available" });
      const version = await get("/v2/models/versioned/versions/1/stats");
      assert.equal(version.status, 400);
      assert.deepEqual(version.json, { error: "requested model version is not available for model 'versioned'" });
    });
  });

  describe("repository index", () => {
    it("lists every model with version and state", async () => {
      const res = await post("/v2/repository/index", {});
      assert.equal(res.status, 200);
      const simple = res.json.find((e: { name: string }) => e.name === "simple");
      assert.deepEqual(Object.keys(simple).slice(0, 3), ["name", "version", "state"]);
      assert.equal(simple.version, "1");
      assert.equal(simple.state, "READY");
      const versioned = res.json.filter((e: { name: string }) => e.name === "versioned");
      assert.deepEqual(versioned.map((e: { version: string }) => e.version), ["3"]);
    });

    it("accepts an empty body and {\"ready\":true}", async () => {
      const empty = await httpRequest(s.url + "/v2/repository/index", { method: "POST" });
      assert.equal(empty.status, 200);
      assert.ok(Array.isArray(empty.json));
      const ready = await post("/v2/repository/index", { ready: true });
      assert.equal(ready.status, 200);
      assert.ok(ready.json.every((e: { state: string }) => e.state === "READY"));
    });
  });

  describe("unknown paths and methods", () => {
    it("answers an unknown path with 404 {\"error\":\"Not Found\"}", async () => {
      for (const p of ["/", "/v1/models", "/v2/nothing", "/v2/models/simple/nothing", "/v2/health", "/v2/models/simple/versions/1/versions/1"]) {
        const res = await get(p);
        assert.equal(res.status, 404, p);
        assert.deepEqual(res.json, { error: "Not Found" }, p);
        assert.match(String(res.headers["content-type"]), /^application\/json/);
      }
    });

    it("answers a wrong method on a known route with 405 {\"error\":\"Method Not Allowed\"}", async () => {
      const cases: [string, string][] = [
        ["POST", "/v2/health/live"],
        ["POST", "/v2/health/ready"],
        ["DELETE", "/v2"],
        ["POST", "/v2/models/simple"],
        ["GET", "/v2/models/simple/infer"],
        ["PUT", "/v2/models/simple/infer"],
        ["POST", "/v2/models/simple/config"],
        ["GET", "/v2/repository/index"],
      ];
      for (const [method, p] of cases) {
        const res = await httpRequest(s.url + p, { method });
        assert.equal(res.status, 405, `${method} ${p}`);
        assert.deepEqual(res.json, { error: "Method Not Allowed" }, `${method} ${p}`);
      }
    });
  });

  describe("query strings", () => {
    it("ignores query parameters on every route", async () => {
      const live = await get("/v2/health/live?verbose=1");
      assert.equal(live.status, 200);
      const ready = await get("/v2/health/ready?x=y&z");
      assert.equal(ready.status, 200);
      const meta = await get("/v2?format=json");
      assert.equal(meta.json.name, "triton");
      const model = await get("/v2/models/simple?foo=bar");
      assert.equal(model.json.name, "simple");
      const version = await get("/v2/models/simple/versions/1?foo=bar");
      assert.equal(version.json.name, "simple");
      const mready = await get("/v2/models/simple/ready?a=1");
      assert.equal(mready.status, 200);
      const config = await get("/v2/models/simple/config?pretty=true");
      assert.equal(config.json.name, "simple");
      const stats = await get("/v2/models/stats?all");
      assert.ok(Array.isArray(stats.json.model_stats));
      const infer = await post("/v2/models/simple/infer?timeout=5&debug", { inputs: simpleInputs() });
      assert.equal(infer.status, 200);
      assert.deepEqual(infer.json.outputs[0].data, Array.from({ length: 16 }, (_, i) => i + 1));
      const index = await post("/v2/repository/index?x=1", {});
      assert.equal(index.status, 200);
      const notFound = await get("/v2/nothing?x=1");
      assert.equal(notFound.status, 404);
    });
  });
});
