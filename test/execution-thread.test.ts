/**
 * Where an ONNX Runtime instance runs its model: its worker thread (the
 * default: the event loop keeps serving while a model computes) or, when a
 * model opts in with `execution_thread: event_loop`, the main thread.
 */
import assert from "node:assert/strict";
import fs from "node:fs/promises";
import path from "node:path";
import { describe, it } from "node:test";
import { createServer, makeTensor, tensorValues } from "../src/index.js";
import { EXAMPLES, httpRequest, startServer, tempRepository } from "./helpers.js";

const EVENT_LOOP = '\nparameters { key: "execution_thread" value: { string_value: "event_loop" } }\n';

describe("execution thread of ONNX Runtime instances", () => {
  it("the event loop answers health checks while a worker instance computes", async () => {
    const s = await startServer({ modelRepository: await tempRepository({ image_cnn: path.join(EXAMPLES, "image_cnn") }) });
    try {
      // A full batch of the mid-size CNN: tens of milliseconds of compute in one run.
      const image = new Float32Array(32 * 3 * 64 * 64).fill(0.5);
      let inferred = false;
      const running = s.core.infer({ model_name: "image_cnn", inputs: [makeTensor("INPUT", "FP32", [32, 3, 64, 64], image)] }).then(() => (inferred = true));
      await new Promise((r) => setImmediate(r));
      const health = await httpRequest(`${s.url}/v2/health/live`);
      assert.equal(health.status, 200);
      assert.equal(inferred, false, "the health check waited for the model");
      await running;
    } finally {
      await s.close();
    }
  });

  it("execution_thread: event_loop gives the same answers as a worker instance, including batched requests", async () => {
    const repo = await tempRepository({ simple: path.join(EXAMPLES, "simple"), image_classifier: path.join(EXAMPLES, "image_classifier") });
    const loopRepo = await tempRepository({ simple: path.join(EXAMPLES, "simple"), image_classifier: path.join(EXAMPLES, "image_classifier") });
    for (const m of ["simple", "image_classifier"]) await fs.appendFile(path.join(loopRepo, m, "config.pbtxt"), EVENT_LOOP + "dynamic_batching { }\n");
    const [worker, loop] = await Promise.all([createServer({ modelRepository: repo, quiet: true }), createServer({ modelRepository: loopRepo, quiet: true })]);
    try {
      const simple = (i: number) => ({
        model_name: "simple",
        inputs: [makeTensor("INPUT0", "INT32", [1, 16], new Int32Array(16).fill(i)), makeTensor("INPUT1", "INT32", [1, 16], new Int32Array(16).fill(2 * i))],
      });
      const image = (i: number) => ({ model_name: "image_classifier", inputs: [makeTensor("INPUT", "FP32", [1, 3, 32, 32], new Float32Array(3072).map((_, k) => Math.sin(k + i)))] });
      const requests = Array.from({ length: 12 }, (_, i) => [simple(i), image(i)]).flat();
      const [a, b] = await Promise.all([worker, loop].map((core) => Promise.all(requests.map((r) => core.infer(r)))));
      for (let i = 0; i < requests.length; i++) {
        assert.deepEqual(b![i]!.outputs.map((t) => [t.name, t.shape, Array.from(tensorValues(t) as ArrayLike<number>)]), a![i]!.outputs.map((t) => [t.name, t.shape, Array.from(tensorValues(t) as ArrayLike<number>)]));
      }
    } finally {
      await Promise.all([worker.stop(), loop.stop()]);
    }
  });

  it("refuses an unknown execution_thread value, naming the model and the value", async () => {
    const repo = await tempRepository({ simple: path.join(EXAMPLES, "simple") });
    await fs.appendFile(path.join(repo, "simple", "config.pbtxt"), '\nparameters { key: "execution_thread" value: { string_value: "main" } }\n');
    const core = await createServer({ modelRepository: repo, quiet: true });
    try {
      const index = await core.repositoryIndex(false);
      const entry = index.find((m) => m.name === "simple");
      assert.equal(entry?.state, "UNAVAILABLE");
      assert.match(entry?.reason ?? "", /model 'simple': parameter 'execution_thread' must be 'worker' or 'event_loop', got 'main'/);
    } finally {
      await core.stop();
    }
  });
});
