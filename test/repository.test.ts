/**
 * The model repository as a Triton user sees it over HTTP: auto-complete,
 * version policies, non-numeric version folders, duplicate names across
 * repositories, config syntax errors with file:line:column, models that fail
 * to load while the others serve, and strict readiness.
 */
import assert from "node:assert/strict";
import fs from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { after, before, describe, it } from "node:test";
import { Logger } from "../src/index.js";
import { EXAMPLES, FIXTURES, httpRequest, startCli, startServer, tempRepository, type CliServer, type RawResponse, type TestServer } from "./helpers.js";

const VERSIONED_CONFIG = (name: string, policy: string) => `
name: "${name}"
platform: "onnxruntime_onnx"
max_batch_size: 8
${policy}
input [ { name: "INPUT0" data_type: TYPE_INT32 dims: [ 16 ] } ]
output [ { name: "OUTPUT0" data_type: TYPE_INT32 dims: [ 16 ] } ]
instance_group [ { count: 1 kind: KIND_CPU } ]
`;

/** The ONNX model of the fixture `versioned` version v (computes INPUT0 + v). */
const versionModel = (v: number) => path.join(FIXTURES, "versioned", String(v), "model.onnx");

async function writeModel(repo: string, name: string, config: string | undefined, versions: Record<string, string>): Promise<string> {
  const dir = path.join(repo, name);
  await fs.mkdir(dir, { recursive: true });
  if (config !== undefined) await fs.writeFile(path.join(dir, "config.pbtxt"), config);
  for (const [folder, model] of Object.entries(versions)) {
    await fs.mkdir(path.join(dir, folder), { recursive: true });
    await fs.copyFile(model, path.join(dir, folder, "model.onnx"));
  }
  return dir;
}

/** A logger that keeps every line, to check what the server reported. */
function capturingLogger(): { logger: Logger; lines: string[] } {
  const lines: string[] = [];
  return { logger: new Logger({}, (l) => lines.push(l)), lines };
}

describe("model repository", () => {
  const simpleInput = (batch: number, fill = 1) => ({ name: "INPUT0", shape: [batch, 16], datatype: "INT32", data: Array(16 * batch).fill(fill) });

  describe("one repository with good, versioned and broken models (strict readiness)", () => {
    let s: TestServer;
    let repo: string;
    const get = (p: string): Promise<RawResponse> => httpRequest(s.url + p);
    const post = (p: string, body: unknown): Promise<RawResponse> =>
      httpRequest(s.url + p, { method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify(body) });
    const addN = async (model: string, version?: string): Promise<number> => {
      const url = version ? `/v2/models/${model}/versions/${version}/infer` : `/v2/models/${model}/infer`;
      const res = await post(url, { inputs: [simpleInput(1, 10)] });
      assert.equal(res.status, 200, `${model} v${version}: ${res.body.toString()}`);
      return res.json.outputs[0].data[0] - 10;
    };
    const index = async (): Promise<{ name: string; version?: string; state?: string; reason?: string }[]> => {
      const res = await post("/v2/repository/index", {});
      assert.equal(res.status, 200);
      return res.json;
    };

    before(async () => {
      repo = await tempRepository({ simple: path.join(EXAMPLES, "simple"), autocomplete_simple: path.join(FIXTURES, "autocomplete_simple") });
      const three = { "1": versionModel(1), "2": versionModel(2), "3": versionModel(3) };
      // Folders that are not versions: not numeric, or starting with 0.
      const junk = { not_a_version: versionModel(1), "07": versionModel(1), "0": versionModel(1) };
      await writeModel(repo, "versioned_default", VERSIONED_CONFIG("versioned_default", ""), { ...three, ...junk });
      await writeModel(repo, "versioned_latest2", VERSIONED_CONFIG("versioned_latest2", "version_policy: { latest: { num_versions: 2 } }"), three);
      await writeModel(repo, "versioned_all", VERSIONED_CONFIG("versioned_all", "version_policy: { all: {} }"), { ...three, ...junk });
      await writeModel(repo, "versioned_specific", VERSIONED_CONFIG("versioned_specific", "version_policy: { specific: { versions: [ 1, 3 ] } }"), three);
      // A partial config: only max_batch_size; inputs and outputs come from the model.
      await writeModel(repo, "autocomplete_partial", "max_batch_size: 2\n", { "1": path.join(EXAMPLES, "simple", "1", "model.onnx") });
      // Broken models.
      await writeModel(repo, "broken_syntax", 'name: "broken_syntax"\nplatform: "onnxruntime_onnx"\nmax_batch_size: eight\n', { "1": versionModel(1) });
      await writeModel(
        repo,
        "broken_field",
        'name: "broken_field"\nplatform: "onnxruntime_onnx"\nmax_batch_size: 8\ninput [\n  {\n    name: "INPUT0"\n    data_type: TYPE_INT32\n    dimz: [ 16 ]\n  }\n]\n',
        { "1": versionModel(1) },
      );
      await writeModel(
        repo,
        "broken_load",
        VERSIONED_CONFIG("broken_load", "").replace('name: "INPUT0"', 'name: "NOT_IN_THE_MODEL"'),
        { "1": versionModel(1) },
      );
      await writeModel(repo, "broken_no_file", VERSIONED_CONFIG("broken_no_file", ""), {});
      await fs.mkdir(path.join(repo, "broken_no_file", "1"), { recursive: true });
      s = await startServer({ modelRepository: repo });
    });
    after(async () => {
      await s?.close();
      if (repo) await fs.rm(repo, { recursive: true, force: true });
    });

    describe("auto-complete", () => {
      it("serves a model with no config.pbtxt, completed from the ONNX model", async () => {
        const meta = await get("/v2/models/autocomplete_simple");
        assert.equal(meta.status, 200, meta.body.toString());
        assert.deepEqual(meta.json, {
          name: "autocomplete_simple",
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
      });

      it("completes max_batch_size 4 (Triton's default-max-batch-size), dims [16] and a dynamic batcher", async () => {
        const res = await get("/v2/models/autocomplete_simple/config");
        assert.equal(res.status, 200);
        const c = res.json;
        assert.equal(c.name, "autocomplete_simple");
        assert.equal(c.platform, "onnxruntime_onnx");
        assert.equal(c.backend, "onnxruntime");
        assert.equal(c.max_batch_size, 4);
        assert.deepEqual(c.input.map((t: { name: string; data_type: string; dims: number[] }) => [t.name, t.data_type, t.dims]), [
          ["INPUT0", "TYPE_INT32", [16]],
          ["INPUT1", "TYPE_INT32", [16]],
        ]);
        assert.deepEqual(c.output.map((t: { name: string; dims: number[] }) => [t.name, t.dims]), [
          ["OUTPUT0", [16]],
          ["OUTPUT1", [16]],
        ]);
        assert.ok(c.dynamic_batching, "auto-complete turns on dynamic batching when max_batch_size > 1");
        assert.deepEqual(c.dynamic_batching.preferred_batch_size, [4]);
        assert.equal(c.instance_group[0].kind, "KIND_CPU");
        assert.equal(c.instance_group[0].count, 2);
        assert.equal(c.default_model_filename, "model.onnx");
      });

      it("infers on the completed model and enforces the completed max_batch_size", async () => {
        const ok = await post("/v2/models/autocomplete_simple/infer", {
          inputs: [simpleInput(4, 3), { ...simpleInput(4, 1), name: "INPUT1" }],
        });
        assert.equal(ok.status, 200, ok.body.toString());
        assert.deepEqual(ok.json.outputs[0].data, Array(64).fill(4));
        const tooBig = await post("/v2/models/autocomplete_simple/infer", {
          inputs: [simpleInput(5), { ...simpleInput(5), name: "INPUT1" }],
        });
        assert.equal(tooBig.status, 400);
        assert.equal(tooBig.json.error, "[request id: <id_unknown>] inference request batch-size must be <= 4 for 'autocomplete_simple'");
      });

      it("completes a partial config and keeps what it sets", async () => {
        const res = await get("/v2/models/autocomplete_partial/config");
        assert.equal(res.status, 200, res.body.toString());
        assert.equal(res.json.name, "autocomplete_partial");
        assert.equal(res.json.max_batch_size, 2);
        assert.deepEqual(res.json.input.map((t: { name: string }) => t.name), ["INPUT0", "INPUT1"]);
        assert.deepEqual(res.json.input[0].dims, [16]);
      });
    });

    describe("version policies", () => {
      it("serves only the latest version by default", async () => {
        const meta = await get("/v2/models/versioned_default");
        assert.deepEqual(meta.json.versions, ["3"]);
        assert.equal(await addN("versioned_default"), 3);
        assert.equal(await addN("versioned_default", "3"), 3);
        const old = await post("/v2/models/versioned_default/versions/2/infer", { inputs: [simpleInput(1)] });
        assert.equal(old.status, 404);
        assert.equal(old.json.error, "Request for unknown model: 'versioned_default' version 2 is not found");
        const config = await get("/v2/models/versioned_default/config");
        assert.deepEqual(config.json.version_policy, { latest: { num_versions: 1 } });
      });

      it("serves the two latest versions with latest { num_versions: 2 }, the newest by default", async () => {
        const meta = await get("/v2/models/versioned_latest2");
        assert.deepEqual(meta.json.versions, ["2", "3"]);
        assert.equal(await addN("versioned_latest2"), 3);
        assert.equal(await addN("versioned_latest2", "2"), 2);
        assert.equal(await addN("versioned_latest2", "3"), 3);
        const v1 = await get("/v2/models/versioned_latest2/versions/1/ready");
        assert.equal(v1.status, 400);
        assert.deepEqual(v1.json, { error: "Model version not ready" });
      });

      it("serves every version with all {}", async () => {
        const meta = await get("/v2/models/versioned_all");
        assert.deepEqual(meta.json.versions, ["1", "2", "3"]);
        for (const v of [1, 2, 3]) assert.equal(await addN("versioned_all", String(v)), v);
        assert.equal(await addN("versioned_all"), 3);
        for (const v of ["1", "2", "3"]) {
          const ready = await get(`/v2/models/versioned_all/versions/${v}/ready`);
          assert.equal(ready.status, 200);
        }
      });

      it("serves exactly the listed versions with specific { versions: [1, 3] } and prints them as numbers", async () => {
        const meta = await get("/v2/models/versioned_specific");
        assert.deepEqual(meta.json.versions, ["1", "3"]);
        assert.equal(await addN("versioned_specific", "1"), 1);
        assert.equal(await addN("versioned_specific", "3"), 3);
        const v2 = await post("/v2/models/versioned_specific/versions/2/infer", { inputs: [simpleInput(1)] });
        assert.equal(v2.status, 404);
        const config = await get("/v2/models/versioned_specific/config");
        assert.deepEqual(config.json.version_policy, { specific: { versions: [1, 3] } });
      });

      it("ignores version folders that are not numeric or start with 0", async () => {
        const entries = (await index()).filter((e) => e.name === "versioned_all" || e.name === "versioned_default");
        assert.deepEqual(entries.map((e) => `${e.name}:${e.version}`), [
          "versioned_all:1", "versioned_all:2", "versioned_all:3", "versioned_default:3",
        ]);
        const seven = await get("/v2/models/versioned_all/versions/7");
        assert.equal(seven.status, 404);
        const zero = await get("/v2/models/versioned_all/versions/0");
        assert.equal(zero.status, 404);
      });
    });

    describe("models that fail to load", () => {
      it("reports a config.pbtxt syntax error with file:line:column in the repository index", async () => {
        const entry = (await index()).find((e) => e.name === "broken_syntax");
        assert.ok(entry, "broken_syntax is listed");
        assert.equal(entry.state, "UNAVAILABLE");
        const file = path.join(repo, "broken_syntax", "config.pbtxt");
        // Line 3 is `max_batch_size: eight`; the bad token starts at column 17.
        assert.ok(entry.reason?.includes(`${file}:3:17`), entry.reason);
      });

      it("reports an unknown field with its line and name", async () => {
        const entry = (await index()).find((e) => e.name === "broken_field");
        assert.equal(entry?.state, "UNAVAILABLE");
        const file = path.join(repo, "broken_field", "config.pbtxt");
        assert.ok(entry?.reason?.includes(`${file}:8:5`), entry?.reason);
        assert.match(entry!.reason!, /dimz/);
      });

      it("reports a config that does not match the model, naming the tensor", async () => {
        const entry = (await index()).find((e) => e.name === "broken_load");
        assert.equal(entry?.state, "UNAVAILABLE");
        assert.match(entry!.reason!, /NOT_IN_THE_MODEL/);
      });

      it("reports a version folder without a model file", async () => {
        const entry = (await index()).find((e) => e.name === "broken_no_file");
        assert.equal(entry?.state, "UNAVAILABLE");
        assert.match(entry!.reason!, /model\.onnx/);
      });

      it("answers requests for a broken model with an error, not a crash", async () => {
        for (const name of ["broken_syntax", "broken_field", "broken_load", "broken_no_file"]) {
          const ready = await get(`/v2/models/${name}/ready`);
          assert.equal(ready.status, 400, `${name} ready → ${ready.status}`);
          assert.deepEqual(ready.json, { error: "Model version not ready" });
          const infer = await post(`/v2/models/${name}/infer`, { inputs: [simpleInput(1)] });
          assert.ok(infer.status === 400 || infer.status === 404 || infer.status === 503, `${name} infer → ${infer.status}`);
          assert.match(infer.json.error, new RegExp(`'${name}'`));
        }
      });

      it("keeps serving every other model", async () => {
        const res = await post("/v2/models/simple/infer", { inputs: [simpleInput(1, 2), { ...simpleInput(1, 3), name: "INPUT1" }] });
        assert.equal(res.status, 200);
        assert.deepEqual(res.json.outputs[0].data, Array(16).fill(5));
        const ready = (await index()).filter((e) => e.state === "READY").map((e) => e.name);
        for (const n of ["simple", "autocomplete_simple", "autocomplete_partial", "versioned_default", "versioned_all"]) assert.ok(ready.includes(n), n);
      });

      it("is live but not ready under strict readiness", async () => {
        assert.equal((await get("/v2/health/live")).status, 200);
        const ready = await get("/v2/health/ready");
        assert.equal(ready.status, 400);
        assert.equal(ready.body.byteLength, 0);
      });
    });
  });

  describe("with auto-complete disabled and strict readiness off", () => {
    let s: TestServer;
    let repo: string;
    before(async () => {
      repo = await tempRepository({ simple: path.join(EXAMPLES, "simple"), autocomplete_simple: path.join(FIXTURES, "autocomplete_simple") });
      s = await startServer({ modelRepository: repo, autoCompleteConfig: false, strictReadiness: false });
    });
    after(async () => {
      await s?.close();
      if (repo) await fs.rm(repo, { recursive: true, force: true });
    });

    it("fails the model without config.pbtxt and says why", async () => {
      const res = await httpRequest(s.url + "/v2/repository/index", { method: "POST" });
      const entry = res.json.find((e: { name: string }) => e.name === "autocomplete_simple");
      assert.equal(entry.state, "UNAVAILABLE");
      assert.match(entry.reason, /auto-complete|config/i);
      const meta = await httpRequest(s.url + "/v2/models/autocomplete_simple");
      assert.ok(meta.status === 404 || meta.status === 400, String(meta.status));
    });

    it("serves the other models", async () => {
      const res = await httpRequest(s.url + "/v2/models/simple/ready");
      assert.equal(res.status, 200);
    });

    it("reports ready with --strict-readiness=false although a model failed", async () => {
      const res = await httpRequest(s.url + "/v2/health/ready");
      assert.equal(res.status, 200);
      assert.equal(res.body.byteLength, 0);
    });
  });

  describe("the same model name in two repositories", () => {
    let s: TestServer;
    let a: string;
    let b: string;
    let lines: string[];
    before(async () => {
      a = await tempRepository({ simple: path.join(EXAMPLES, "simple"), identity_fp32: path.join(EXAMPLES, "identity_fp32") });
      b = await tempRepository({ simple: path.join(EXAMPLES, "simple") });
      const cap = capturingLogger();
      lines = cap.lines;
      s = await startServer({ modelRepository: [a, b], logger: cap.logger });
    });
    after(async () => {
      await s?.close();
      await Promise.all([a, b].map((d) => fs.rm(d, { recursive: true, force: true })));
    });

    it("logs an error naming the model and both paths", () => {
      const errors = lines.filter((l) => l.startsWith("E"));
      const line = errors.find((l) => l.includes("simple"));
      assert.ok(line, `no error about 'simple' in:\n${lines.join("")}`);
      assert.ok(line.includes(path.join(a, "simple")), line);
      assert.ok(line.includes(path.join(b, "simple")), line);
    });

    it("serves neither copy", async () => {
      const res = await httpRequest(s.url + "/v2/models/simple/infer", {
        method: "POST",
        headers: { "Content-Type": "application/json" },
        body: JSON.stringify({ inputs: [simpleInput(1), { ...simpleInput(1), name: "INPUT1" }] }),
      });
      assert.ok(res.status === 400 || res.status === 404, String(res.status));
      assert.match(res.json.error, /'simple'/);
    });

    it("serves the other models", async () => {
      const res = await httpRequest(s.url + "/v2/models/identity_fp32/infer", {
        method: "POST",
        headers: { "Content-Type": "application/json" },
        body: JSON.stringify({ inputs: [{ name: "INPUT0", shape: [1, 2], datatype: "FP32", data: [1, 2] }] }),
      });
      assert.equal(res.status, 200);
      assert.deepEqual(res.json.outputs[0].data, [1, 2]);
    });
  });

  describe("the CLI with --disable-auto-complete-config and two --model-repository flags", () => {
    let cli: CliServer;
    let a: string;
    let b: string;
    before(async () => {
      a = await tempRepository({ simple: path.join(EXAMPLES, "simple") });
      b = await tempRepository({ autocomplete_simple: path.join(FIXTURES, "autocomplete_simple") });
      cli = await startCli([
        "--model-repository", a, "--model-repository", b, "--disable-auto-complete-config",
        "--http-address", "127.0.0.1", "--http-port", "0", "--allow-grpc", "false", "--allow-metrics", "false",
      ]);
    });
    after(async () => {
      if (cli) assert.equal(await cli.stop(), 0, cli.output());
      await Promise.all([a, b].filter(Boolean).map((d) => fs.rm(d, { recursive: true, force: true })));
    });

    it("fails the config-less model, serves the other, and is not ready (strict readiness is the default)", async () => {
      const index = await httpRequest(`${cli.url}/v2/repository/index`, { method: "POST", agent: false });
      const entry = index.json.find((e: { name: string }) => e.name === "autocomplete_simple");
      assert.equal(entry.state, "UNAVAILABLE", cli.output());
      assert.equal((await httpRequest(`${cli.url}/v2/models/simple/ready`, { agent: false })).status, 200);
      assert.equal((await httpRequest(`${cli.url}/v2/health/ready`, { agent: false })).status, 400);
      assert.equal((await httpRequest(`${cli.url}/v2/health/live`, { agent: false })).status, 200);
    });

    it("logs the model table with the failure reason", () => {
      const out = cli.output();
      assert.match(out, /\| Model\s+\| Version\s+\| Status/);
      assert.match(out, /\| autocomplete_simple\s+\|.*UNAVAILABLE/);
      assert.match(out, /\| simple\s+\| 1\s+\| READY/);
    });
  });

  describe("a repository path that does not exist", () => {
    it("fails start-up with a message naming the path", async () => {
      const missing = path.join(os.tmpdir(), `tritium-missing-${process.pid}-${Date.now()}`);
      await assert.rejects(startServer({ modelRepository: missing }), (e: Error) => e.message.includes(missing));
    });
  });
});
