/**
 * `@tritium/client` against a real Tritium over real HTTP and gRPC: one
 * contract suite that both clients run, every call of the shared interface,
 * errors compared with what the server itself answers on the wire.
 */
import assert from "node:assert/strict";
import fs from "node:fs";
import fsp from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { after, before, describe, it } from "node:test";
import { GrpcClient, HttpClient, InferenceServerError, type InferenceServerClient } from "@tritium/client";
import { GRPCInferenceService } from "../src/gen/inference/grpc_service_pb.js";
import { EXAMPLES, GrpcTestClient, grpcError, startGrpcServer, type GrpcTestServer } from "./helpers.js";

/** Runs until its client goes away (or 3 s pass), then answers how many 10 ms naps it took. */
const SLEEPER = [`
name: "sleeper"
backend: "js"
max_batch_size: 0
input [ { name: "IN" data_type: TYPE_INT32 dims: [ 1 ] } ]
output [ { name: "NAPS" data_type: TYPE_INT32 dims: [ 1 ] } ]`, `
export default {
  async execute(requests) {
    return Promise.all(requests.map(async (r) => {
      let naps = 0;
      while (naps < 300 && !r.isCancelled()) { await new Promise((res) => setTimeout(res, 10)); naps++; }
      return { outputs: { NAPS: { shape: [1], data: [naps] } } };
    }));
  },
};`];

const A = Int32Array.from({ length: 16 }, (_, i) => i);
const B = Int32Array.from({ length: 16 }, (_, i) => 3 * i - 7);
const simpleInputs = (a = A, b = B) => [
  { name: "INPUT0", datatype: "INT32" as const, shape: [1, 16], data: a },
  { name: "INPUT1", datatype: "INT32" as const, shape: [1, 16], data: b },
];
const sum = Array.from(A, (x, i) => x + B[i]!);
const diff = Array.from(A, (x, i) => x - B[i]!);

let repo: string;
let server: GrpcTestServer;
let raw: GrpcTestClient;
const shmNames: string[] = [];

before(async () => {
  repo = await fsp.mkdtemp(path.join(os.tmpdir(), "tritium-client-"));
  for (const m of ["simple", "simple_string", "identity_fp32", "image_classifier"]) {
    await fsp.cp(path.join(EXAMPLES, m), path.join(repo, m), { recursive: true });
  }
  await fsp.mkdir(path.join(repo, "sleeper", "1"), { recursive: true });
  await fsp.writeFile(path.join(repo, "sleeper", "config.pbtxt"), SLEEPER[0]!);
  await fsp.writeFile(path.join(repo, "sleeper", "1", "model.js"), SLEEPER[1]!);
  server = await startGrpcServer({
    modelRepository: repo,
    modelControlMode: "explicit",
    startupModels: ["simple", "simple_string", "identity_fp32", "image_classifier", "sleeper"],
    allowClientShm: true,
  });
  raw = new GrpcTestClient(server.grpcAddress);
});

after(async () => {
  raw?.close();
  await server?.close();
  await fsp.rm(repo, { recursive: true, force: true });
  for (const n of shmNames) fs.rmSync(path.join("/dev/shm", n), { force: true });
});

/** The promise's rejection, which must be an InferenceServerError. */
async function failure(p: Promise<unknown>): Promise<InferenceServerError> {
  try {
    await p;
  } catch (e) {
    assert.ok(e instanceof InferenceServerError, `expected an InferenceServerError, got ${String(e)}`);
    return e;
  }
  assert.fail("expected the call to fail");
}

/** What the server answers on the wire for an inference on a model it does not know. */
async function wireUnknownModelError(protocol: "http" | "grpc"): Promise<{ status: number | string; message: string }> {
  if (protocol === "http") {
    const res = await fetch(`${server.url}/v2/models/nope/infer`, { method: "POST", body: JSON.stringify({ inputs: [] }) });
    return { status: res.status, message: ((await res.json()) as { error: string }).error };
  }
  const e = await grpcError(raw.unary(GRPCInferenceService.method.modelInfer, { modelName: "nope" }));
  return { status: (await import("@grpc/grpc-js")).status[e.code], message: e.details };
}

for (const protocol of ["http", "grpc"] as const) {
  describe(`${protocol} client`, () => {
    let client: InferenceServerClient;
    before(() => {
      client = protocol === "http" ? new HttpClient(server.url) : new GrpcClient(server.grpcAddress);
    });
    after(() => client.close());

    it("reports the server live and ready, with Triton's metadata", async () => {
      assert.equal(await client.isServerLive(), true);
      assert.equal(await client.isServerReady(), true);
      const meta = await client.getServerMetadata();
      assert.equal(meta.name, "triton");
      assert.match(meta.version, /^\d+\.\d+\.\d+/);
      assert.ok(meta.extensions.includes("binary_tensor_data") && meta.extensions.includes("statistics"), meta.extensions.join(" "));
    });

    it("says a loaded model is ready and an unknown one is not", async () => {
      assert.equal(await client.isModelReady("simple"), true);
      assert.equal(await client.isModelReady("simple", "1"), true);
      assert.equal(await client.isModelReady("nope"), false);
    });

    it("reads model metadata and the configuration in /config's JSON form", async () => {
      const meta = await client.getModelMetadata("simple");
      assert.deepEqual(meta, {
        name: "simple",
        versions: ["1"],
        platform: "onnxruntime_onnx",
        inputs: [{ name: "INPUT0", datatype: "INT32", shape: [-1, 16] }, { name: "INPUT1", datatype: "INT32", shape: [-1, 16] }],
        outputs: [{ name: "OUTPUT0", datatype: "INT32", shape: [-1, 16] }, { name: "OUTPUT1", datatype: "INT32", shape: [-1, 16] }],
      });
      const config = await client.getModelConfig("image_classifier", "1");
      assert.equal(config.name, "image_classifier");
      assert.equal(config.max_batch_size, 16);
      assert.deepEqual(config.input?.map((t) => [t.name, t.data_type, t.dims]), [["INPUT", "TYPE_FP32", [3, 32, 32]]]);
      assert.equal(config.output?.[0]?.label_filename, "labels.txt");
    });

    it("infers with typed arrays: sum and difference from simple, the request id echoed", async () => {
      const r = await client.infer("simple", simpleInputs(), { requestId: `req-${protocol}` });
      assert.equal(r.modelName, "simple");
      assert.equal(r.modelVersion, "1");
      assert.equal(r.id, `req-${protocol}`);
      assert.deepEqual(r.outputs.map((o) => [o.name, o.datatype, o.shape]), [["OUTPUT0", "INT32", [1, 16]], ["OUTPUT1", "INT32", [1, 16]]]);
      assert.ok(r.asArray("OUTPUT0") instanceof Int32Array);
      assert.deepEqual(Array.from(r.asArray("OUTPUT0") as Int32Array), sum);
      assert.deepEqual(Array.from(r.asArray("OUTPUT1") as Int32Array), diff);
    });

    it("returns only the outputs asked for, from plain number arrays and a batch of two", async () => {
      const a = [...A, ...A];
      const b = [...B, ...B];
      const r = await client.infer(
        "simple",
        [{ name: "INPUT0", datatype: "INT32", shape: [2, 16], data: a }, { name: "INPUT1", datatype: "INT32", shape: [2, 16], data: b }],
        { outputs: [{ name: "OUTPUT1" }] },
      );
      assert.deepEqual(r.outputs.map((o) => [o.name, o.shape]), [["OUTPUT1", [2, 16]]]);
      assert.deepEqual(Array.from(r.asArray("OUTPUT1") as Int32Array), [...diff, ...diff]);
    });

    it("sends BYTES from strings and Uint8Arrays and reads them back", async () => {
      const elements = ["hello", "", "wörld", new TextEncoder().encode("raw ✓")];
      const r = await client.infer("simple_string", [{ name: "INPUT0", datatype: "BYTES", shape: [1, 4], data: elements }]);
      const out = r.asArray("OUTPUT0") as Uint8Array[];
      assert.deepEqual(out.map((e) => Array.from(e)), elements.map((e) => Array.from(typeof e === "string" ? new TextEncoder().encode(e) : e)));
      assert.deepEqual(r.asStrings("OUTPUT0").slice(0, 3), ["hello", "", "wörld"]);
    });

    it("sends FP32 from a Float64Array and reads FP32 back", async () => {
      const r = await client.infer("identity_fp32", [{ name: "INPUT0", datatype: "FP32", shape: [1, 3], data: new Float64Array([1.5, -0.25, 1024]) }]);
      assert.ok(r.asArray("OUTPUT0") instanceof Float32Array);
      assert.deepEqual(Array.from(r.asArray("OUTPUT0") as Float32Array), [1.5, -0.25, 1024]);
    });

    it("asks for classification and gets the top classes as score:index:label, best first", async () => {
      const image = Float32Array.from({ length: 3 * 32 * 32 }, (_, i) => Math.sin(i) * 0.5);
      const input = [{ name: "INPUT", datatype: "FP32" as const, shape: [1, 3, 32, 32], data: image }];
      const full = Array.from((await client.infer("image_classifier", input)).asArray("OUTPUT") as Float32Array);
      const r = await client.infer("image_classifier", input, { outputs: [{ name: "OUTPUT", classification: 3 }] });
      assert.deepEqual(r.output("OUTPUT")?.shape, [1, 3]);
      const classes = r.asStrings("OUTPUT").map((s) => s.split(":"));
      const best = full.map((score, index) => ({ score, index })).sort((x, y) => y.score - x.score).slice(0, 3);
      assert.deepEqual(classes.map((c) => Number(c[1])), best.map((b) => b.index));
      for (const [i, c] of classes.entries()) assert.ok(Math.abs(Number(c[0]) - best[i]!.score) < 1e-5);
      const labels = fs.readFileSync(path.join(EXAMPLES, "image_classifier", "labels.txt"), "utf8").trim().split("\n");
      assert.deepEqual(classes.map((c) => c[2]), best.map((b) => labels[b.index]));
    });

    it("rejects an inference on an unknown model with the server's own status and message", async () => {
      const e = await failure(client.infer("nope", simpleInputs()));
      const wire = await wireUnknownModelError(protocol);
      assert.equal(e.message, wire.message);
      assert.equal(e.status, wire.status);
      assert.equal(e.message, "Request for unknown model: 'nope' is not found");
      assert.equal(e.status, protocol === "http" ? 400 : "INVALID_ARGUMENT");
    });

    it("rejects metadata of an unknown model and a wrong shape with the server's messages", async () => {
      const meta = await failure(client.getModelMetadata("nope"));
      assert.match(meta.message, /^Request for unknown model: 'nope'/);
      const shape = await failure(client.infer("simple", [
        { name: "INPUT0", datatype: "INT32", shape: [1, 15], data: A.subarray(0, 15) },
        { name: "INPUT1", datatype: "INT32", shape: [1, 15], data: B.subarray(0, 15) },
      ]));
      assert.match(shape.message, /unexpected shape for input 'INPUT0' for model 'simple'/);
      assert.equal(shape.status, protocol === "http" ? 400 : "INVALID_ARGUMENT");
    });

    it("refuses input data that does not fill its shape before sending anything", async () => {
      const e = await failure(client.infer("simple", [{ name: "INPUT0", datatype: "INT32", shape: [1, 16], data: [1, 2, 3] }]));
      assert.equal(e.status, "INVALID_ARGUMENT");
      assert.match(e.message, /input 'INPUT0' has 3 elements/);
    });

    it("cancels an inference in flight when its AbortSignal fires", async () => {
      const controller = new AbortController();
      const pending = client.infer("sleeper", [{ name: "IN", datatype: "INT32", shape: [1], data: [0] }], { signal: controller.signal });
      setTimeout(() => controller.abort(), 50);
      const e = await failure(pending);
      assert.equal(e.status, "CANCELLED");
    });

    it("rejects at once with a signal that has already fired, carrying the abort reason", async () => {
      const e = await failure(client.infer("simple", simpleInputs(), { signal: AbortSignal.abort(new Error("user gave up")) }));
      assert.equal(e.status, "CANCELLED");
      assert.equal(e.message, "user gave up");
    });

    it("sends sequence, priority and timeout parameters the server accepts, and rejects bad ones with its message", async () => {
      const ok = await client.infer("simple", simpleInputs(), { sequenceId: 0, priority: 1, timeout: 5_000_000, parameters: { custom: "x", n: 2.5 } });
      assert.deepEqual(Array.from(ok.asArray("OUTPUT0") as Int32Array), sum);
      const e = await failure(client.infer("simple", simpleInputs(), { parameters: { priority: "high" } }));
      assert.match(e.message, /priority/);
    });

    it("lists the repository, unloads and reloads a model", async () => {
      const index = await client.getModelRepositoryIndex();
      const entry = index.find((m) => m.name === "identity_fp32");
      assert.deepEqual([entry?.name, entry?.version, entry?.state], ["identity_fp32", "1", "READY"]);
      await client.unloadModel("identity_fp32");
      assert.equal(await client.isModelReady("identity_fp32"), false);
      const after = await client.getModelRepositoryIndex();
      assert.equal(after.find((m) => m.name === "identity_fp32")?.state, "UNAVAILABLE");
      assert.ok((await client.getModelRepositoryIndex({ ready: true })).every((m) => m.name !== "identity_fp32"));
      await client.loadModel("identity_fp32");
      assert.equal(await client.isModelReady("identity_fp32"), true);
    });

    it("loads a model from a configuration and files of the caller's, and reports a failed load's reason", async () => {
      const name = `pushed_${protocol}`;
      const config = {
        name, backend: "onnxruntime", max_batch_size: 8,
        input: [{ name: "INPUT0", data_type: "TYPE_INT32", dims: [16] }, { name: "INPUT1", data_type: "TYPE_INT32", dims: [16] }],
        output: [{ name: "OUTPUT0", data_type: "TYPE_INT32", dims: [16] }, { name: "OUTPUT1", data_type: "TYPE_INT32", dims: [16] }],
      };
      const onnx = await fsp.readFile(path.join(EXAMPLES, "simple", "1", "model.onnx"));
      await client.loadModel(name, { config, files: { "1/model.onnx": onnx } });
      const r = await client.infer(name, simpleInputs());
      assert.deepEqual(Array.from(r.asArray("OUTPUT0") as Int32Array), sum);
      await client.unloadModel(name);
      const e = await failure(client.loadModel(`other_${protocol}`, { files: { "file:1/model.onnx": onnx } }));
      assert.match(e.message, /'config' parameter must be provided/);
      // A failed load leaves the server unready (strict readiness) until the model is unloaded.
      await client.unloadModel(`other_${protocol}`);
      assert.equal(await client.isServerReady(), true);
    });

    it("reads statistics that count this client's inferences, as numbers", async () => {
      const before = (await client.getInferenceStatistics("simple", "1")).model_stats[0]!;
      await client.infer("simple", simpleInputs());
      const stats = await client.getInferenceStatistics("simple");
      const s = stats.model_stats[0]!;
      assert.equal(s.name, "simple");
      assert.equal(s.version, "1");
      assert.equal(typeof s.inference_count, "number");
      assert.equal(s.inference_stats.success.count, before.inference_stats.success.count + 1);
      assert.ok(s.inference_stats.compute_infer.ns > before.inference_stats.compute_infer.ns);
      const all = await client.getInferenceStatistics();
      assert.ok(all.model_stats.some((m) => m.name === "image_classifier"));
    });

    it("reads, changes and resets trace settings, globally and for a model", async () => {
      const global = await client.getTraceSettings();
      assert.ok(Array.isArray(global.trace_level));
      assert.equal(typeof global.trace_rate, "string");
      const changed = await client.updateTraceSettings({ trace_rate: "7" }, "simple");
      assert.equal(changed.trace_rate, "7");
      assert.equal((await client.getTraceSettings("simple")).trace_rate, "7");
      assert.equal((await client.getTraceSettings()).trace_rate, global.trace_rate);
      const reset = await client.updateTraceSettings({ trace_rate: null }, "simple");
      assert.equal(reset.trace_rate, global.trace_rate);
    });

    it("reads and changes log settings", async () => {
      const settings = await client.getLogSettings();
      assert.equal(settings.log_verbose_level, 0);
      assert.equal(typeof settings.log_info, "boolean");
      const changed = await client.updateLogSettings({ log_verbose_level: 2 });
      assert.equal(changed.log_verbose_level, 2);
      assert.equal((await client.updateLogSettings({ log_verbose_level: 0 })).log_verbose_level, 0);
    });

    it("registers system shared memory, infers from and into it, and unregisters it", async () => {
      const name = `tritium-client-${process.pid}-${protocol}`;
      shmNames.push(name);
      const region = Buffer.alloc(256);
      Buffer.from(A.buffer).copy(region, 0);
      Buffer.from(B.buffer).copy(region, 64);
      fs.writeFileSync(path.join("/dev/shm", name), region);
      await client.registerSystemSharedMemory("io", `/${name}`, 256);
      assert.deepEqual(await client.getSystemSharedMemoryStatus(), [{ name: "io", key: `/${name}`, offset: 0, byte_size: 256 }]);
      assert.deepEqual(await client.getSystemSharedMemoryStatus("io"), [{ name: "io", key: `/${name}`, offset: 0, byte_size: 256 }]);
      const r = await client.infer(
        "simple",
        [
          { name: "INPUT0", datatype: "INT32", shape: [1, 16], sharedMemory: { region: "io", byteSize: 64 } },
          { name: "INPUT1", datatype: "INT32", shape: [1, 16], sharedMemory: { region: "io", byteSize: 64, offset: 64 } },
        ],
        { outputs: [{ name: "OUTPUT0", sharedMemory: { region: "io", byteSize: 64, offset: 128 } }, { name: "OUTPUT1" }] },
      );
      assert.equal(r.output("OUTPUT0")?.data.length, 0);
      assert.deepEqual(Array.from(r.asArray("OUTPUT1") as Int32Array), diff);
      const written = fs.readFileSync(path.join("/dev/shm", name)).subarray(128, 192);
      assert.deepEqual(Array.from(new Int32Array(Uint8Array.from(written).buffer)), sum);
      await client.unregisterSystemSharedMemory("io");
      assert.deepEqual(await client.getSystemSharedMemoryStatus(), []);
      await client.unregisterSystemSharedMemory();
    });
  });
}

describe("http client specifics", () => {
  it("talks JSON tensors both ways when binary data is off, binary by default", async () => {
    const seen: string[] = [];
    const recording: typeof fetch = async (input, init) => {
      const res = await fetch(input, init);
      if (String(input).endsWith("/infer")) seen.push(`${new Headers(init?.headers).get("content-type")} -> ${res.headers.get("content-type")}`);
      return res;
    };
    const json = new HttpClient(server.url, { binaryData: false, fetch: recording });
    const r = await json.infer("simple", simpleInputs());
    assert.deepEqual(Array.from(r.asArray("OUTPUT0") as Int32Array), sum);
    const binary = new HttpClient(server.url.replace("http://", ""), { fetch: recording });
    const rb = await binary.infer("simple", simpleInputs(), { outputs: [{ name: "OUTPUT0" }, { name: "OUTPUT1", binaryData: false }] });
    assert.deepEqual(Array.from(rb.asArray("OUTPUT1") as Int32Array), diff);
    assert.equal(seen[0], "application/json -> application/json");
    assert.match(seen[1]!, /^application\/octet-stream -> application\/octet-stream/);
  });

  it("rejects with UNAVAILABLE when nothing listens at the address", async () => {
    const client = new HttpClient("127.0.0.1:1");
    const e = await failure(client.isServerLive());
    assert.equal(e.status, "UNAVAILABLE");
  });
});
