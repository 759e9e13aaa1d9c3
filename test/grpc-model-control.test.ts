import assert from "node:assert/strict";
import fs from "node:fs/promises";
import path from "node:path";
import { after, before, describe, it } from "node:test";
import { status } from "@grpc/grpc-js";
import type { Backend, BackendInstance } from "../src/core/backend.js";
import type { BatchResult } from "../src/core/requests/inference.js";
import { defaultBackends } from "../src/index.js";
import { EXAMPLES, GrpcTestClient, grpcError, startGrpcServer, tempRepository, type GrpcTestServer } from "./helpers.js";
import { S, assertSimpleOutputs, i32, simpleRaw } from "./grpc-simple.js";

/**
 * A backend whose executions wait until the test releases them, to hold
 * requests in the queue deterministically. Identity on INPUT0 → OUTPUT0.
 */
class GateBackend implements Backend {
  readonly name = "gate";
  readonly platforms = [] as const;
  readonly defaultModelFilename = "model.gate";
  readonly waiting: (() => void)[] = [];
  executed = 0;

  async createModel() {
    return {
      createInstance: async (_config: unknown, spec: { name: string }): Promise<BackendInstance> => ({
        name: spec.name,
        execute: (requests) =>
          new Promise<BatchResult>((resolve) => {
            this.executed += requests.length;
            this.waiting.push(() => resolve({ results: requests.map((r) => ({ outputs: r.inputs.map((t) => ({ ...t, name: "OUTPUT0" })) })) }));
          }),
        release: async () => undefined,
      }),
      release: async () => undefined,
    };
  }

  releaseAll(): void {
    for (const w of this.waiting.splice(0)) w();
  }
}

async function until(cond: () => boolean, what: string, ms = 5000): Promise<void> {
  const end = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 5));
  }
}

describe("gRPC frontend: cancellation and explicit model control", () => {
  let s: GrpcTestServer;
  let c: GrpcTestClient;
  const gate = new GateBackend();
  before(async () => {
    const repo = await tempRepository({ simple: path.join(EXAMPLES, "simple") });
    await fs.mkdir(path.join(repo, "gate", "1"), { recursive: true });
    await fs.writeFile(path.join(repo, "gate", "1", "model.gate"), "");
    await fs.writeFile(
      path.join(repo, "gate", "config.pbtxt"),
      `name: "gate"\nbackend: "gate"\nmax_batch_size: 0\n` +
        `input [ { name: "INPUT0" data_type: TYPE_INT32 dims: [ 1 ] } ]\n` +
        `output [ { name: "OUTPUT0" data_type: TYPE_INT32 dims: [ 1 ] } ]\n` +
        `instance_group [ { count: 1 kind: KIND_CPU } ]\n`,
    );
    s = await startGrpcServer({ modelRepository: repo, modelControlMode: "explicit", startupModels: ["gate"], backends: [gate, ...defaultBackends()] });
    c = new GrpcTestClient(s.grpcAddress);
  });
  after(async () => {
    gate.releaseAll();
    c.close();
    await s.close();
  });

  const gateRequest = (id: string) => ({
    modelName: "gate",
    id,
    inputs: [{ name: "INPUT0", datatype: "INT32", shape: [1n] }],
    rawInputContents: [i32([Number(id.replace(/\D/g, "")) || 0])],
  });
  const gateStats = () => s.core.statistics("gate").model_stats[0]!;
  const model = () => s.core.getModel("gate");

  /**
   * Starts calls until one waits in the scheduler's queue (the instance takes
   * as many as its pipeline holds); returns the executing ones and the queued one.
   */
  async function fillThenQueue<T>(start: (id: string) => T): Promise<{ executing: T[]; queued: T }> {
    const executing: T[] = [];
    for (let i = 0; i < 32; i++) {
      const before = gate.waiting.length;
      const call = start(`q${i}`);
      await until(() => gate.waiting.length > before || model().pendingRequests > 0, "the request to execute or queue");
      if (model().pendingRequests > 0) return { executing, queued: call };
      executing.push(call);
    }
    throw new Error("no request ever queued");
  }

  it("drops a queued ModelInfer from core when the client cancels it", async () => {
    const executed = gate.executed;
    const { executing, queued } = await fillThenQueue((id) => c.start(S.modelInfer, gateRequest(id)));
    const failedBefore = gateStats().inference_stats.fail!.count;
    queued.call.cancel();
    const err = await grpcError(queued.response);
    assert.equal(err.code, status.CANCELLED);
    await until(() => model().pendingRequests === 0 && model().inflightRequests === executing.length, "the cancelled request to leave core");
    assert.equal(gateStats().inference_stats.fail!.count, failedBefore + 1);
    gate.releaseAll();
    for (const e of executing) assert.match((await e.response).id, /^q\d$/);
    assert.equal(gate.executed, executed + executing.length, "the cancelled request never executed");
  });

  it("drops a queued ModelInfer whose deadline passes", async () => {
    const executed = gate.executed;
    // Every call gets the deadline; only the queued one can be dropped before it runs.
    const deadline = Date.now() + 1000;
    const { executing, queued } = await fillThenQueue((id) => {
      const started = c.start(S.modelInfer, gateRequest(id), { deadline });
      started.response.catch(() => undefined); // executing calls expire client-side too
      return started;
    });
    const err = await grpcError(queued.response);
    assert.equal(err.code, status.DEADLINE_EXCEEDED);
    await until(() => model().pendingRequests === 0, "the expired request to leave the queue");
    gate.releaseAll();
    await Promise.allSettled(executing.map((e) => e.response));
    assert.equal(gate.executed, executed + executing.length, "the expired request never executed");
  });

  it("drops the queued requests of a cancelled stream", async () => {
    const executed = gate.executed;
    const stream = c.stream(S.modelStreamInfer);
    stream.on("error", () => undefined);
    const { executing } = await fillThenQueue((id) => stream.write(gateRequest(id)));
    stream.write(gateRequest("q9"));
    await until(() => model().pendingRequests === 2, "two stream requests queued");
    stream.cancel();
    await until(() => model().pendingRequests === 0, "the queued stream requests to leave core");
    gate.releaseAll();
    await until(() => model().inflightRequests === 0, "the executing requests to finish");
    assert.equal(gate.executed, executed + executing.length);
  });

  it("loads and unloads models in explicit mode", async () => {
    assert.equal((await c.unary(S.modelReady, { name: "simple" })).ready, false);
    await c.unary(S.repositoryModelLoad, { modelName: "simple" });
    assert.equal((await c.unary(S.modelReady, { name: "simple" })).ready, true);
    assertSimpleOutputs(await c.unary(S.modelInfer, simpleRaw()));
    const index = await c.unary(S.repositoryIndex, {});
    assert.deepEqual(index.models.map((m) => [m.name, m.version, m.state]), [
      ["gate", "1", "READY"],
      ["simple", "1", "READY"],
    ]);
    await c.unary(S.repositoryModelUnload, { modelName: "simple" });
    assert.equal((await c.unary(S.modelReady, { name: "simple" })).ready, false);
    const after = await c.unary(S.repositoryIndex, {});
    assert.deepEqual(after.models.find((m) => m.name === "simple")?.state, "UNAVAILABLE");

    let err = await grpcError(c.unary(S.repositoryModelLoad, { modelName: "nope" }));
    assert.equal(err.code, status.INVALID_ARGUMENT);
    err = await grpcError(c.unary(S.repositoryModelLoad, { modelName: "simple", parameters: { foo: { parameterChoice: { case: "boolParam", value: true } } } }));
    assert.deepEqual([err.code, err.details], [status.INVALID_ARGUMENT, "unrecognized load parameter 'foo'."]);
    err = await grpcError(c.unary(S.repositoryModelLoad, { modelName: "simple", parameters: { config: { parameterChoice: { case: "boolParam", value: true } } } }));
    assert.deepEqual([err.code, err.details], [status.INVALID_ARGUMENT, "invalid value type for load parameter 'config', expected string_param."]);
    err = await grpcError(c.unary(S.repositoryModelLoad, { modelName: "simple", parameters: { "file:1/model.onnx": { parameterChoice: { case: "stringParam", value: "x" } } } }));
    assert.deepEqual([err.code, err.details], [status.INVALID_ARGUMENT, "invalid value type for load parameter 'file:1/model.onnx', expected bytes_param."]);
    err = await grpcError(c.unary(S.repositoryModelLoad, { modelName: "simple", parameters: { "file:1/model.onnx": { parameterChoice: { case: "bytesParam", value: new Uint8Array(4) } } } }));
    assert.equal(err.code, status.INVALID_ARGUMENT);
    assert.match(err.details, /the 'config' parameter must be provided together with 'file:' parameters/);

    // A load with an override config (JSON), as tritonclient's load_model(config=...) sends it.
    const tensors = (prefix: string) => [0, 1].map((i) => ({ name: `${prefix}${i}`, data_type: "TYPE_INT32", dims: [16] }));
    const config = JSON.stringify({ name: "simple", platform: "onnxruntime_onnx", max_batch_size: 4, input: tensors("INPUT"), output: tensors("OUTPUT") });
    await c.unary(S.repositoryModelLoad, { modelName: "simple", parameters: { config: { parameterChoice: { case: "stringParam", value: config } } } });
    assert.equal((await c.unary(S.modelConfig, { name: "simple" })).config!.maxBatchSize, 4);
    assertSimpleOutputs(await c.unary(S.modelInfer, simpleRaw()));
    err = await grpcError(
      c.unary(S.repositoryModelUnload, { modelName: "simple", parameters: { unload_dependents: { parameterChoice: { case: "stringParam", value: "yes" } } } }),
    );
    assert.deepEqual([err.code, err.details], [status.INVALID_ARGUMENT, "invalid value type for 'unload_dependents' parameter, expected bool_param."]);
    await c.unary(S.repositoryModelUnload, { modelName: "simple", parameters: { unload_dependents: { parameterChoice: { case: "boolParam", value: true } } } });
  });
});
