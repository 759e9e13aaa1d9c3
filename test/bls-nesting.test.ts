/**
 * BLS nesting: a model may call itself or a model that calls it back, as
 * deep as its instances allow; calls nested deeper than --bls-max-depth, and
 * calls that would wait for their own caller's instance, fail at once with
 * the chain of models named, in the js and the Python backends alike.
 */
import assert from "node:assert/strict";
import fs from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { after, before, describe, it } from "node:test";
import { postJson, startServer, type TestServer } from "./helpers.js";
import { pythonWith, writeModel } from "./python-helpers.js";

/** N > 0: asks itself for N - 1 and answers that plus one; so DEPTH = N, reached through N nested calls. */
const COUNTDOWN_JS = `
export default class {
  initialize(args, services) { this.services = services; this.name = args.model_name; }
  async execute(requests) {
    const out = [];
    for (const r of requests) {
      const n = r.inputs.N.data[0];
      let depth = 0;
      if (n > 0) {
        const res = await this.services.infer({ model_name: this.name, inputs: [{ name: "N", datatype: "INT32", shape: [1], data: [n - 1] }] });
        depth = res.DEPTH.data[0] + 1;
      }
      out.push({ outputs: { DEPTH: { shape: [1], data: [depth] } } });
    }
    return out;
  }
}`;

const countdownConfig = (name: string, backend: string, instances: number) => `
name: "${name}"
backend: "${backend}"
max_batch_size: 0
input [ { name: "N" data_type: TYPE_INT32 dims: [ 1 ] } ]
output [ { name: "DEPTH" data_type: TYPE_INT32 dims: [ 1 ] } ]
instance_group [ { kind: KIND_CPU count: ${instances} } ]
`;

const COUNTDOWN_PY = `
import numpy as np
import triton_python_backend_utils as pb_utils

class TritonPythonModel:
    def initialize(self, args):
        self.name = args["model_name"]

    def execute(self, requests):
        responses = []
        for r in requests:
            n = int(pb_utils.get_input_tensor_by_name(r, "N").as_numpy()[0])
            depth = 0
            if n > 0:
                inner = pb_utils.InferenceRequest(model_name=self.name, requested_output_names=["DEPTH"],
                                                  inputs=[pb_utils.Tensor("N", np.array([n - 1], dtype=np.int32))]).exec()
                if inner.has_error():
                    raise pb_utils.TritonModelException(inner.error().message())
                depth = int(pb_utils.get_output_tensor_by_name(inner, "DEPTH").as_numpy()[0]) + 1
            responses.append(pb_utils.InferenceResponse([pb_utils.Tensor("DEPTH", np.array([depth], dtype=np.int32))]))
        return responses
`;

const ask = (s: TestServer, model: string, n: number) =>
  postJson(`${s.url}/v2/models/${model}/infer`, { inputs: [{ name: "N", datatype: "INT32", shape: [1], data: [n] }] });

describe("BLS nesting", () => {
  let repo: string;
  let s: TestServer;
  const python = pythonWith(["numpy"]);

  before(async () => {
    repo = await fs.mkdtemp(path.join(os.tmpdir(), "tritium-bls-nesting-"));
    await writeModel(repo, "countdown_js", countdownConfig("countdown_js", "js", 5), COUNTDOWN_JS, "model.js");
    await writeModel(repo, "lonely_js", countdownConfig("lonely_js", "js", 1), COUNTDOWN_JS, "model.js");
    const { python: interpreter } = await python;
    if (interpreter) {
      await writeModel(repo, "lonely_py", countdownConfig("lonely_py", "python", 1), COUNTDOWN_PY);
      await writeModel(repo, "countdown_py", countdownConfig("countdown_py", "python", 3), COUNTDOWN_PY);
    }
    s = await startServer({ modelRepository: repo, blsMaxDepth: 3 });
  });
  after(async () => {
    await s?.close();
    await fs.rm(repo, { recursive: true, force: true });
  });

  it("lets a model call itself as deep as --bls-max-depth while it has instances free", async () => {
    const r = await ask(s, "countdown_js", 3);
    assert.equal(r.status, 200, JSON.stringify(r.json));
    assert.deepEqual(r.json.outputs[0].data, [3]);
  });

  it("fails calls nested deeper than --bls-max-depth, naming the chain", async () => {
    const r = await ask(s, "countdown_js", 4);
    assert.equal(r.status, 500);
    assert.match(r.json.error, /BLS calls nest deeper than --bls-max-depth=3: 'countdown_js' -> 'countdown_js' -> 'countdown_js' -> 'countdown_js' -> 'countdown_js'/);
    // The failure freed every instance it held: the model still answers.
    assert.deepEqual((await ask(s, "countdown_js", 2)).json.outputs[0].data, [2]);
  });

  it("fails at once, not at execute_timeout_ms, a js model calling itself on its only instance", async () => {
    const t0 = Date.now();
    const r = await ask(s, "lonely_js", 1);
    assert.equal(r.status, 500);
    assert.match(r.json.error, /model 'lonely_js' cannot run this BLS request: all 1 of its instances are waiting for it \('lonely_js' -> 'lonely_js'\)/);
    assert.ok(Date.now() - t0 < 5000, `answered in ${Date.now() - t0} ms`);
    assert.deepEqual((await ask(s, "lonely_js", 0)).json.outputs[0].data, [0]);
  });

  it("counts a Python model's instances the same way", async (t) => {
    const { skip } = await python;
    if (skip) return t.skip(skip);
    const ok = await ask(s, "countdown_py", 2);
    assert.equal(ok.status, 200, JSON.stringify(ok.json));
    assert.deepEqual(ok.json.outputs[0].data, [2]);
    const deep = await ask(s, "countdown_py", 3);
    assert.equal(deep.status, 500);
    assert.match(deep.json.error, /all 3 of its instances are waiting for it/);
    const lonely = await ask(s, "lonely_py", 1);
    assert.equal(lonely.status, 500);
    assert.match(lonely.json.error, /model 'lonely_py' cannot run this BLS request: all 1 of its instances are waiting for it/);
  });
});
