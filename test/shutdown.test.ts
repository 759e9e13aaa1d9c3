/**
 * Server life through the real CLI: `node dist/src/cli/main.js` as a child
 * process. SIGTERM while requests are in flight: every in-flight request
 * succeeds, new connections are refused, and the process exits 0.
 */
import assert from "node:assert/strict";
import fs from "node:fs/promises";
import path from "node:path";
import { after, before, describe, it } from "node:test";
import { EXAMPLES, bytesOf, httpRequest, postBinary, startCli, tempRepository, tryConnect, type CliServer, type RawResponse } from "./helpers.js";

/** How long the `slow` model's dynamic batcher holds a partial batch. */
const QUEUE_DELAY_MS = 2000;

describe("shutdown of the CLI server", { timeout: 60_000 }, () => {
  let repo: string;
  let server: CliServer;
  let url: string;
  const MAX_INPUT = 1024 * 1024; // above one batch-16 image request (196 KiB)

  before(async () => {
    repo = await tempRepository({ simple: path.join(EXAMPLES, "simple"), image_classifier: path.join(EXAMPLES, "image_classifier") });
    // `slow`: simple behind a dynamic batcher that holds a partial batch for
    // QUEUE_DELAY_MS, so its requests are certainly in flight when SIGTERM comes.
    await fs.cp(path.join(EXAMPLES, "simple"), path.join(repo, "slow"), { recursive: true });
    const config = await fs.readFile(path.join(repo, "slow", "config.pbtxt"), "utf8");
    await fs.writeFile(
      path.join(repo, "slow", "config.pbtxt"),
      config.replace('name: "simple"', 'name: "slow"') + `\ndynamic_batching { max_queue_delay_microseconds: ${QUEUE_DELAY_MS * 1000} }\n`,
    );
    server = await startCli([
      "--model-repository", repo,
      "--http-address", "127.0.0.1",
      "--http-port", "0",
      "--allow-grpc", "false",
      "--allow-metrics", "false",
      "--http-max-input-size", String(MAX_INPUT),
      "--exit-timeout-secs", "30",
    ]);
    url = `http://127.0.0.1:${server.port}`;
  });
  after(async () => {
    if (server && server.child.exitCode === null && server.child.signalCode === null) {
      server.child.kill("SIGKILL");
      await server.exited;
    }
    if (repo) await fs.rm(repo, { recursive: true, force: true });
  });

  it("serves over HTTP once started, with every model ready", async () => {
    const ready = await httpRequest(`${url}/v2/health/ready`, { agent: false });
    assert.equal(ready.status, 200, server.output());
    const meta = await httpRequest(`${url}/v2`, { agent: false });
    assert.equal(meta.json.name, "triton");
  });

  it("refuses a request body larger than --http-max-input-size", async () => {
    const res = await httpRequest(`${url}/v2/models/simple/infer`, {
      method: "POST",
      agent: false,
      headers: { "Content-Type": "application/json" },
      body: JSON.stringify({ id: "x".repeat(MAX_INPUT), inputs: [] }),
    });
    assert.equal(res.status, 400);
    assert.match(res.json.error, /--http-max-input-size/);
  });

  it("finishes every in-flight request after SIGTERM, refuses new connections and exits 0", async () => {
    const images = new Float32Array(16 * 3 * 32 * 32).map((_, i) => Math.sin(i / 7));
    const classify = () =>
      postBinary(`${url}/v2/models/image_classifier/infer`, {
        inputs: [{ name: "INPUT", shape: [16, 3, 32, 32], datatype: "FP32", parameters: { binary_data_size: images.byteLength } }],
        outputs: [{ name: "OUTPUT", parameters: { classification: 1 } }],
      }, [bytesOf(images)]);
    const slow = (k: number) =>
      httpRequest(`${url}/v2/models/slow/infer`, {
        method: "POST",
        agent: false,
        headers: { "Content-Type": "application/json" },
        body: JSON.stringify({
          id: `slow-${k}`,
          inputs: [
            { name: "INPUT0", shape: [1, 16], datatype: "INT32", data: Array(16).fill(k) },
            { name: "INPUT1", shape: [1, 16], datatype: "INT32", data: Array(16).fill(1) },
          ],
        }),
      });
    const done = new Map<string, number>();
    const track = (name: string, p: Promise<RawResponse>) => p.then((r) => (done.set(name, Date.now()), r));
    const inflight = [
      ...[0, 1, 2].map((k) => track(`slow-${k}`, slow(k))),
      ...[0, 1, 2, 3, 4, 5].map((k) => track(`classify-${k}`, classify())),
    ];

    // Let every request reach the server, then signal while the slow ones wait in the batcher's queue.
    await new Promise((r) => setTimeout(r, QUEUE_DELAY_MS / 3));
    const signalledAt = Date.now();
    assert.ok(server.child.kill("SIGTERM"));

    // The listening socket closes at once: a new connection is refused while in-flight requests drain.
    await new Promise((r) => setTimeout(r, 150));
    const during = await tryConnect(server.port);
    assert.equal(during, "ECONNREFUSED", server.output());

    const results = await Promise.all(inflight);
    for (const [i, r] of results.entries()) assert.equal(r.status, 200, `request ${i}: ${r.status} ${r.body.toString()}`);
    for (const k of [0, 1, 2]) {
      const r = results[k]!;
      assert.equal(r.json.id, `slow-${k}`);
      assert.deepEqual(r.json.outputs[0].data, Array(16).fill(k + 1));
      assert.ok(done.get(`slow-${k}`)! > signalledAt, "the slow requests were still in flight when SIGTERM arrived");
    }
    for (const r of results.slice(3)) {
      assert.equal(r.json.outputs[0].datatype, "BYTES");
      assert.deepEqual(r.json.outputs[0].shape, [16, 1]);
    }

    const code = await server.exited;
    assert.equal(code, 0, server.output());
    assert.equal(await tryConnect(server.port), "ECONNREFUSED");
    assert.match(server.output(), /SIGTERM/);
  });
});
