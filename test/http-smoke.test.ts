import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import { EXAMPLES, getJson, postJson, startServer, type TestServer } from "./helpers.js";

describe("HTTP server over the example repository", () => {
  let s: TestServer;
  before(async () => {
    s = await startServer({ modelRepository: EXAMPLES });
  });
  after(async () => {
    await s.close();
  });

  it("answers liveness and readiness with 200 and an empty body", async () => {
    for (const route of ["/v2/health/live", "/v2/health/ready"]) {
      const res = await fetch(s.url + route);
      assert.equal(res.status, 200);
      assert.equal(await res.text(), "");
    }
  });

  it("adds and subtracts with the simple model over JSON", async () => {
    const a = Array.from({ length: 16 }, (_, i) => i);
    const b = Array.from({ length: 16 }, () => 1);
    const res = await postJson(`${s.url}/v2/models/simple/infer`, {
      id: "7",
      inputs: [
        { name: "INPUT0", shape: [1, 16], datatype: "INT32", data: a },
        { name: "INPUT1", shape: [1, 16], datatype: "INT32", data: [b] },
      ],
    });
    assert.equal(res.status, 200, JSON.stringify(res.json));
    assert.equal(res.json.id, "7");
    assert.equal(res.json.model_name, "simple");
    assert.equal(res.json.model_version, "1");
    assert.deepEqual(res.json.outputs[0], { name: "OUTPUT0", datatype: "INT32", shape: [1, 16], data: a.map((x) => x + 1) });
    assert.deepEqual(res.json.outputs[1].data, a.map((x) => x - 1));
  });

  it("reports an unknown model as 400 with Triton's message", async () => {
    const res = await postJson(`${s.url}/v2/models/nope/infer`, { inputs: [] });
    assert.equal(res.status, 400);
    assert.deepEqual(res.json, { error: "Request for unknown model: 'nope' is not found" });
  });

  it("returns server metadata named by --id", async () => {
    const res = await getJson(`${s.url}/v2`);
    assert.equal(res.json.name, "triton");
    assert.ok(Array.isArray(res.json.extensions));
  });
});
