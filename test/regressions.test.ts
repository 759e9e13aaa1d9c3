import assert from "node:assert/strict";
import fs from "node:fs/promises";
import path from "node:path";
import { describe, it } from "node:test";
import { RateLimiter } from "../src/core/scheduling/rate-limiter.js";
import { RequestQueue, NO_POLICY } from "../src/core/scheduling/request-queue.js";
import { schedulingParams } from "../src/core/requests/request-params.js";
import { createServer, makeTensor } from "../src/index.js";
import { FIXTURES, tempRepository } from "./helpers.js";

/** Bugs found in review, each with the scenario that showed it. */
describe("regressions", () => {
  it("unloading a sequence model finishes while a new sequence waits for the slot an idle one holds", async () => {
    const repo = await tempRepository({ sequence_control: path.join(FIXTURES, "sequence_control") });
    const cfg = path.join(repo, "sequence_control", "config.pbtxt");
    await fs.writeFile(cfg, (await fs.readFile(cfg, "utf8")).replace("max_batch_size: 4", "max_batch_size: 1"));
    const core = await createServer({ modelRepository: repo, quiet: true });
    const step = (id: number, start: boolean) =>
      core.infer({
        model_name: "sequence_control",
        parameters: { sequence_id: id, sequence_start: start },
        inputs: [makeTensor("INPUT", "INT32", [1, 1], new Int32Array([1]))],
      });
    await step(1, true); // sequence 1 now idles in the only slot
    const waiting = step(2, true); // sequence 2 waits in the backlog
    const unloaded = core.unloadModel("sequence_control");
    const result = await Promise.race([
      Promise.all([waiting, unloaded]).then(() => "done"),
      new Promise((r) => setTimeout(() => r("hung"), 1500)),
    ]);
    assert.equal(result, "done");
    await core.stop();
  });

  it("the rate limiter does not add units when an instance registers while the resource is held", async () => {
    const limiter = new RateLimiter(new Map());
    const need = { resources: [{ name: "R", global: false, count: 1 }], priority: 1 };
    limiter.register(need);
    const release = await limiter.acquire(need, "a");
    limiter.register(need); // a second instance, loaded during traffic
    let granted = false;
    const second = limiter.acquire(need, "b").then((r) => {
      granted = true;
      return r;
    });
    await new Promise((r) => setImmediate(r));
    assert.equal(granted, false, "the second instance must wait for the unit");
    release();
    (await second)();
  });

  it("a non-integer sequence_id is a client error, not an internal one", () => {
    assert.throws(
      () => schedulingParams({ model_name: "m", inputs: [], parameters: { sequence_id: 1.5 } }),
      (e: { code?: string }) => e.code === "INVALID_ARG",
    );
  });

  it("a priority above the model's levels uses the default level, as Triton does", () => {
    const q = new RequestQueue({ priorityLevels: 3, defaultPriorityLevel: 1, defaultPolicy: NO_POLICY, levelPolicies: new Map() });
    const a = { enqueuedNs: 0n } as { enqueuedNs: bigint; level?: number };
    q.push(a, 99, undefined, "m");
    assert.equal(a.level, 1);
  });
});
