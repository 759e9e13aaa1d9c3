/**
 * What a Python model can get wrong, and what the server does about it: a
 * model that never returns (execute_timeout_ms), wrong output datatypes and
 * shapes, the wrong number of responses, an interpreter that crashes; and
 * what must hold under size and state: 4 MiB tensors through shared memory
 * (with nothing left behind in /dev/shm), a sequence model keeping state per
 * sequence id. Skipped, with the reason printed, where no python3 has numpy.
 */
import assert from "node:assert/strict";
import fs from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { after, before, describe, it } from "node:test";
import { shmDir } from "../src/backends/process-host/shm-files.js";
import { bytesOf, postBinary, postJson, splitBinaryResponse, startServer, type TestServer } from "./helpers.js";
import { pythonWith, writeModel } from "./python-helpers.js";

const { skip } = await pythonWith(["numpy"]);
if (skip) console.log(`# skipping the Python backend fault tests: ${skip}`);

/** X[0] picks the fault: 1 hangs, 2 float64 output, 3 wrong shape, 4 two responses for one request, 5 segfault; else Y = X * 2. */
const FAULTY = `
import ctypes, time
import numpy as np
import triton_python_backend_utils as pb_utils

class TritonPythonModel:
    def execute(self, requests):
        x = pb_utils.get_input_tensor_by_name(requests[0], "X").as_numpy()
        fault = float(x.flat[0])
        if fault == 1:
            time.sleep(3600)
        if fault == 5:
            ctypes.string_at(0)
        if fault == 2:
            return [pb_utils.InferenceResponse([pb_utils.Tensor("Y", x.astype(np.float64))])]
        if fault == 3:
            return [pb_utils.InferenceResponse([pb_utils.Tensor("Y", np.zeros((2, 3), dtype=np.float32))])]
        y = [pb_utils.InferenceResponse([pb_utils.Tensor("Y", (pb_utils.get_input_tensor_by_name(r, "X").as_numpy() * 2).astype(np.float32))]) for r in requests]
        return y + y if fault == 4 else y
`;

/** Adds each request's X to the total of its sequence; START resets it. */
const ACCUMULATE = `
import numpy as np
import triton_python_backend_utils as pb_utils

class TritonPythonModel:
    def initialize(self, args):
        self.totals = {}

    def execute(self, requests):
        out = []
        for r in requests:
            key = r.correlation_id()
            if pb_utils.get_input_tensor_by_name(r, "START").as_numpy().flat[0]:
                self.totals[key] = 0
            self.totals[key] = self.totals.get(key, 0) + int(pb_utils.get_input_tensor_by_name(r, "X").as_numpy().flat[0])
            out.append(pb_utils.InferenceResponse([pb_utils.Tensor("TOTAL", np.array([[self.totals[key]]], dtype=np.int32))]))
        return out
`;

describe("python backend faults", { skip, timeout: 120_000 }, () => {
  let repo: string;
  let s: TestServer;

  before(async () => {
    repo = await fs.mkdtemp(path.join(os.tmpdir(), "tritium-pyfault-"));
    await writeModel(repo, "faulty_py", `name: "faulty_py"\nbackend: "python"\nmax_batch_size: 0\ninput [ { name: "X" data_type: TYPE_FP32 dims: [ -1 ] } ]\noutput [ { name: "Y" data_type: TYPE_FP32 dims: [ -1 ] } ]\nparameters { key: "execute_timeout_ms" value: { string_value: "1500" } }\n`, FAULTY);
    await writeModel(repo, "accumulate_py", `name: "accumulate_py"
backend: "python"
max_batch_size: 4
input [ { name: "X" data_type: TYPE_INT32 dims: [ 1 ] } ]
output [ { name: "TOTAL" data_type: TYPE_INT32 dims: [ 1 ] } ]
sequence_batching {
  max_sequence_idle_microseconds: 5000000
  control_input [ { name: "START" control [ { kind: CONTROL_SEQUENCE_START int32_false_true: [ 0, 1 ] } ] } ]
}
`, ACCUMULATE);
    s = await startServer({ modelRepository: repo, strictReadiness: false });
  });
  after(async () => {
    await s?.close();
    if (repo) await fs.rm(repo, { recursive: true, force: true });
  });

  const infer = (x: number[]) => postJson(`${s.url}/v2/models/faulty_py/infer`, { inputs: [{ name: "X", datatype: "FP32", shape: [x.length], data: x }] });

  it("fails a batch that runs past execute_timeout_ms, and serves the next request from a new process", async () => {
    const t0 = Date.now();
    const hung = await infer([1]);
    assert.equal(hung.status, 500);
    assert.match(hung.json.error, /model 'faulty_py' instance 'faulty_py_0_0': execute did not finish within 1500 ms \(execute_timeout_ms\); the instance is restarted/);
    assert.ok(Date.now() - t0 < 10_000);
    const ok = await infer([3.5]);
    assert.equal(ok.status, 200, JSON.stringify(ok.json));
    assert.deepEqual(ok.json.outputs[0].data, [7]);
  });

  it("refuses an output whose datatype or shape is not the configuration's, naming the model and output", async () => {
    const dtype = await infer([2]);
    assert.equal(dtype.status, 500);
    assert.match(dtype.json.error, /model 'faulty_py': output 'Y' has datatype FP64, but the model configuration declares FP32/);
    const shape = await infer([3]);
    assert.equal(shape.status, 500);
    assert.match(shape.json.error, /model 'faulty_py': output 'Y' has shape \[2,3\], which does not match the model configuration's dims \[-1\]/);
  });

  it("fails a batch whose execute returns the wrong number of responses", async () => {
    const r = await infer([4]);
    assert.equal(r.status, 500);
    assert.match(r.json.error, /execute\(\) must return one response per request \(1\), got 2/);
  });

  it("fails the batch of an interpreter that crashes (SIGSEGV) and comes back", async () => {
    const r = await infer([5]);
    assert.equal(r.status, 500);
    assert.match(r.json.error, /model 'faulty_py' instance 'faulty_py_0_0': the model process exited unexpectedly \(signal SIGSEGV\)/);
    assert.equal((await infer([1.25])).json.outputs[0].data[0], 2.5);
  });

  it("moves 4 MiB tensors both ways through shared memory, byte-exact, in files that are reused", async () => {
    const n = 1 << 20;
    const x = new Float32Array(n);
    for (let i = 0; i < n; i++) x[i] = (i % 1000) / 8;
    x[0] = 0.5;
    const results = await Promise.all([0, 1, 2].map(() => postBinary(`${s.url}/v2/models/faulty_py/infer`, {
      inputs: [{ name: "X", datatype: "FP32", shape: [n], parameters: { binary_data_size: n * 4 } }],
      outputs: [{ name: "Y", parameters: { binary_data: true } }],
    }, [bytesOf(x)])));
    for (const res of results) {
      assert.equal(res.status, 200, res.body.subarray(0, 300).toString());
      const y = splitBinaryResponse(res).binary.get("Y")!;
      const doubled = new Float32Array(x.map((v) => v * 2));
      assert.ok(y.equals(bytesOf(doubled)), "Y = 2X");
    }
    // Only each live process's two files, which it reuses: nothing per request is left behind.
    const files = await fs.readdir(shmDir());
    assert.ok(files.every((f) => /-[sc]$/.test(f)), files.join(", "));
    assert.ok(files.length <= 2 * 2, `${files.length} files`);
  });

  it("keeps a sequence's state per sequence id, with requests of two sequences interleaved", async () => {
    const step = (id: number, x: number, start = false) => postJson(`${s.url}/v2/models/accumulate_py/infer`, {
      parameters: { sequence_id: id, sequence_start: start },
      inputs: [{ name: "X", datatype: "INT32", shape: [1, 1], data: [x] }],
    });
    const totals: number[] = [];
    for (const [id, x, start] of [[11, 1, true], [22, 100, true], [11, 2], [22, 200], [11, 3]] as [number, number, boolean?][]) {
      const r = await step(id, x, start);
      assert.equal(r.status, 200, JSON.stringify(r.json));
      totals.push(r.json.outputs[0].data[0]);
    }
    assert.deepEqual(totals, [1, 100, 3, 300, 6]);
  });
});
