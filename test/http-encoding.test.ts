/**
 * Response compression follows Triton: only inference responses honour
 * Accept-Encoding; every other route answers identity-encoded, because
 * Triton's clients read those bodies as they come (tritonclient.http.aio
 * sends `Accept-Encoding: gzip` on every request through aiohttp).
 */
import assert from "node:assert/strict";
import path from "node:path";
import zlib from "node:zlib";
import { after, before, describe, it } from "node:test";
import { EXAMPLES, httpRequest, startServer, tempRepository, type TestServer } from "./helpers.js";

const GZIP = { "Accept-Encoding": "gzip, deflate" };
const SIMPLE_BODY = JSON.stringify({
  inputs: [
    { name: "INPUT0", datatype: "INT32", shape: [1, 16], data: Array.from({ length: 16 }, (_, i) => i) },
    { name: "INPUT1", datatype: "INT32", shape: [1, 16], data: new Array(16).fill(1) },
  ],
});

describe("HTTP response encoding", () => {
  let s: TestServer;
  before(async () => {
    s = await startServer({
      modelRepository: await tempRepository({ simple: path.join(EXAMPLES, "simple"), simple_string: path.join(EXAMPLES, "simple_string") }),
      modelControlMode: "explicit",
      startupModels: ["simple"],
    });
  });
  after(() => s.close());

  const routes: [family: string, method: string, route: string, body?: string][] = [
    ["health", "GET", "/v2/health/live"],
    ["health", "GET", "/v2/health/ready"],
    ["server metadata", "GET", "/v2"],
    ["model metadata", "GET", "/v2/models/simple"],
    ["model ready", "GET", "/v2/models/simple/ready"],
    ["model configuration", "GET", "/v2/models/simple/config"],
    ["statistics", "GET", "/v2/models/stats"],
    ["statistics", "GET", "/v2/models/simple/stats"],
    ["repository", "POST", "/v2/repository/index", "{}"],
    ["repository", "POST", "/v2/repository/models/simple_string/load", "{}"],
    ["repository", "POST", "/v2/repository/models/simple_string/unload", "{}"],
    ["shared memory", "GET", "/v2/systemsharedmemory/status"],
    ["shared memory", "GET", "/v2/cudasharedmemory/status"],
    ["trace", "GET", "/v2/trace/setting"],
    ["logging", "GET", "/v2/logging"],
    ["errors", "GET", "/v2/models/nope"],
    ["errors", "GET", "/v2/no/such/route"],
    ["errors", "POST", "/v2/models/simple/infer", "{ not json"],
  ];
  for (const [family, method, route, body] of routes) {
    it(`${family}: ${method} ${route} answers identity-encoded to Accept-Encoding: gzip, deflate`, async () => {
      const res = await httpRequest(`${s.url}${route}`, { method, headers: GZIP, body });
      assert.equal(res.headers["content-encoding"], undefined);
      if (res.body.byteLength) assert.doesNotThrow(() => JSON.parse(res.body.toString("utf8")), `${route}: the body is not plain JSON`);
    });
  }

  it("inference responses are compressed as Accept-Encoding asks (gzip, deflate), JSON and binary", async () => {
    for (const [accept, inflate] of [["gzip", zlib.gunzipSync], ["deflate", zlib.inflateSync]] as const) {
      const res = await httpRequest(`${s.url}/v2/models/simple/infer`, { method: "POST", headers: { "Accept-Encoding": accept }, body: SIMPLE_BODY });
      assert.equal(res.status, 200);
      assert.equal(res.headers["content-encoding"], accept);
      const json = JSON.parse(inflate(res.body).toString("utf8"));
      assert.deepEqual(json.outputs[0].data, Array.from({ length: 16 }, (_, i) => i + 1));
    }
  });

  it("a client that advertises gzip by default (fetch) reads every route family and inference", async () => {
    // undici's fetch sends Accept-Encoding itself and exposes Content-Encoding while it decodes.
    const get = async (route: string, init?: RequestInit) => {
      const res = await fetch(`${s.url}${route}`, init);
      const text = await res.text();
      return { status: res.status, encoding: res.headers.get("content-encoding"), json: text ? JSON.parse(text) : undefined };
    };
    assert.equal((await get("/v2/health/ready")).status, 200);
    const meta = await get("/v2");
    assert.equal(meta.encoding, null);
    assert.equal(meta.json.name, "triton");
    const model = await get("/v2/models/simple");
    assert.equal(model.encoding, null);
    assert.equal(model.json.name, "simple");
    const config = await get("/v2/models/simple/config");
    assert.equal(config.encoding, null);
    assert.equal(config.json.max_batch_size, 8);
    const stats = await get("/v2/models/simple/stats");
    assert.equal(stats.encoding, null);
    assert.equal(stats.json.model_stats[0].name, "simple");
    const index = await get("/v2/repository/index", { method: "POST", body: "{}" });
    assert.equal(index.encoding, null);
    assert.ok(index.json.some((m: { name: string }) => m.name === "simple"));
    const infer = await get("/v2/models/simple/infer", { method: "POST", body: SIMPLE_BODY });
    assert.equal(infer.status, 200);
    assert.equal(infer.encoding, "gzip");
    assert.deepEqual(infer.json.outputs[1].data, Array.from({ length: 16 }, (_, i) => i - 1));
  });
});
