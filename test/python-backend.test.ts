/**
 * Triton's Python backend: `model.py` files with `class TritonPythonModel`,
 * each instance a python3 process, served over real HTTP. Skipped, with the
 * reason printed, where python3 with numpy is not installed.
 */
import assert from "node:assert/strict";
import fs from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { after, before, describe, it } from "node:test";
import { pythonWith, writeModel } from "./python-helpers.js";
import { bytesElements, postBinary, postJson, splitBinaryResponse, startServer, type TestServer } from "./helpers.js";

const { skip } = await pythonWith(["numpy"]);
if (skip) console.log(`# skipping the Python backend tests: ${skip}`);

const MODEL = `
import json, os
import numpy as np
import triton_python_backend_utils as pb_utils

class TritonPythonModel:
    def initialize(self, args):
        self.args = args
        self.marker = json.loads(args["model_config"])["parameters"]["marker"]["string_value"]

    def execute(self, requests):
        responses = []
        for request in requests:
            a = pb_utils.get_input_tensor_by_name(request, "INPUT0").as_numpy()
            b = pb_utils.get_input_tensor_by_name(request, "INPUT1").as_numpy()
            if a.flat[0] == -2:
                os._exit(3)
            if a.flat[0] == -3:
                raise pb_utils.TritonModelException("asked to fail")
            if a.flat[0] == -4:
                responses.append(pb_utils.InferenceResponse(error=pb_utils.TritonError("this request only")))
                continue
            responses.append(pb_utils.InferenceResponse(output_tensors=[
                pb_utils.Tensor("SUM", (a + b).astype(np.int32)),
                pb_utils.Tensor("ARGS", np.array([[json.dumps(self.args).encode()]] * a.shape[0], dtype=np.object_)),
            ]))
        return responses

    def finalize(self):
        with open(self.marker, "w") as f:
            f.write("finalized")
`;

const CONFIG = (marker: string) => `
name: "add_py"
backend: "python"
max_batch_size: 8
input [ { name: "INPUT0" data_type: TYPE_INT32 dims: [ 4 ] }, { name: "INPUT1" data_type: TYPE_INT32 dims: [ 4 ] } ]
output [ { name: "SUM" data_type: TYPE_INT32 dims: [ 4 ] }, { name: "ARGS" data_type: TYPE_STRING dims: [ 1 ] } ]
dynamic_batching { max_queue_delay_microseconds: 5000 }
parameters { key: "marker" value: { string_value: "${marker}" } }
`;

const STRINGS = `
import numpy as np
import triton_python_backend_utils as pb_utils

class TritonPythonModel:
    def execute(self, requests):
        out = []
        for r in requests:
            text = pb_utils.get_input_tensor_by_name(r, "TEXT").as_numpy()
            rev = np.array([e[::-1] for e in text.reshape(-1)], dtype=np.object_).reshape(text.shape)
            out.append(pb_utils.InferenceResponse([pb_utils.Tensor("REVERSED", rev)]))
        return out
`;

/** Calls add_py three times in a loop (BLS), then a model that does not exist. */
const BLS = `
import numpy as np
import triton_python_backend_utils as pb_utils

class TritonPythonModel:
    def execute(self, requests):
        out = []
        for r in requests:
            x = np.array([[1, 2, 3, 4]], dtype=np.int32)
            for _ in range(int(pb_utils.get_input_tensor_by_name(r, "N").as_numpy()[0])):
                res = pb_utils.InferenceRequest(
                    model_name="add_py", requested_output_names=["SUM"],
                    inputs=[pb_utils.Tensor("INPUT0", x), pb_utils.Tensor("INPUT1", np.full((1, 4), 10, dtype=np.int32))],
                ).exec()
                if res.has_error():
                    raise pb_utils.TritonModelException(res.error().message())
                x = pb_utils.get_output_tensor_by_name(res, "SUM").as_numpy()
            missing = pb_utils.InferenceRequest(model_name="no_such_model", requested_output_names=[], inputs=[]).exec()
            out.append(pb_utils.InferenceResponse([
                pb_utils.Tensor("TOTAL", x.reshape(4)),
                pb_utils.Tensor("ERROR", np.array([missing.error().message().encode()], dtype=np.object_)),
            ]))
        return out
`;

/** Decoupled: N = n gives n responses OUT = n, n-1, ..., 1 and then the final flag alone; N = -1 raises after one. */
const COUNTDOWN = `
import numpy as np
import triton_python_backend_utils as pb_utils

class TritonPythonModel:
    def execute(self, requests):
        for r in requests:
            sender = r.get_response_sender()
            n = int(pb_utils.get_input_tensor_by_name(r, "N").as_numpy()[0])
            if n == -1:
                sender.send(pb_utils.InferenceResponse([pb_utils.Tensor("OUT", np.array([42], dtype=np.int32))]))
                raise pb_utils.TritonModelException("broke after one response")
            for i in range(n, 0, -1):
                sender.send(pb_utils.InferenceResponse([pb_utils.Tensor("OUT", np.array([i], dtype=np.int32))]))
            sender.send(flags=pb_utils.TRITONSERVER_RESPONSE_COMPLETE_FINAL)
        return None
`;

const body = (a: number[], b: number[], outputs = [{ name: "SUM" }]) => ({
  inputs: [
    { name: "INPUT0", datatype: "INT32", shape: [1, 4], data: a },
    { name: "INPUT1", datatype: "INT32", shape: [1, 4], data: b },
  ],
  outputs,
});

describe("python backend", { skip, timeout: 120_000 }, () => {
  let repo: string;
  let s: TestServer;
  let marker: string;

  before(async () => {
    repo = await fs.mkdtemp(path.join(os.tmpdir(), "tritium-py-"));
    marker = path.join(repo, "finalized.txt");
    const write = (name: string, config: string, code: string) => writeModel(repo, name, config, code);
    await write("add_py", CONFIG(marker), MODEL);
    await write("strings_py", `name: "strings_py"\nbackend: "python"\nmax_batch_size: 0\ninput [ { name: "TEXT" data_type: TYPE_STRING dims: [ -1 ] } ]\noutput [ { name: "REVERSED" data_type: TYPE_STRING dims: [ -1 ] } ]\n`, STRINGS);
    await write("broken_py", `name: "broken_py"\nbackend: "python"\nmax_batch_size: 0\ninput [ { name: "X" data_type: TYPE_INT32 dims: [ 1 ] } ]\noutput [ { name: "Y" data_type: TYPE_INT32 dims: [ 1 ] } ]\n`,
      "class TritonPythonModel:\n    def initialize(self, args):\n        raise RuntimeError('no weights here')\n");
    await write("bls_py", `name: "bls_py"\nbackend: "python"\nmax_batch_size: 0\ninput [ { name: "N" data_type: TYPE_INT32 dims: [ 1 ] } ]\noutput [ { name: "TOTAL" data_type: TYPE_INT32 dims: [ 4 ] }, { name: "ERROR" data_type: TYPE_STRING dims: [ 1 ] } ]\n`, BLS);
    await write("countdown_py", `name: "countdown_py"\nbackend: "python"\nmax_batch_size: 0\nmodel_transaction_policy { decoupled: true }\ninput [ { name: "N" data_type: TYPE_INT32 dims: [ 1 ] } ]\noutput [ { name: "OUT" data_type: TYPE_INT32 dims: [ 1 ] } ]\n`, COUNTDOWN);
    s = await startServer({ modelRepository: repo, strictReadiness: false });
  });
  after(async () => {
    await s?.close();
    if (repo) await fs.rm(repo, { recursive: true, force: true });
  });

  it("answers 32 concurrent requests, batched by the dynamic batcher, each with its own values", async () => {
    const answers = await Promise.all(Array.from({ length: 32 }, (_, k) => postJson(`${s.url}/v2/models/add_py/infer`, body([k, k, k, k], [1, 2, 3, 4]))));
    for (const [k, r] of answers.entries()) {
      assert.equal(r.status, 200, JSON.stringify(r.json));
      assert.deepEqual(r.json.outputs, [{ name: "SUM", datatype: "INT32", shape: [1, 4], data: [k + 1, k + 2, k + 3, k + 4] }]);
    }
    const stats = (await (await fetch(`${s.url}/v2/models/add_py/stats`)).json()) as { model_stats: { execution_count: number; inference_count: number }[] };
    assert.equal(Number(stats.model_stats[0]!.inference_count), 32);
    assert.ok(Number(stats.model_stats[0]!.execution_count) < 32, "batched");
  });

  it("gives initialize Triton's args", async () => {
    const r = await postJson(`${s.url}/v2/models/add_py/infer`, body([1, 1, 1, 1], [0, 0, 0, 0], [{ name: "ARGS" }]));
    assert.equal(r.status, 200, JSON.stringify(r.json));
    const args = JSON.parse(r.json.outputs[0].data[0]);
    assert.deepEqual(Object.keys(args).sort(), ["model_config", "model_instance_device_id", "model_instance_kind", "model_instance_name", "model_name", "model_repository", "model_version"]);
    assert.equal(args.model_name, "add_py");
    assert.equal(args.model_instance_kind, "CPU");
    assert.equal(args.model_repository, path.join(repo, "add_py"));
  });

  it("passes BYTES as numpy object arrays of bytes, NUL bytes included", async () => {
    const data = bytesElements(["abc", "a\u0000b", ""]);
    const res = await postBinary(`${s.url}/v2/models/strings_py/infer`, { inputs: [{ name: "TEXT", datatype: "BYTES", shape: [3], parameters: { binary_data_size: data.byteLength } }], outputs: [{ name: "REVERSED", parameters: { binary_data: true } }] }, [data]);
    assert.equal(res.status, 200, res.body.toString());
    assert.ok(splitBinaryResponse(res).binary.get("REVERSED")!.equals(bytesElements(["cba", "b\u0000a", ""])));
  });

  it("fails one request's error response alone, and a raised exception fails its batch with its message", async () => {
    const [bad, good] = await Promise.all([
      postJson(`${s.url}/v2/models/add_py/infer`, body([-4, 0, 0, 0], [0, 0, 0, 0])),
      postJson(`${s.url}/v2/models/add_py/infer`, body([5, 5, 5, 5], [0, 0, 0, 0])),
    ]);
    assert.equal(bad.status, 500);
    assert.match(bad.json.error, /model 'add_py' instance 'add_py_0_0': this request only/);
    assert.equal(good.status, 200);
    const raised = await postJson(`${s.url}/v2/models/add_py/infer`, body([-3, 0, 0, 0], [0, 0, 0, 0]));
    assert.equal(raised.status, 500);
    assert.match(raised.json.error, /asked to fail/);
  });

  it("fails the batch of a process that dies and serves the next request on a new one", async () => {
    const gone = await postJson(`${s.url}/v2/models/add_py/infer`, body([-2, 0, 0, 0], [0, 0, 0, 0]));
    assert.equal(gone.status, 500);
    assert.match(gone.json.error, /model 'add_py' instance 'add_py_0_0': the model process exited unexpectedly \(exit code 3\)/);
    const ok = await postJson(`${s.url}/v2/models/add_py/infer`, body([2, 2, 2, 2], [1, 1, 1, 1]));
    assert.equal(ok.status, 200, JSON.stringify(ok.json));
    assert.deepEqual(ok.json.outputs[0].data, [3, 3, 3, 3]);
  });

  it("lets a model call other models with InferenceRequest.exec() (BLS), errors in the response", async () => {
    const r = await postJson(`${s.url}/v2/models/bls_py/infer`, { inputs: [{ name: "N", datatype: "INT32", shape: [1], data: [3] }] });
    assert.equal(r.status, 200, JSON.stringify(r.json));
    assert.deepEqual(r.json.outputs[0].data, [31, 32, 33, 34]);
    assert.equal(r.json.outputs[1].data[0], "Request for unknown model: 'no_such_model' is not found");
  });

  it("streams a decoupled model's responses from its response sender, an error raised after one of them last", async () => {
    const stream = async (n: number) => {
      const got: string[] = [];
      await s.core.stream({ model_name: "countdown_py", inputs: [{ name: "N", datatype: "INT32", shape: [1], data: new Uint8Array(new Int32Array([n]).buffer) }] }, (r, final) => {
        if (r === undefined) got.push(`(none)${final ? " final" : ""}`);
        else if (r instanceof Error) got.push(`error ${r.message}${final ? " final" : ""}`);
        else got.push(`${new Int32Array(r.outputs[0]!.data.slice().buffer)[0]}${final ? " final" : ""}`);
      });
      return got;
    };
    assert.deepEqual(await stream(3), ["3", "2", "1", "(none) final"]);
    assert.deepEqual(await stream(0), ["(none) final"]);
    const failed = await stream(-1);
    assert.equal(failed[0], "42");
    assert.match(failed[1]!, /^error .*broke after one response final$/);
  });

  it("refuses to load a model whose initialize raises, with its message", async () => {
    const index = (await postJson(`${s.url}/v2/repository/index`, {})).json as { name: string; state: string; reason: string }[];
    const broken = index.find((m) => m.name === "broken_py")!;
    assert.equal(broken.state, "UNAVAILABLE");
    assert.match(broken.reason, /model 'broken_py' instance 'broken_py_0_0': failed to load '.*model\.py': RuntimeError: no weights here/);
  });

  it("runs finalize when the model is unloaded", async () => {
    await s.close();
    assert.equal(await fs.readFile(marker, "utf8"), "finalized");
    s = await startServer({ modelRepository: repo, strictReadiness: false });
  });
});
