/**
 * Shutdown under load, through the real CLI: SIGTERM with 200 requests in
 * flight over HTTP and a gRPC stream loses none; a request that cannot
 * finish within --exit-timeout-secs gets a clear "shutting down" error and
 * the process still exits 0; a second SIGTERM exits at once.
 */
import assert from "node:assert/strict";
import fs from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { after, before, describe, it } from "node:test";
import { S, i32 } from "./grpc-simple.js";
import { spawn } from "node:child_process";
import { GrpcTestClient, ROOT, postJson, startCli, type CliServer } from "./helpers.js";

/** Adds its inputs after `delay_ms` per batch: batches of 8 on one instance keep a queue for seconds. */
const SLOW_ADD = `export default {
  async execute(requests) {
    const delay = Number(requests[0].inputs.DELAY.data[0]);
    await new Promise((r) => setTimeout(r, delay));
    return requests.map((r) => ({ outputs: { SUM: { shape: r.inputs.A.shape, data: r.inputs.A.data.map((v, i) => v + r.inputs.B.data[i]) } } }));
  },
};`;
const CONFIG = `name: "slow_add"
backend: "js"
max_batch_size: 8
input [ { name: "A" data_type: TYPE_INT32 dims: [ 4 ] }, { name: "B" data_type: TYPE_INT32 dims: [ 4 ] }, { name: "DELAY" data_type: TYPE_INT32 dims: [ 1 ] } ]
output [ { name: "SUM" data_type: TYPE_INT32 dims: [ 4 ] } ]
dynamic_batching { }
instance_group [ { count: 1 kind: KIND_CPU } ]
`;

const body = (k: number, delay: number) => ({
  id: `r${k}`,
  inputs: [
    { name: "A", datatype: "INT32", shape: [1, 4], data: [k, k, k, k] },
    { name: "B", datatype: "INT32", shape: [1, 4], data: [1, 2, 3, 4] },
    { name: "DELAY", datatype: "INT32", shape: [1, 1], data: [delay] },
  ],
});

async function start(repo: string, exitTimeoutSecs: number): Promise<{ server: CliServer; grpcPort: number }> {
  const server = await startCli(["--model-repository", repo, "--http-address", "127.0.0.1", "--http-port", "0", "--grpc-address", "127.0.0.1", "--grpc-port", "0", "--allow-metrics", "false", "--exit-timeout-secs", String(exitTimeoutSecs)]);
  for (let i = 0; i < 100 && !/Started GRPCInferenceService/.test(server.output()); i++) await new Promise((r) => setTimeout(r, 50));
  const m = /Started GRPCInferenceService at [^\s"]+:(\d+)/.exec(server.output());
  assert.ok(m, server.output());
  return { server, grpcPort: Number(m[1]) };
}

describe("shutdown under load", { timeout: 90_000 }, () => {
  let repo: string;
  const servers: CliServer[] = [];
  before(async () => {
    repo = await fs.mkdtemp(path.join(os.tmpdir(), "tritium-shutdown-load-"));
    await fs.mkdir(path.join(repo, "slow_add", "1"), { recursive: true });
    await fs.writeFile(path.join(repo, "slow_add", "config.pbtxt"), CONFIG);
    await fs.writeFile(path.join(repo, "slow_add", "1", "model.js"), SLOW_ADD);
  });
  after(async () => {
    for (const s of servers) if (s.child.exitCode === null && s.child.signalCode === null) s.child.kill("SIGKILL");
    await fs.rm(repo, { recursive: true, force: true });
  });

  it("completes all 200 requests in flight over HTTP and a gRPC stream after SIGTERM, then exits 0", async () => {
    const { server, grpcPort } = await start(repo, 30);
    servers.push(server);
    const http = Array.from({ length: 150 }, (_, k) => postJson(`${server.url}/v2/models/slow_add/infer`, body(k, 150)));
    const client = new GrpcTestClient(`127.0.0.1:${grpcPort}`);
    const stream = client.stream(S.modelStreamInfer);
    const streamed: { id: string; error: string; sum: number[] }[] = [];
    const streamDone = new Promise<void>((resolve, reject) => {
      stream.on("data", (r: { errorMessage: string; inferResponse?: { id: string; rawOutputContents: Uint8Array[] } }) =>
        streamed.push({ id: r.inferResponse?.id ?? "", error: r.errorMessage, sum: Array.from(new Int32Array(Uint8Array.from(r.inferResponse?.rawOutputContents[0] ?? []).buffer)) }));
      stream.on("end", resolve);
      stream.on("error", reject);
    });
    for (let k = 0; k < 50; k++) {
      stream.write({
        modelName: "slow_add", id: `g${k}`,
        inputs: [{ name: "A", datatype: "INT32", shape: [1n, 4n] }, { name: "B", datatype: "INT32", shape: [1n, 4n] }, { name: "DELAY", datatype: "INT32", shape: [1n, 1n] }],
        rawInputContents: [i32([k, k, k, k]), i32([1, 2, 3, 4]), i32([150])],
      });
    }
    stream.end();
    await new Promise((r) => setTimeout(r, 300));
    server.child.kill("SIGTERM");
    const results = await Promise.all(http);
    for (const [k, r] of results.entries()) {
      assert.equal(r.status, 200, `HTTP request ${k}: ${JSON.stringify(r.json)}`);
      assert.deepEqual(r.json.outputs[0].data, [k + 1, k + 2, k + 3, k + 4]);
    }
    await streamDone;
    client.close();
    assert.equal(streamed.length, 50, `gRPC responses: ${streamed.length}`);
    for (const [k, r] of streamed.sort((a, b) => Number(a.id.slice(1)) - Number(b.id.slice(1))).entries()) {
      assert.equal(r.error, "");
      assert.deepEqual(r.sum, [k + 1, k + 2, k + 3, k + 4]);
    }
    assert.equal(await server.exited, 0, server.output());
    assert.match(server.output(), /Waiting for in-flight requests to complete/, "SIGTERM came while requests were in flight");
  });

  it("fails a request that outlives --exit-timeout-secs with a clear error and still exits 0", async () => {
    const { server } = await start(repo, 1);
    servers.push(server);
    const stuck = postJson(`${server.url}/v2/models/slow_add/infer`, body(1, 20_000));
    await new Promise((r) => setTimeout(r, 300));
    const t0 = Date.now();
    server.child.kill("SIGTERM");
    const r = await stuck;
    assert.equal(r.status, 503);
    assert.equal(r.json.error, "the server is shutting down: the request did not finish within --exit-timeout-secs=1");
    assert.equal(await server.exited, 0, server.output());
    assert.ok(Date.now() - t0 < 6000, `exited ${Date.now() - t0} ms after SIGTERM`);
  });

  it("exits at once on a second SIGTERM", async () => {
    const { server } = await start(repo, 30);
    servers.push(server);
    const stuck = postJson(`${server.url}/v2/models/slow_add/infer`, body(1, 20_000)).catch((e: Error) => e);
    await new Promise((r) => setTimeout(r, 300));
    server.child.kill("SIGTERM");
    await new Promise((r) => setTimeout(r, 300));
    const t0 = Date.now();
    server.child.kill("SIGTERM");
    await server.exited;
    assert.ok(Date.now() - t0 < 3000, `exited ${Date.now() - t0} ms after the second SIGTERM`);
    assert.equal(server.child.signalCode, "SIGTERM");
    assert.ok((await stuck) instanceof Error, "the stuck request's connection ends with the process");
  });

  it("stops cleanly, exit 0, on a SIGTERM that comes while models are still loading", async () => {
    const slowRepo = await fs.mkdtemp(path.join(os.tmpdir(), "tritium-slow-load-"));
    try {
      await fs.mkdir(path.join(slowRepo, "slow_init", "1"), { recursive: true });
      await fs.writeFile(path.join(slowRepo, "slow_init", "config.pbtxt"), CONFIG.replace('"slow_add"', '"slow_init"'));
      await fs.writeFile(path.join(slowRepo, "slow_init", "1", "model.js"), SLOW_ADD.replace("export default {", "export default {\n  async initialize() { await new Promise((r) => setTimeout(r, 1500)); },"));
      const child = spawn(process.execPath, [path.join(ROOT, "dist", "src", "cli", "main.js"), "--model-repository", slowRepo, "--http-port", "0", "--allow-grpc=false", "--allow-metrics=false"], { stdio: ["ignore", "pipe", "pipe"] });
      let log = "";
      const exited = new Promise<number | null>((r) => child.once("exit", (code) => r(code)));
      await new Promise<void>((resolve) => {
        const look = (c: Buffer) => {
          log += c.toString();
          if (/loading: slow_init:1/.test(log)) resolve();
        };
        child.stdout.on("data", look);
        child.stderr.on("data", look);
      });
      child.kill("SIGTERM");
      assert.equal(await exited, 0, log);
      assert.match(log, /Received SIGTERM, stopping/);
    } finally {
      await fs.rm(slowRepo, { recursive: true, force: true });
    }
  });
});
