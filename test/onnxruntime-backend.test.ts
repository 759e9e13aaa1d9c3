import { describe, it, after, before } from "node:test";
import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import fs from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { fileURLToPath, pathToFileURL } from "node:url";
import { create } from "@bufbuild/protobuf";
import { gpuProviders, missingCudaProvider } from "../src/backends/onnxruntime/gpu-providers.js";
import {
  DataType as PbDataType,
  ModelInputSchema,
  ModelOptimizationPolicySchema,
  ModelParameterSchema,
  type ModelConfig,
} from "../src/gen/inference/model_config_pb.js";
import type { BackendInstance, BackendModel } from "../src/core/backend.js";
import type { DataType } from "../src/core/tensors/datatypes.js";
import type { TritonError } from "../src/core/errors.js";
import type { BatchRequest, ExecutionResult } from "../src/core/requests/inference.js";
import { Logger } from "../src/core/observability/logger.js";
import { emptyModelConfig, parseModelConfig } from "../src/core/repository/model-config.js";
import { decodeBytesElements, encodeBytesElements, numberToHalf, type Tensor } from "../src/core/tensors/tensor.js";
import { OnnxRuntimeBackend, sessionOptions } from "../src/backends/onnxruntime/onnxruntime-backend.js";
import { packRequests } from "../src/backends/worker-channel/channel.js";
import { DataType as OnnxType, addSubModel, identityModel, writeModel } from "../scripts/onnx-builder.js";

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..", "..");
const FIXTURES = path.join(ROOT, "test", "fixtures", "model_repository");
const EXAMPLES = path.join(ROOT, "examples", "model_repository");

const logger = new Logger({}, () => {});
const backend = new OnnxRuntimeBackend();

/** Everything a test opened, released at the end even when an assertion fails. */
const opened: { release(): Promise<void> }[] = [];
after(async () => {
  await Promise.allSettled(opened.map((o) => o.release()));
});

let tmp: string;
before(async () => {
  tmp = await fs.mkdtemp(path.join(os.tmpdir(), "tritium-ort-"));
});
after(async () => {
  await fs.rm(tmp, { recursive: true, force: true });
});

async function readConfig(dir: string, name: string): Promise<ModelConfig> {
  const file = path.join(dir, "config.pbtxt");
  let config: ModelConfig;
  try {
    config = parseModelConfig(await fs.readFile(file, "utf8"), file);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code !== "ENOENT") throw e;
    config = emptyModelConfig();
  }
  config.name ||= name;
  return config;
}

async function loadModel(repo: string, name: string, edit?: (c: ModelConfig) => void): Promise<{ model: BackendModel; config: ModelConfig }> {
  const dir = path.join(repo, name);
  const config = await readConfig(dir, name);
  edit?.(config);
  const model = await backend.createModel({
    name,
    version: 1,
    modelDir: dir,
    modelPath: path.join(dir, "1", "model.onnx"),
    config,
    backendConfig: {},
    logger,
  });
  opened.push(model);
  return { model, config };
}

async function loadInstance(repo: string, name: string, edit?: (c: ModelConfig) => void): Promise<{ model: BackendModel; instance: BackendInstance; config: ModelConfig }> {
  const { model, config } = await loadModel(repo, name, edit);
  const instance = await model.createInstance(config, { name: `${name}_0_0`, kind: "KIND_CPU", deviceId: 0 });
  opened.push(instance);
  return { model, instance, config };
}

const bytesOf = (a: ArrayBufferView) => new Uint8Array(a.buffer, a.byteOffset, a.byteLength);
const tensor = (name: string, datatype: DataType, shape: number[], data: ArrayBufferView): Tensor => ({ name, datatype, shape, data: bytesOf(data) });
const f32 = (t: Tensor) => Array.from(new Float32Array(t.data.slice().buffer));
const i32 = (t: Tensor) => Array.from(new Int32Array(t.data.slice().buffer));

function ok(r: ExecutionResult | undefined): Tensor[] {
  assert.ok(r, "missing result");
  if (r.error) assert.fail(`unexpected error: ${r.error.code} ${r.error.message}`);
  return r.outputs;
}

function out(r: ExecutionResult | undefined, name: string): Tensor {
  const t = ok(r).find((o) => o.name === name);
  assert.ok(t, `no output ${name}`);
  return t;
}

async function rejects(p: Promise<unknown>, code: string, ...patterns: (string | RegExp)[]): Promise<TritonError> {
  try {
    await p;
  } catch (e) {
    const err = e as TritonError;
    assert.equal(err.code, code, err.message);
    for (const pat of patterns) {
      if (typeof pat === "string") assert.ok(err.message.includes(pat), `'${err.message}' should contain '${pat}'`);
      else assert.match(err.message, pat);
    }
    return err;
  }
  assert.fail("expected a rejection");
}

describe("OnnxRuntimeBackend", () => {
  it("names itself as Triton's onnxruntime backend", () => {
    assert.equal(backend.name, "onnxruntime");
    assert.deepEqual([...backend.platforms], ["onnxruntime_onnx"]);
    assert.equal(backend.defaultModelFilename, "model.onnx");
    assert.equal(backend.defaultInstanceCount, 2);
  });

  it("runs add/sub on a single request", async () => {
    const { instance } = await loadInstance(FIXTURES, "add_sub_fp32");
    const a = new Float32Array([1, 2, 3, 4]);
    const b = new Float32Array([10, 20, 30, 40]);
    const res = await instance.execute([
      { inputs: [tensor("INPUT0", "FP32", [4], a), tensor("INPUT1", "FP32", [4], b)], outputNames: ["OUTPUT0", "OUTPUT1"] },
    ]);
    assert.equal(res.results.length, 1);
    const [o0, o1] = ok(res.results[0]);
    assert.equal(o0!.name, "OUTPUT0");
    assert.equal(o0!.datatype, "FP32");
    assert.deepEqual(o0!.shape, [4]);
    assert.deepEqual(f32(o0!), [11, 22, 33, 44]);
    assert.equal(o1!.name, "OUTPUT1");
    assert.deepEqual(f32(o1!), [-9, -18, -27, -36]);
    assert.ok(res.timings);
    assert.ok(res.timings.computeInferNs > 0);
  });

  it("runs each request alone when the model has no batch dimension", async () => {
    const { instance } = await loadInstance(FIXTURES, "add_sub_fp32");
    const req = (k: number): BatchRequest => ({
      inputs: [tensor("INPUT0", "FP32", [4], new Float32Array([k, k, k, k])), tensor("INPUT1", "FP32", [4], new Float32Array([1, 2, 3, 4]))],
      outputNames: ["OUTPUT0"],
    });
    const res = await instance.execute([req(1), req(10)]);
    assert.deepEqual(f32(out(res.results[0], "OUTPUT0")), [2, 3, 4, 5]);
    assert.deepEqual(f32(out(res.results[1], "OUTPUT0")), [11, 12, 13, 14]);
  });

  it("batches 3 requests of different batch sizes and splits the outputs back", async () => {
    const { instance } = await loadInstance(EXAMPLES, "simple");
    const sizes = [1, 3, 2];
    const requests: BatchRequest[] = sizes.map((n, k) => {
      const a = Int32Array.from({ length: n * 16 }, (_, i) => 100 * k + i);
      const b = Int32Array.from({ length: n * 16 }, () => k + 1);
      // Request 1 asks for OUTPUT1 only; request 2 asks for both, in reverse order.
      const outputNames = k === 0 ? ["OUTPUT0", "OUTPUT1"] : k === 1 ? ["OUTPUT1"] : ["OUTPUT1", "OUTPUT0"];
      return { inputs: [tensor("INPUT0", "INT32", [n, 16], a), tensor("INPUT1", "INT32", [n, 16], b)], outputNames };
    });
    const res = await instance.execute(requests);
    assert.equal(res.results.length, 3);
    for (const [k, n] of sizes.entries()) {
      const outs = ok(res.results[k]);
      assert.deepEqual(outs.map((o) => o.name), requests[k]!.outputNames);
      for (const o of outs) {
        assert.deepEqual(o.shape, [n, 16]);
        const expected = Array.from({ length: n * 16 }, (_, i) => (o.name === "OUTPUT0" ? 100 * k + i + (k + 1) : 100 * k + i - (k + 1)));
        assert.deepEqual(i32(o), expected, `request ${k} ${o.name}`);
        assert.equal(o.data.byteOffset, 0);
        assert.equal(o.data.buffer.byteLength, o.data.byteLength, "each split output owns its buffer");
      }
    }
  });

  it("never transfers the caller's (possibly pooled) input buffers", async () => {
    const { instance } = await loadInstance(EXAMPLES, "simple");
    // Small Buffers come from Node's shared pool: transferring one would detach its neighbours.
    const a = Buffer.from(new Int32Array(16).fill(5).buffer);
    const pooled = Buffer.from("neighbour");
    const b = Buffer.alloc(64, 0);
    const res = await instance.execute([
      { inputs: [{ name: "INPUT0", datatype: "INT32", shape: [1, 16], data: a }, { name: "INPUT1", datatype: "INT32", shape: [1, 16], data: b }], outputNames: ["OUTPUT0"] },
    ]);
    assert.deepEqual(i32(out(res.results[0], "OUTPUT0")), Array(16).fill(5));
    assert.equal(a.byteLength, 64);
    assert.equal(b.byteLength, 64);
    assert.equal(pooled.toString(), "neighbour");
  });

  it("packs every input into one buffer at 8-byte aligned offsets", () => {
    const mk = (n: number) => new Uint8Array(n).fill(n);
    const { requests, buffer } = packRequests([
      { inputs: [{ name: "A", datatype: "UINT8", shape: [3], data: mk(3) }, { name: "B", datatype: "INT64", shape: [1], data: mk(8) }], outputNames: ["X"] },
      { inputs: [{ name: "A", datatype: "UINT8", shape: [5], data: mk(5) }], outputNames: ["X"] },
    ]);
    const views = requests.flatMap((r) => r.inputs.map((t) => t.data));
    for (const v of views) {
      assert.equal(v.buffer, buffer);
      assert.equal(v.byteOffset % 8, 0);
    }
    assert.deepEqual(views.map((v) => Array.from(v)), [[3, 3, 3], Array(8).fill(8), [5, 5, 5, 5, 5]]);
  });

  describe("round-trips every identity datatype", () => {
    const cases: { type: DataType; values: (n: number) => Uint8Array; decode?: (t: Tensor) => unknown }[] = [
      { type: "BOOL", values: (n) => Uint8Array.from({ length: n }, (_, i) => i % 2) },
      { type: "UINT8", values: (n) => Uint8Array.from({ length: n }, (_, i) => 250 + i) },
      { type: "UINT16", values: (n) => bytesOf(Uint16Array.from({ length: n }, (_, i) => 65530 + i)) },
      { type: "UINT32", values: (n) => bytesOf(Uint32Array.from({ length: n }, (_, i) => 4294967290 + i)) },
      { type: "UINT64", values: (n) => bytesOf(BigUint64Array.from({ length: n }, (_, i) => 18446744073709551610n + BigInt(i))) },
      { type: "INT8", values: (n) => bytesOf(Int8Array.from({ length: n }, (_, i) => -128 + i)) },
      { type: "INT16", values: (n) => bytesOf(Int16Array.from({ length: n }, (_, i) => -32768 + i)) },
      { type: "INT32", values: (n) => bytesOf(Int32Array.from({ length: n }, (_, i) => -2147483648 + i)) },
      { type: "INT64", values: (n) => bytesOf(BigInt64Array.from({ length: n }, (_, i) => -9223372036854775808n + BigInt(i))) },
      { type: "FP16", values: (n) => bytesOf(Uint16Array.from({ length: n }, (_, i) => numberToHalf(i / 4 - 1))) },
      { type: "FP32", values: (n) => bytesOf(Float32Array.from({ length: n }, (_, i) => i * 1.5 - 2)) },
      { type: "FP64", values: (n) => bytesOf(Float64Array.from({ length: n }, (_, i) => Math.PI * i)) },
      {
        type: "BYTES",
        values: (n) => encodeBytesElements(Array.from({ length: n }, (_, i) => ["", "a", "héllo wörld ✓", "x".repeat(300)][i % 4]!)),
        decode: (t) => decodeBytesElements(t.data).map((e) => Buffer.from(e).toString("utf8")),
      },
    ];
    for (const c of cases) {
      it(c.type, async () => {
        const { instance } = await loadInstance(FIXTURES, `identity_${c.type.toLowerCase()}`);
        const decode = c.decode ?? ((t: Tensor) => Array.from(t.data));
        // One request alone, then three requests batched (sizes 2, 1, 3) and split back.
        const single = c.values(5);
        const res1 = await instance.execute([{ inputs: [{ name: "INPUT0", datatype: c.type, shape: [1, 5], data: single }], outputNames: ["OUTPUT0"] }]);
        const o = out(res1.results[0], "OUTPUT0");
        assert.equal(o.datatype, c.type);
        assert.deepEqual(o.shape, [1, 5]);
        assert.deepEqual(decode(o), decode({ name: "", datatype: c.type, shape: [], data: single }));
        const sizes = [2, 1, 3];
        const inputs = sizes.map((n) => c.values(n * 4));
        const res = await instance.execute(sizes.map((n, k) => ({ inputs: [{ name: "INPUT0", datatype: c.type, shape: [n, 4], data: inputs[k]! }], outputNames: ["OUTPUT0"] })));
        for (const [k, n] of sizes.entries()) {
          const t = out(res.results[k], "OUTPUT0");
          assert.deepEqual(t.shape, [n, 4]);
          assert.deepEqual(decode(t), decode({ name: "", datatype: c.type, shape: [], data: inputs[k]! }), `request ${k}`);
        }
      });
    }
  });

  describe("auto-complete", () => {
    it("completes autocomplete_simple from the model (max_batch_size 4, dims [16], dynamic batching)", async () => {
      const { model, config } = await loadModel(FIXTURES, "autocomplete_simple");
      assert.equal(config.input.length, 0);
      const done = model.autoCompleteConfig!(config, 4);
      assert.equal(done.name, "autocomplete_simple");
      assert.equal(done.backend, "onnxruntime");
      assert.equal(done.platform, "onnxruntime_onnx");
      assert.equal(done.maxBatchSize, 4);
      assert.deepEqual(done.input.map((i) => [i.name, i.dataType, i.dims]), [
        ["INPUT0", PbDataType.TYPE_INT32, [16n]],
        ["INPUT1", PbDataType.TYPE_INT32, [16n]],
      ]);
      assert.deepEqual(done.output.map((o) => [o.name, o.dataType, o.dims]), [
        ["OUTPUT0", PbDataType.TYPE_INT32, [16n]],
        ["OUTPUT1", PbDataType.TYPE_INT32, [16n]],
      ]);
      assert.equal(done.schedulingChoice.case, "dynamicBatching");
      assert.equal(config.input.length, 0, "the config passed in is not modified");
      // The probe worker becomes instance 0 and serves the completed config.
      const instance = await model.createInstance(done, { name: "autocomplete_simple_0_0", kind: "KIND_CPU", deviceId: 0 });
      opened.push(instance);
      const res = await instance.execute([
        { inputs: [tensor("INPUT0", "INT32", [2, 16], new Int32Array(32).fill(7)), tensor("INPUT1", "INT32", [2, 16], new Int32Array(32).fill(2))], outputNames: ["OUTPUT1"] },
      ]);
      assert.deepEqual(i32(out(res.results[0], "OUTPUT1")), Array(32).fill(5));
    });

    it("keeps what the config sets", async () => {
      const { model, config } = await loadModel(FIXTURES, "autocomplete_simple", (c) => {
        c.maxBatchSize = 1;
        c.input.push(create(ModelInputSchema, { name: "INPUT1", dataType: PbDataType.TYPE_INT32 }));
      });
      const done = model.autoCompleteConfig!(config, 4);
      assert.equal(done.maxBatchSize, 1);
      assert.equal(done.schedulingChoice.case, undefined, "no dynamic batching for max_batch_size 1");
      assert.deepEqual(done.input.map((i) => [i.name, i.dims]), [["INPUT1", [16n]]], "an existing input section is completed, not replaced");
      assert.deepEqual(done.output.map((o) => o.name), ["OUTPUT0", "OUTPUT1"]);
    });

    it("leaves max_batch_size 0 for a model without a dynamic first dim", async () => {
      const { model } = await loadModel(FIXTURES, "add_sub_fp32");
      const done = model.autoCompleteConfig!(emptyModelConfig(), 4);
      assert.equal(done.maxBatchSize, 0);
      assert.deepEqual(done.input.map((i) => [i.name, i.dataType, i.dims]), [
        ["INPUT0", PbDataType.TYPE_FP32, [4n]],
        ["INPUT1", PbDataType.TYPE_FP32, [4n]],
      ]);
      assert.equal(done.schedulingChoice.case, undefined);
    });

    it("turns symbolic non-batch dims into -1 and maps ORT types", async () => {
      const { model } = await loadModel(FIXTURES, "identity_bytes");
      const done = model.autoCompleteConfig!(emptyModelConfig(), 8);
      assert.equal(done.maxBatchSize, 8);
      assert.deepEqual(done.input.map((i) => [i.dataType, i.dims]), [[PbDataType.TYPE_STRING, [-1n]]]);
    });

    it("rejects a config input that the model does not have", async () => {
      const { model, config } = await loadModel(FIXTURES, "autocomplete_simple", (c) => {
        c.input.push(create(ModelInputSchema, { name: "NOPE", dataType: PbDataType.TYPE_INT32, dims: [16n] }));
      });
      assert.throws(() => model.autoCompleteConfig!(config, 4), (e: TritonError) => {
        assert.equal(e.code, "INVALID_ARG");
        assert.match(e.message, /autocomplete_simple/);
        assert.match(e.message, /'NOPE'/);
        return true;
      });
    });
  });

  it("asks for the CUDA provider on the instance's GPU, and says how to install it where it is missing", async () => {
    const { model, config } = await loadModel(FIXTURES, "add_sub_fp32");
    config.optimization = create(ModelOptimizationPolicySchema, {
      executionAccelerators: { gpuExecutionAccelerator: [{ name: "tensorrt" }] },
    });
    const missing = missingCudaProvider();
    if (missing) {
      // This machine's onnxruntime-node has no GPU binaries: the load says what is missing and how to get them.
      await rejects(model.createInstance(config, { name: "add_sub_fp32_0_0", kind: "KIND_GPU", deviceId: 1 }), "INVALID_ARG",
        "model 'add_sub_fp32': instance 'add_sub_fp32_0_0' has kind KIND_GPU but ONNX Runtime's CUDA execution provider is not installed",
        "libonnxruntime_providers_cuda.so", "--onnxruntime-node-install=cuda12");
      assert.equal(backend.gpuCapable, false);
    } else {
      assert.deepEqual(gpuProviders(config, "add_sub_fp32", "i", 1), [{ name: "tensorrt", deviceId: 1 }, { name: "cuda", deviceId: 1 }, "cpu"]);
    }
  });

  it("reports a corrupt model file as a load error naming the path", async () => {
    const dir = path.join(tmp, "corrupt");
    const file = path.join(dir, "1", "model.onnx");
    await fs.mkdir(path.dirname(file), { recursive: true });
    await fs.writeFile(file, "this is not an ONNX model");
    const config = emptyModelConfig();
    config.name = "corrupt";
    await rejects(
      backend.createModel({ name: "corrupt", version: 1, modelDir: dir, modelPath: file, config, backendConfig: {}, logger }),
      "INVALID_ARG",
      "model 'corrupt' version 1: failed to load ONNX model",
      file,
    );
  });

  it("loads model.onnx from a model directory", async () => {
    const dir = path.join(tmp, "as_dir");
    await writeModel(path.join(dir, "1", "model.onnx", "model.onnx"), identityModel(OnnxType.FLOAT, [null, 3]));
    const config = emptyModelConfig();
    config.name = "as_dir";
    const model = await backend.createModel({ name: "as_dir", version: 1, modelDir: dir, modelPath: path.join(dir, "1", "model.onnx"), config, backendConfig: { "enable-global-threadpool": "1" }, logger });
    opened.push(model);
    const done = model.autoCompleteConfig!(config, 4);
    assert.equal(done.maxBatchSize, 4);
    assert.deepEqual(done.input[0]!.dims, [3n]);
    const instance = await model.createInstance(done, { name: "as_dir_0_0", kind: "KIND_CPU", deviceId: 0 });
    opened.push(instance);
    const res = await instance.execute([{ inputs: [tensor("INPUT0", "FP32", [1, 3], new Float32Array([1, 2, 3]))], outputNames: ["OUTPUT0"] }]);
    assert.deepEqual(f32(out(res.results[0], "OUTPUT0")), [1, 2, 3]);
  });

  it("returns an error result for a failed execution and keeps serving", async () => {
    const { instance } = await loadInstance(FIXTURES, "add_sub_fp32");
    const good: BatchRequest = {
      inputs: [tensor("INPUT0", "FP32", [4], new Float32Array([1, 1, 1, 1])), tensor("INPUT1", "FP32", [4], new Float32Array([1, 1, 1, 1]))],
      outputNames: ["OUTPUT0"],
    };
    // Wrong element count: shape [4] but 3 elements.
    const bad: BatchRequest = {
      inputs: [tensor("INPUT0", "FP32", [4], new Float32Array([1, 2, 3])), tensor("INPUT1", "FP32", [4], new Float32Array([1, 1, 1, 1]))],
      outputNames: ["OUTPUT0"],
    };
    const res = await instance.execute([bad]);
    const e = res.results[0]?.error;
    assert.ok(e);
    assert.equal(e.code, "INTERNAL");
    assert.match(e.message, /^model 'add_sub_fp32' instance 'add_sub_fp32_0_0': onnxruntime execution failed: /);
    // Wrong shape for the model: ORT itself fails.
    const badShape: BatchRequest = {
      inputs: [tensor("INPUT0", "FP32", [2], new Float32Array([1, 2])), tensor("INPUT1", "FP32", [2], new Float32Array([1, 1]))],
      outputNames: ["OUTPUT0"],
    };
    const res2 = await instance.execute([badShape]);
    assert.equal(res2.results[0]?.error?.code, "INTERNAL");
    const res3 = await instance.execute([good]);
    assert.deepEqual(f32(out(res3.results[0], "OUTPUT0")), [2, 2, 2, 2]);
  });

  it("fails every request of a batched execution that ORT rejects", async () => {
    const { instance } = await loadInstance(EXAMPLES, "simple");
    const req = (n: number, width: number): BatchRequest => ({
      inputs: [tensor("INPUT0", "INT32", [n, width], new Int32Array(n * width)), tensor("INPUT1", "INT32", [n, width], new Int32Array(n * width))],
      outputNames: ["OUTPUT0"],
    });
    const res = await instance.execute([req(1, 15), req(2, 15)]);
    assert.equal(res.results.length, 2);
    for (const r of res.results) assert.equal(r.error?.code, "INTERNAL");
    const res2 = await instance.execute([req(1, 16), req(2, 16)]);
    assert.deepEqual(res2.results.map((r) => out(r, "OUTPUT0").shape), [[1, 16], [2, 16]]);
  });

  describe("session options", () => {
    const withParams = (params: Record<string, string>, level?: number) => (c: ModelConfig) => {
      for (const [k, v] of Object.entries(params)) c.parameters[k] = create(ModelParameterSchema, { stringValue: v });
      if (level !== undefined) c.optimization = create(ModelOptimizationPolicySchema, { graph: { level } });
    };

    it("reads Triton's parameters and graph level", () => {
      const config = emptyModelConfig();
      assert.deepEqual(sessionOptions(config, "m"), { graphOptimizationLevel: "all", executionMode: "sequential" });
      withParams({ intra_op_thread_count: "2", inter_op_thread_count: "0", execution_mode: "1", enable_mem_arena: "off", enable_mem_pattern: "TRUE" }, -1)(config);
      assert.deepEqual(sessionOptions(config, "m"), {
        graphOptimizationLevel: "basic",
        executionMode: "parallel",
        intraOpNumThreads: 2,
        enableCpuMemArena: false,
        enableMemPattern: true,
      });
      config.optimization!.graph!.level = 1;
      assert.equal(sessionOptions(config, "m").graphOptimizationLevel, "extended");
      config.optimization!.graph!.level = 2;
      assert.equal(sessionOptions(config, "m").graphOptimizationLevel, "disabled");
    });

    it("loads and runs with explicit options", async () => {
      const { instance } = await loadInstance(FIXTURES, "add_sub_fp32", withParams({ intra_op_thread_count: "1", execution_mode: "0", enable_mem_arena: "0" }, 2));
      const res = await instance.execute([
        { inputs: [tensor("INPUT0", "FP32", [4], new Float32Array(4).fill(2)), tensor("INPUT1", "FP32", [4], new Float32Array(4).fill(1))], outputNames: ["OUTPUT1"] },
      ]);
      assert.deepEqual(f32(out(res.results[0], "OUTPUT1")), [1, 1, 1, 1]);
    });

    for (const [key, value] of [["execution_mode", "2"], ["intra_op_thread_count", "many"], ["enable_mem_pattern", "maybe"]] as const) {
      it(`rejects ${key}=${value} naming the model and key`, async () => {
        await rejects(loadModel(FIXTURES, "add_sub_fp32", withParams({ [key]: value })), "INVALID_ARG", "model 'add_sub_fp32'", `'${key}'`);
      });
    }
  });

  it("gives each instance its own worker; instance 0 reuses the probe", async () => {
    const { model, config } = await loadModel(EXAMPLES, "simple");
    const a = await model.createInstance(config, { name: "simple_0_0", kind: "KIND_CPU", deviceId: 0 });
    const b = await model.createInstance(config, { name: "simple_0_1", kind: "KIND_CPU", deviceId: 0 });
    const req: BatchRequest = { inputs: [tensor("INPUT0", "INT32", [1, 16], new Int32Array(16).fill(3)), tensor("INPUT1", "INT32", [1, 16], new Int32Array(16).fill(1))], outputNames: ["OUTPUT0"] };
    const [ra, rb] = await Promise.all([a.execute([req]), b.execute([req])]);
    assert.deepEqual(i32(out(ra.results[0], "OUTPUT0")), Array(16).fill(4));
    assert.deepEqual(i32(out(rb.results[0], "OUTPUT0")), Array(16).fill(4));
    await assert.rejects(model.createInstance(config, { name: "simple_1_0", kind: "KIND_GPU", deviceId: 0 }), /KIND_GPU/);
    // Releasing the model releases the instances still open.
    await model.release();
    await rejects(a.execute([req]), "INTERNAL", "simple_0_0");
    await rejects(b.execute([req]), "INTERNAL", "simple_0_1");
  });

  it("fails the batches of a worker that dies, then serves the next ones on a fresh worker", async () => {
    const { instance } = await loadInstance(EXAMPLES, "simple");
    const req = (k: number): BatchRequest => ({
      inputs: [tensor("INPUT0", "INT32", [1, 16], new Int32Array(16).fill(k)), tensor("INPUT1", "INT32", [1, 16], new Int32Array(16).fill(1))],
      outputNames: ["OUTPUT0"],
    });
    const pending = [1, 2, 3].map((k) => instance.execute([req(k)]));
    // Reach into the instance to kill its thread, as a native crash would.
    const worker = (instance as unknown as { worker: { worker: { terminate(): Promise<number> } } }).worker.worker;
    void worker.terminate();
    for (const p of pending) await rejects(p, "INTERNAL", "model 'simple' instance 'simple_0_0'", "exited");
    const after = await Promise.all([4, 5, 6].map((k) => instance.execute([req(k)])));
    assert.deepEqual(after.map((r) => i32(out(r.results[0], "OUTPUT0"))[0]), [5, 6, 7]);
    assert.notEqual((instance as unknown as { worker: { worker: unknown } }).worker.worker, worker, "a new worker thread");
    await instance.release();
  });

  it("release waits for the batch in progress, then ends the worker", async () => {
    const { model, instance } = await loadInstance(EXAMPLES, "simple");
    const req: BatchRequest = { inputs: [tensor("INPUT0", "INT32", [1, 16], new Int32Array(16).fill(1)), tensor("INPUT1", "INT32", [1, 16], new Int32Array(16))], outputNames: ["OUTPUT0"] };
    const running = instance.execute([req]);
    const released = instance.release();
    assert.deepEqual(i32(out((await running).results[0], "OUTPUT0")), Array(16).fill(1));
    await released;
    await rejects(instance.execute([req]), "INTERNAL", "simple_0_0");
    await model.release();
  });

  it("lets the process exit after release (no lingering worker)", async () => {
    const dir = path.join(tmp, "exit_model");
    await writeModel(path.join(dir, "1", "model.onnx"), addSubModel(OnnxType.FLOAT, ["batch", 2]));
    const backendUrl = pathToFileURL(path.join(ROOT, "dist", "src", "backends", "onnxruntime", "onnxruntime-backend.js")).href;
    const loggerUrl = pathToFileURL(path.join(ROOT, "dist", "src", "core", "observability", "logger.js")).href;
    const modelConfigUrl = pathToFileURL(path.join(ROOT, "dist", "src", "core", "repository", "model-config.js")).href;
    const script = `
      const { OnnxRuntimeBackend } = await import(${JSON.stringify(backendUrl)});
      const { Logger } = await import(${JSON.stringify(loggerUrl)});
      const { emptyModelConfig } = await import(${JSON.stringify(modelConfigUrl)});
      const config = emptyModelConfig(); config.name = "m";
      const model = await new OnnxRuntimeBackend().createModel({ name: "m", version: 1, modelDir: ${JSON.stringify(dir)},
        modelPath: ${JSON.stringify(path.join(dir, "1", "model.onnx"))}, config, backendConfig: {}, logger: new Logger({}, () => {}) });
      const done = model.autoCompleteConfig(config, 4);
      const insts = [await model.createInstance(done, { name: "m_0_0", kind: "KIND_CPU", deviceId: 0 }),
                     await model.createInstance(done, { name: "m_0_1", kind: "KIND_CPU", deviceId: 0 })];
      const data = new Uint8Array(new Float32Array([1, 2]).buffer);
      const r = await insts[1].execute([{ inputs: [{ name: "INPUT0", datatype: "FP32", shape: [1, 2], data }, { name: "INPUT1", datatype: "FP32", shape: [1, 2], data }], outputNames: ["OUTPUT0"] }]);
      console.log(Array.from(new Float32Array(r.results[0].outputs[0].data.slice().buffer)).join(","));
      for (const i of insts) await i.release();
      await model.release();
      console.log("released");
    `;
    const stdout = await new Promise<string>((resolve, reject) => {
      execFile(process.execPath, ["--input-type=module", "-e", script], { timeout: 30_000 }, (err, so, se) => (err ? reject(new Error(`${err.message}\n${se}`)) : resolve(so)));
    });
    assert.equal(stdout.trim(), "2,4\nreleased");
  });
});
