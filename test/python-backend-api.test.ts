/**
 * The Python backend's API as models use it: the examples in
 * examples/python_models (add/sub in numpy, BLS calling the ONNX `simple`,
 * a decoupled model answering from threads after execute returns, torch in
 * model.py), BLS to a decoupled model, async execute with async_exec,
 * request ids, parameters, sequence ids and error codes, cancellation,
 * auto_complete_config and EXECUTION_ENV_PATH. Skipped, with the reason
 * printed, where no python3 has numpy.
 */
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import fs from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { after, before, describe, it } from "node:test";
import { makeTensor, tensorValues, type InferenceResponse } from "../src/index.js";
import { S, i32, int32s } from "./grpc-simple.js";
import { EXAMPLES, GrpcTestClient, ROOT, bytesOf, collectResponses, getJson, postBinary, postJson, splitBinaryResponse, startGrpcServer, type GrpcTestServer } from "./helpers.js";
import { pythonWith, writeModel } from "./python-helpers.js";

const PYTHON_EXAMPLES = path.join(ROOT, "examples", "python_models");
const { skip, python } = await pythonWith(["numpy"]);
const torch = await pythonWith(["numpy", "torch"]);
if (skip) console.log(`# skipping the Python backend API tests: ${skip}`);
if (!skip && torch.skip) console.log(`# skipping the torch-in-model.py test: ${torch.skip}`);

/** Sums every OUT that repeat_py streams back for IN (BLS, decoupled=True); counts the responses. */
const BLS_STREAM = `
import numpy as np
import triton_python_backend_utils as pb_utils

class TritonPythonModel:
    def execute(self, requests):
        out = []
        for r in requests:
            values = pb_utils.get_input_tensor_by_name(r, "IN").as_numpy()
            total, count, finals = 0, 0, 0
            for res in pb_utils.InferenceRequest(
                    model_name="repeat_py", requested_output_names=["OUT"],
                    inputs=[pb_utils.Tensor("IN", values), pb_utils.Tensor("DELAY", np.zeros(len(values), dtype=np.uint32))],
            ).exec(decoupled=True):
                if res.has_error():
                    raise pb_utils.TritonModelException(res.error().message())
                if res.output_tensors():
                    total += int(pb_utils.get_output_tensor_by_name(res, "OUT").as_numpy()[0])
                    count += 1
            out.append(pb_utils.InferenceResponse([pb_utils.Tensor("TOTAL", np.array([total, count], dtype=np.int32))]))
        return out
`;

/** async execute: three BLS calls to add_sub in flight at once. */
const ASYNC = `
import asyncio
import numpy as np
import triton_python_backend_utils as pb_utils

class TritonPythonModel:
    async def execute(self, requests):
        out = []
        for r in requests:
            x = pb_utils.get_input_tensor_by_name(r, "X").as_numpy()
            calls = [pb_utils.InferenceRequest(
                model_name="add_sub", requested_output_names=["OUTPUT0"],
                inputs=[pb_utils.Tensor("INPUT0", x), pb_utils.Tensor("INPUT1", np.full(x.shape, k, dtype=np.float32))],
            ).async_exec() for k in (1, 2, 3)]
            answers = await asyncio.gather(*calls)
            sums = [pb_utils.get_output_tensor_by_name(a, "OUTPUT0").as_numpy() for a in answers]
            out.append(pb_utils.InferenceResponse([pb_utils.Tensor("Y", np.concatenate(sums, axis=1))]))
        return out
`;

/** What the model sees of its request: id, parameters, correlation id; X = -1 answers INVALID_ARG. */
const META = `
import numpy as np
import triton_python_backend_utils as pb_utils

class TritonPythonModel:
    def execute(self, requests):
        out = []
        for r in requests:
            if pb_utils.get_input_tensor_by_name(r, "X").as_numpy()[0] == -1:
                out.append(pb_utils.InferenceResponse(error=pb_utils.TritonError("X must not be -1", pb_utils.TritonError.INVALID_ARG)))
                continue
            seen = "%s|%s|%s" % (r.request_id(), r.parameters(), r.correlation_id())
            out.append(pb_utils.InferenceResponse([pb_utils.Tensor("SEEN", np.array([seen.encode()], dtype=np.object_))]))
        return out
`;

/** Its config names nothing but the backend: auto_complete_config fills in the rest. */
const AUTO = `
import numpy as np
import triton_python_backend_utils as pb_utils

class TritonPythonModel:
    @staticmethod
    def auto_complete_config(config):
        config.set_max_batch_size(4)
        config.add_input({"name": "X", "data_type": "TYPE_FP32", "dims": [2]})
        config.add_output({"name": "DOUBLED", "data_type": "TYPE_FP32", "dims": [2]})
        config.set_dynamic_batching()
        return config

    def execute(self, requests):
        return [pb_utils.InferenceResponse([pb_utils.Tensor("DOUBLED", pb_utils.get_input_tensor_by_name(r, "X").as_numpy() * 2)]) for r in requests]
`;

/** Says which environment's interpreter runs it (the wrapper sets TRITIUM_TEST_ENV). */
const WHICH_ENV = `
import os
import numpy as np
import triton_python_backend_utils as pb_utils

class TritonPythonModel:
    def execute(self, requests):
        return [pb_utils.InferenceResponse([pb_utils.Tensor("ENV", np.array([os.environ.get("TRITIUM_TEST_ENV", "none").encode()], dtype=np.object_))]) for r in requests]
`;

const f32 = (v: number[]) => bytesOf(new Float32Array(v));

describe("python backend API", { skip, timeout: 180_000 }, () => {
  let repo: string;
  let s: GrpcTestServer;
  let c: GrpcTestClient;

  before(async () => {
    repo = await fs.mkdtemp(path.join(os.tmpdir(), "tritium-pyapi-"));
    for (const m of ["add_sub", "bls_simple", "repeat_py", "torch_add_sub"]) await fs.cp(path.join(PYTHON_EXAMPLES, m), path.join(repo, m), { recursive: true });
    await fs.cp(path.join(EXAMPLES, "simple"), path.join(repo, "simple"), { recursive: true });
    const io = (i: string, it: string, o: string, ot: string) =>
      `input [ { name: "${i}" data_type: ${it} dims: [ -1 ] } ]\noutput [ { name: "${o}" data_type: ${ot} dims: [ -1 ] } ]\n`;
    await writeModel(repo, "bls_stream_py", `name: "bls_stream_py"\nbackend: "python"\nmax_batch_size: 0\n${io("IN", "TYPE_INT32", "TOTAL", "TYPE_INT32")}`, BLS_STREAM);
    await writeModel(repo, "async_py", `name: "async_py"\nbackend: "python"\nmax_batch_size: 0\ninput [ { name: "X" data_type: TYPE_FP32 dims: [ 1, 4 ] } ]\noutput [ { name: "Y" data_type: TYPE_FP32 dims: [ 1, 12 ] } ]\n`, ASYNC);
    await writeModel(repo, "meta_py", `name: "meta_py"\nbackend: "python"\nmax_batch_size: 0\n${io("X", "TYPE_INT32", "SEEN", "TYPE_STRING")}`, META);
    await writeModel(repo, "auto_py", `backend: "python"\n`, AUTO);
    // An environment folder whose bin/python3 marks the processes it runs, and the same packed as conda-pack would.
    for (const [name, mark] of [["env_dir_py", "dir"], ["env_tar_py", "tar"]] as const) {
      const env = path.join(repo, name, `env_${mark}`);
      await fs.mkdir(path.join(env, "bin"), { recursive: true });
      await fs.writeFile(path.join(env, "bin", "python3"), `#!/bin/sh\nTRITIUM_TEST_ENV=${mark} exec ${python} "$@"\n`, { mode: 0o755 });
      const where = mark === "dir" ? "$$TRITON_MODEL_DIRECTORY/env_dir" : "$$TRITON_MODEL_DIRECTORY/env.tar.gz";
      if (mark === "tar") {
        execFileSync("tar", ["-czf", path.join(repo, name, "env.tar.gz"), "-C", env, "."]);
        await fs.rm(env, { recursive: true });
      }
      await writeModel(repo, name, `name: "${name}"\nbackend: "python"\nmax_batch_size: 0\n${io("X", "TYPE_INT32", "ENV", "TYPE_STRING")}parameters { key: "EXECUTION_ENV_PATH" value: { string_value: "${where}" } }\n`, WHICH_ENV);
    }
    s = await startGrpcServer({ modelRepository: repo, strictReadiness: false });
    c = new GrpcTestClient(s.grpcAddress);
  });
  after(async () => {
    c?.close();
    await s?.close();
    if (repo) await fs.rm(repo, { recursive: true, force: true });
  });

  it("runs the add_sub example over HTTP binary tensors, a batch of two", async () => {
    const a = [1, 2, 3, 4, 5, 6, 7, 8];
    const b = [0.5, 0.5, 0.5, 0.5, 1, 1, 1, 1];
    const res = await postBinary(`${s.url}/v2/models/add_sub/infer`, {
      inputs: [
        { name: "INPUT0", datatype: "FP32", shape: [2, 4], parameters: { binary_data_size: 32 } },
        { name: "INPUT1", datatype: "FP32", shape: [2, 4], parameters: { binary_data_size: 32 } },
      ],
      outputs: [{ name: "OUTPUT0", parameters: { binary_data: true } }, { name: "OUTPUT1", parameters: { binary_data: true } }],
    }, [f32(a), f32(b)]);
    assert.equal(res.status, 200, res.body.toString());
    const { binary } = splitBinaryResponse(res);
    const floats = (buf: Buffer) => [...new Float32Array(buf.buffer.slice(buf.byteOffset, buf.byteOffset + buf.byteLength))];
    assert.deepEqual(floats(binary.get("OUTPUT0")!), a.map((x, i) => x + b[i]!));
    assert.deepEqual(floats(binary.get("OUTPUT1")!), a.map((x, i) => x - b[i]!));
  });

  it("runs the bls_simple example: Python calls the ONNX model simple and post-processes its outputs", async () => {
    const a = Array.from({ length: 16 }, (_, i) => i);
    const b = Array.from({ length: 16 }, () => 2);
    const r = await postJson(`${s.url}/v2/models/bls_simple/infer`, {
      inputs: [{ name: "A", datatype: "INT32", shape: [1, 16], data: a }, { name: "B", datatype: "INT32", shape: [1, 16], data: b }],
    });
    assert.equal(r.status, 200, JSON.stringify(r.json));
    const product = a.map((x) => (x + 2) * (x - 2));
    assert.deepEqual(r.json.outputs[0].data, product);
    assert.deepEqual(r.json.outputs[1].data, [Math.max(...product)]);
  });

  it("streams the repeat_py example over gRPC from threads after execute returned, and its INVALID_ARG error", async () => {
    const stream = c.stream(S.modelStreamInfer);
    const done = collectResponses(stream);
    const u32 = (v: number[]) => bytesOf(new Uint32Array(v));
    const request = (id: string, values: number[], delays: number[]) => ({
      modelName: "repeat_py",
      id,
      inputs: [{ name: "IN", datatype: "INT32", shape: [BigInt(values.length)] }, { name: "DELAY", datatype: "UINT32", shape: [BigInt(delays.length)] }],
      rawInputContents: [i32(values), u32(delays)],
    });
    stream.write(request("a", [7, 8, 9], [20, 5, 5]));
    stream.write(request("b", [1], [1, 2]));
    stream.end();
    const responses = await done;
    const a = responses.filter((r) => r.inferResponse?.id === "a").map((r) => [int32s(r.inferResponse!.rawOutputContents[0]!)[0], new Uint32Array(new Uint8Array(r.inferResponse!.rawOutputContents[1]!).buffer)[0]]);
    assert.deepEqual(a, [[7, 0], [8, 1], [9, 2]]);
    const b = responses.find((r) => r.errorMessage);
    assert.match(b!.errorMessage, /model 'repeat_py' instance 'repeat_py_0_0': DELAY has 2 elements, IN has 1/);
  });

  it("runs torch inside model.py (torch_add_sub), on an interpreter that has torch", { skip: torch.skip }, async () => {
    const r = await postJson(`${s.url}/v2/models/torch_add_sub/infer`, {
      inputs: [{ name: "INPUT0", datatype: "FP32", shape: [1, 4], data: [1, 2, 3, 4] }, { name: "INPUT1", datatype: "FP32", shape: [1, 4], data: [4, 3, 2, 1] }],
    });
    assert.equal(r.status, 200, JSON.stringify(r.json));
    assert.deepEqual(r.json.outputs.map((o: { data: number[] }) => o.data), [[5, 5, 5, 5], [-3, -1, 1, 3]]);
  });

  it("iterates a decoupled model's responses from exec(decoupled=True), the empty final one included", async () => {
    const r = await postJson(`${s.url}/v2/models/bls_stream_py/infer`, { inputs: [{ name: "IN", datatype: "INT32", shape: [4], data: [1, 2, 3, 10] }] });
    assert.equal(r.status, 200, JSON.stringify(r.json));
    assert.deepEqual(r.json.outputs[0].data, [16, 4]);
  });

  it("awaits an async execute whose BLS calls run together through async_exec", async () => {
    const r = await postJson(`${s.url}/v2/models/async_py/infer`, { inputs: [{ name: "X", datatype: "FP32", shape: [1, 4], data: [0, 1, 2, 3] }] });
    assert.equal(r.status, 200, JSON.stringify(r.json));
    assert.deepEqual(r.json.outputs[0].data, [1, 2, 3, 4, 2, 3, 4, 5, 3, 4, 5, 6]);
  });

  it("shows the model its request id, parameters and sequence id, and maps TritonError codes to statuses", async () => {
    const r = await postJson(`${s.url}/v2/models/meta_py/infer`, { id: "req-7", parameters: { colour: "blue" }, inputs: [{ name: "X", datatype: "INT32", shape: [1], data: [1] }] });
    assert.equal(r.status, 200, JSON.stringify(r.json));
    const [id, params, corr] = (r.json.outputs[0].data[0] as string).split("|");
    assert.equal(id, "req-7");
    assert.deepEqual(JSON.parse(params!), { colour: "blue" });
    assert.equal(corr, "0");
    const bad = await postJson(`${s.url}/v2/models/meta_py/infer`, { inputs: [{ name: "X", datatype: "INT32", shape: [1], data: [-1] }] });
    assert.equal(bad.status, 400);
    assert.match(bad.json.error, /X must not be -1/);
  });

  it("tells a running decoupled model that its client has gone (is_cancelled), and the model stops", async () => {
    const controller = new AbortController();
    const got: (InferenceResponse | Error | undefined)[] = [];
    const t0 = Date.now();
    setTimeout(() => controller.abort(), 150);
    await s.core.stream({
      model_name: "repeat_py",
      signal: controller.signal,
      inputs: [makeTensor("IN", "INT32", [20], Int32Array.from({ length: 20 }, (_, i) => i)), makeTensor("DELAY", "UINT32", [20], new Uint32Array(20).fill(50))],
    }, (r) => got.push(r)).catch((e: Error) => got.push(e));
    const values = got.filter((r): r is InferenceResponse => !!r && !(r instanceof Error)).map((r) => tensorValues(r.outputs[0]!)[0]);
    assert.ok(values.length < 10, `stopped early, got ${values.length} responses`);
    assert.ok(Date.now() - t0 < 900, "ended well before its 20 × 50 ms");
  });

  it("completes a configuration from the model's auto_complete_config", async () => {
    const config = (await getJson(`${s.url}/v2/models/auto_py/config`)).json;
    assert.equal(config.max_batch_size, 4);
    assert.deepEqual(config.input.map((i: { name: string; data_type: string; dims: number[] }) => [i.name, i.data_type, i.dims]), [["X", "TYPE_FP32", [2]]]);
    assert.ok(config.dynamic_batching, "dynamic batching set");
    const r = await postJson(`${s.url}/v2/models/auto_py/infer`, { inputs: [{ name: "X", datatype: "FP32", shape: [1, 2], data: [1.5, -2] }] });
    assert.equal(r.status, 200, JSON.stringify(r.json));
    assert.deepEqual(r.json.outputs[0].data, [3, -4]);
  });

  it("runs a model in the environment EXECUTION_ENV_PATH names, a folder or a packed .tar.gz", async () => {
    for (const [model, mark] of [["env_dir_py", "dir"], ["env_tar_py", "tar"]]) {
      const r = await postJson(`${s.url}/v2/models/${model}/infer`, { inputs: [{ name: "X", datatype: "INT32", shape: [1], data: [0] }] });
      assert.equal(r.status, 200, JSON.stringify(r.json));
      assert.deepEqual(r.json.outputs[0].data, [mark]);
    }
  });
});
