/**
 * The in-process API (Triton's C-API role): `createServer` over a repository
 * and `infer()` on it, with no sockets at all, answering what an HTTP client
 * would get.
 */
import assert from "node:assert/strict";
import net from "node:net";
import { after, before, describe, it } from "node:test";
import { createServer, makeTensor, tensorValues, TritonError, type InferenceServer } from "../src/index.js";
import { EXAMPLES } from "./helpers.js";

describe("in-process API", () => {
  let server: InferenceServer;
  const sockets: string[] = [];
  const originalListen = net.Server.prototype.listen;
  const originalConnect = net.Socket.prototype.connect;

  before(async () => {
    // Any socket opened from here on fails the "no sockets" test below.
    net.Server.prototype.listen = function (this: net.Server, ...args: unknown[]) {
      sockets.push(`listen ${JSON.stringify(args[0])}`);
      return (originalListen as (...a: unknown[]) => net.Server).apply(this, args);
    } as typeof net.Server.prototype.listen;
    net.Socket.prototype.connect = function (this: net.Socket, ...args: unknown[]) {
      sockets.push(`connect ${JSON.stringify(args[0])}`);
      return (originalConnect as (...a: unknown[]) => net.Socket).apply(this, args);
    } as typeof net.Socket.prototype.connect;
    server = await createServer({ modelRepository: EXAMPLES, quiet: true });
  });
  after(async () => {
    await server?.stop();
    net.Server.prototype.listen = originalListen;
    net.Socket.prototype.connect = originalConnect;
  });

  it("is live and ready once createServer resolves", () => {
    assert.equal(server.isLive(), true);
    assert.equal(server.isReady(), true);
    assert.equal(server.isModelReady("simple"), true);
    assert.deepEqual(server.metadata().name, "triton");
  });

  it("runs simple on typed arrays and returns typed arrays", async () => {
    const a = Int32Array.from({ length: 32 }, (_, i) => i);
    const b = new Int32Array(32).fill(5);
    const res = await server.infer({
      model_name: "simple",
      id: "in-process-1",
      inputs: [makeTensor("INPUT0", "INT32", [2, 16], a), makeTensor("INPUT1", "INT32", [2, 16], b)],
    });
    assert.equal(res.model_name, "simple");
    assert.equal(res.model_version, "1");
    assert.equal(res.id, "in-process-1");
    assert.deepEqual(res.outputs.map((o) => [o.name, o.datatype, o.shape]), [
      ["OUTPUT0", "INT32", [2, 16]],
      ["OUTPUT1", "INT32", [2, 16]],
    ]);
    const sum = tensorValues(res.outputs[0]!);
    assert.ok(sum instanceof Int32Array);
    assert.deepEqual(Array.from(sum as Int32Array), Array.from(a, (x) => x + 5));
    assert.deepEqual(Array.from(tensorValues(res.outputs[1]!) as Int32Array), Array.from(a, (x) => x - 5));
  });

  it("returns only the requested outputs", async () => {
    const res = await server.infer({
      model_name: "simple",
      inputs: [makeTensor("INPUT0", "INT32", [1, 16], new Int32Array(16).fill(1)), makeTensor("INPUT1", "INT32", [1, 16], new Int32Array(16).fill(1))],
      outputs: [{ name: "OUTPUT1" }],
    });
    assert.deepEqual(res.outputs.map((o) => o.name), ["OUTPUT1"]);
    assert.deepEqual(Array.from(tensorValues(res.outputs[0]!) as Int32Array), Array(16).fill(0));
  });

  it("round-trips strings through the BYTES model", async () => {
    const res = await server.infer({ model_name: "simple_string", inputs: [makeTensor("INPUT0", "BYTES", [1, 3], ["a", "ü", ""])] });
    assert.deepEqual(tensorValues(res.outputs[0]!), ["a", "ü", ""]);
  });

  it("classifies in process as over HTTP", async () => {
    const res = await server.infer({
      model_name: "image_classifier",
      inputs: [makeTensor("INPUT", "FP32", [1, 3, 32, 32], Float32Array.from({ length: 3072 }, (_, i) => Math.sin(i)))],
      outputs: [{ name: "OUTPUT", classification: 2 }],
    });
    assert.equal(res.outputs[0]!.datatype, "BYTES");
    assert.deepEqual(res.outputs[0]!.shape, [1, 2]);
    for (const e of tensorValues(res.outputs[0]!) as string[]) assert.match(e, /^\d\.\d{6}:\d:[a-z]+$/);
  });

  it("rejects bad requests with TritonError codes and Triton's messages", async () => {
    await assert.rejects(
      server.infer({ model_name: "nope", inputs: [] }),
      (e: unknown) => e instanceof TritonError && e.code === "INVALID_ARG" && e.message === "Request for unknown model: 'nope' is not found",
    );
    await assert.rejects(
      server.infer({ model_name: "simple", model_version: "9", inputs: [] }),
      (e: unknown) => e instanceof TritonError && e.code === "NOT_FOUND",
    );
    await assert.rejects(
      server.infer({
        model_name: "simple",
        inputs: [makeTensor("INPUT0", "INT32", [9, 16], new Int32Array(144)), makeTensor("INPUT1", "INT32", [9, 16], new Int32Array(144))],
      }),
      (e: unknown) => (e as TritonError).code === "INVALID_ARG" && (e as Error).message.endsWith("inference request batch-size must be <= 8 for 'simple'"),
    );
    await assert.rejects(
      server.infer({ model_name: "simple", inputs: [makeTensor("INPUT0", "FP32", [1, 16], new Float32Array(16)), makeTensor("INPUT1", "INT32", [1, 16], new Int32Array(16))] }),
      (e: unknown) => (e as TritonError).code === "INVALID_ARG" && /'INPUT0'.*'simple'/.test((e as Error).message),
    );
  });

  it("answers metadata, config and statistics as the HTTP routes do", () => {
    const meta = server.modelMetadata("simple");
    assert.deepEqual(meta.inputs[0], { name: "INPUT0", datatype: "INT32", shape: [-1, 16] });
    const config = server.modelConfigJson("simple") as Record<string, unknown>;
    assert.equal(config.max_batch_size, 8);
    const stats = server.statistics("simple");
    assert.equal(stats.model_stats[0]!.name, "simple");
    assert.ok(stats.model_stats[0]!.inference_count >= 3);
  });

  it("runs many requests concurrently", async () => {
    const results = await Promise.all(
      Array.from({ length: 20 }, (_, k) =>
        server.infer({
          model_name: "simple",
          inputs: [makeTensor("INPUT0", "INT32", [1, 16], new Int32Array(16).fill(k)), makeTensor("INPUT1", "INT32", [1, 16], new Int32Array(16).fill(1))],
        }),
      ),
    );
    results.forEach((r, k) => assert.equal((tensorValues(r.outputs[0]!) as Int32Array)[0], k + 1));
  });

  it("opened no socket at all", () => {
    assert.deepEqual(sockets, []);
  });
});
