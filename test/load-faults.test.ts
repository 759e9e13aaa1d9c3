/**
 * Models that fail while loading do not hold the server: an `initialize`
 * that hangs (js or Python) fails its load after `initialize_timeout_ms` and
 * its thread or process is ended; a model file that cannot be read fails
 * with the path named. The server starts, serves the others and says why
 * each failed model is unavailable.
 */
import assert from "node:assert/strict";
import fs from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { after, before, describe, it } from "node:test";
import { EXAMPLES, postJson, startServer, type TestServer } from "./helpers.js";
import { pythonWith, writeModel } from "./python-helpers.js";

const config = (name: string, backend: string, extra = "") => `name: "${name}"
backend: "${backend}"
max_batch_size: 0
input [ { name: "X" data_type: TYPE_INT32 dims: [ 1 ] } ]
output [ { name: "Y" data_type: TYPE_INT32 dims: [ 1 ] } ]
${extra}`;
const TIMEOUT = `parameters { key: "initialize_timeout_ms" value: { string_value: "500" } }`;

describe("load faults", () => {
  let repo: string;
  let s: TestServer;
  const python = pythonWith(["numpy"]);
  before(async () => {
    repo = await fs.mkdtemp(path.join(os.tmpdir(), "tritium-load-faults-"));
    await fs.cp(path.join(EXAMPLES, "simple"), path.join(repo, "simple"), { recursive: true });
    await writeModel(repo, "hangs_js", config("hangs_js", "js", TIMEOUT), "export default { initialize() { for (;;) {} }, execute() { return []; } };", "model.js");
    if ((await python).python) {
      await writeModel(repo, "hangs_py", config("hangs_py", "python", TIMEOUT), "import time\n\nclass TritonPythonModel:\n    def initialize(self, args):\n        time.sleep(3600)\n\n    def execute(self, requests):\n        return []\n");
    }
    // A model file that is a directory: reading it fails as a disk error would.
    await fs.cp(path.join(EXAMPLES, "simple"), path.join(repo, "unreadable"), { recursive: true });
    await fs.writeFile(path.join(repo, "unreadable", "config.pbtxt"), (await fs.readFile(path.join(repo, "simple", "config.pbtxt"), "utf8")).replace('name: "simple"', 'name: "unreadable"'));
    await fs.rm(path.join(repo, "unreadable", "1", "model.onnx"));
    await fs.mkdir(path.join(repo, "unreadable", "1", "model.onnx"));
    s = await startServer({ modelRepository: repo, strictReadiness: false });
  });
  after(async () => {
    await s?.close();
    await fs.rm(repo, { recursive: true, force: true });
  });

  const reasons = async () => {
    const r = await postJson(`${s.url}/v2/repository/index`, {});
    return Object.fromEntries((r.json as { name: string; state: string; reason: string }[]).map((m) => [m.name, m]));
  };

  it("starts and serves the healthy models", async () => {
    const r = await postJson(`${s.url}/v2/models/simple/infer`, {
      inputs: [
        { name: "INPUT0", datatype: "INT32", shape: [1, 16], data: new Array(16).fill(2) },
        { name: "INPUT1", datatype: "INT32", shape: [1, 16], data: new Array(16).fill(1) },
      ],
    });
    assert.equal(r.status, 200);
    assert.deepEqual(r.json.outputs[0].data, new Array(16).fill(3));
  });

  it("fails a js model whose initialize hangs, after initialize_timeout_ms", async () => {
    const m = (await reasons()).hangs_js;
    assert.equal(m.state, "UNAVAILABLE");
    assert.match(m.reason, /model 'hangs_js' instance '.*': initialize did not finish within 500 ms \(parameter initialize_timeout_ms\)/);
  });

  it("fails a Python model whose initialize hangs, after initialize_timeout_ms", async (t) => {
    const { skip } = await python;
    if (skip) return t.skip(skip);
    const m = (await reasons()).hangs_py;
    assert.equal(m.state, "UNAVAILABLE");
    assert.match(m.reason, /model 'hangs_py' instance '.*': failed to load '.*model\.py': initialize did not finish within 500 ms/);
  });

  it("fails a model whose file cannot be read, naming the file", async () => {
    const m = (await reasons()).unreadable;
    assert.equal(m.state, "UNAVAILABLE");
    assert.match(m.reason, /unreadable.1.model\.onnx/);
  });
});
