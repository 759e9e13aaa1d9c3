/**
 * The hand-off between the event loop and instance workers
 * (src/backends/worker-channel): records in shared memory, messages around
 * them by postMessage, and what a server built on it must guarantee.
 */
import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import path from "node:path";
import { pathToFileURL } from "node:url";
import { Worker } from "node:worker_threads";
import { after, before, describe, it } from "node:test";
import { MainEnd, type ResultMessage } from "../src/backends/worker-channel/channel.js";
import { ByteRing } from "../src/backends/worker-channel/byte-ring.js";
import type { BatchRequest } from "../src/core/requests/inference.js";
import type { Tensor } from "../src/core/tensors/tensor.js";
import { createServer, type InferenceServer } from "../src/index.js";
import { EXAMPLES, FIXTURES, ROOT, bytesElements, bytesOf, postBinary, splitBinaryResponse, startServer, tempRepository, type TestServer } from "./helpers.js";

describe("ByteRing", () => {
  it("delivers records in order and intact across many wrap-arounds", () => {
    const ring = ByteRing.create(4096);
    const reader = ByteRing.attach(ring.shared);
    let written = 0;
    let read = 0;
    const expect = (n: number) => Buffer.alloc(1 + ((n * 37) % 900), n % 251);
    // Up to 3 records in flight, of sizes that do not divide the ring, so records wrap at every position.
    while (read < 2000) {
      while (written < 2000 && written - read < 3) {
        const bytes = expect(written);
        const slot = ring.reserve(bytes.byteLength);
        if (!slot) break;
        slot.set(bytes);
        ring.commit(bytes.byteLength);
        written++;
      }
      const record = reader.peek();
      assert.ok(record, `record ${read}`);
      assert.ok(Buffer.from(record).equals(expect(read)), `record ${read} intact`);
      reader.release(record);
      read++;
    }
    assert.equal(reader.peek(), undefined);
  });

  it("refuses a record above a quarter of the ring, and any record the free space cannot hold", () => {
    const ring = ByteRing.create(1024);
    assert.equal(ring.maxRecord, 256 - 8);
    assert.equal(ring.reserve(ring.maxRecord + 1), undefined);
    for (let i = 0; i < 4; i++) {
      assert.ok(ring.reserve(ring.maxRecord));
      ring.commit(ring.maxRecord);
    }
    assert.equal(ring.reserve(1), undefined, "full");
    const reader = ByteRing.attach(ring.shared);
    reader.release(reader.peek()!);
    assert.ok(ring.reserve(ring.maxRecord), "space again once a record is read");
  });
});

/** A worker at the far end of a channel: answers every batch with its inputs renamed and the order it took the message in. */
const ECHO_WORKER = `
  const { parentPort, workerData } = require("node:worker_threads");
  import(workerData.channelUrl).then(({ WorkerEnd }) => {
    let order = 0;
    const end = new WorkerEnd(parentPort, workerData.channel, async (msg) => {
      const taken = new Uint8Array(new Uint32Array([order++]).buffer);
      if (msg.type !== "execute") return end.send({ type: "seen", id: msg.id, order: order - 1 });
      const results = msg.requests.map((r) => ({
        outputs: [...r.inputs.map((t) => ({ ...t, name: "ECHO_" + t.name })), { name: "ORDER", datatype: "UINT32", shape: [1], data: taken }],
      }));
      end.send({ type: "result", id: msg.id, results, timings: { computeInputNs: 1, computeInferNs: 2, computeOutputNs: 3 } });
    });
  });
`;

describe("worker channel between the event loop and a worker", { timeout: 60_000 }, () => {
  it("keeps send order across ring records and postMessage, and answers every batch with its own tensors", async () => {
    type Seen = { type: "seen"; id: number; order: number };
    const answers = new Map<number, ResultMessage | Seen>();
    let done: () => void = () => {};
    const all = new Promise<void>((r) => (done = r));
    const N = 300;
    const main = new MainEnd<{ type: string; id: number; requests?: BatchRequest[] }, Seen>((msg) => {
      answers.set(msg.id, msg);
      if (answers.size === N) done();
    });
    const channelUrl = pathToFileURL(path.join(ROOT, "dist", "src", "backends", "worker-channel", "channel.js")).href;
    const worker = new Worker(ECHO_WORKER, { eval: true, workerData: { channel: main.memory, channelUrl } });
    main.connect(worker);
    const sent = new Map<number, Tensor[][]>();
    try {
      for (let id = 0; id < N; id++) {
        if (id % 7 === 3) {
          main.send({ type: "ping", id });
          continue;
        }
        // Mostly small batches (ring records), some above a ring record (postMessage), BYTES among them.
        const big = id % 10 === 5;
        const requests: BatchRequest[] = Array.from({ length: 1 + (id % 3) }, (_, k) => ({
          inputs: [
            { name: "A", datatype: "UINT8", shape: [big ? 300_000 : 1 + id], data: randomBytes(big ? 300_000 : 1 + id) },
            { name: "S", datatype: "BYTES", shape: [2], data: bytesElements([`request ${id}.${k}`, "é✓"]) },
          ],
          outputNames: ["ECHO_A"],
        }));
        sent.set(id, requests.map((r) => r.inputs));
        main.send({ type: "execute", id, requests });
      }
      await all;
    } finally {
      await worker.terminate();
      main.close();
    }
    for (let id = 0; id < N; id++) {
      const a = answers.get(id)!;
      if (a.type === "seen") {
        assert.equal(a.order, id, `message ${id} taken in send order`);
        continue;
      }
      assert.equal(a.type, "result");
      const r = a as ResultMessage;
      assert.deepEqual(r.timings, { computeInputNs: 1, computeInferNs: 2, computeOutputNs: 3 });
      for (const [k, inputs] of sent.get(id)!.entries()) {
        const outs = r.results[k]!.outputs!;
        assert.equal(new Uint32Array(outs[2]!.data.slice().buffer)[0], id, `batch ${id} taken in send order`);
        for (const [i, t] of inputs.entries()) {
          assert.equal(outs[i]!.name, `ECHO_${t.name}`);
          assert.equal(outs[i]!.datatype, t.datatype);
          assert.deepEqual(outs[i]!.shape, t.shape);
          assert.ok(Buffer.from(outs[i]!.data).equals(Buffer.from(t.data)), `batch ${id} request ${k} ${t.name} intact`);
        }
      }
    }
  });
});

describe("the hand-off in a server", () => {
  let repo: string;
  let s: TestServer;
  before(async () => {
    repo = await tempRepository({ simple: path.join(EXAMPLES, "simple"), identity_bytes: path.join(FIXTURES, "identity_bytes") });
    // The same model with dynamic batching, so answers are split back out of shared batches.
    const { promises: fs } = await import("node:fs");
    await fs.cp(path.join(EXAMPLES, "simple"), path.join(repo, "simple_batched"), { recursive: true });
    const cfg = path.join(repo, "simple_batched", "config.pbtxt");
    const text = (await fs.readFile(cfg, "utf8")).replace('name: "simple"', 'name: "simple_batched"');
    await fs.writeFile(cfg, `${text}\ndynamic_batching { max_queue_delay_microseconds: 2000 }\n`);
    s = await startServer({ modelRepository: repo });
  });
  after(async () => {
    await s?.close();
  });

  for (const model of ["simple", "simple_batched"]) {
    it(`answers 400 concurrent requests to ${model}, each with its own values`, async () => {
      const one = async (k: number) => {
        const a = Int32Array.from({ length: 16 }, (_, i) => k * 100 + i);
        const b = Int32Array.from({ length: 16 }, () => k);
        const header = {
          inputs: [
            { name: "INPUT0", datatype: "INT32", shape: [1, 16], parameters: { binary_data_size: 64 } },
            { name: "INPUT1", datatype: "INT32", shape: [1, 16], parameters: { binary_data_size: 64 } },
          ],
          outputs: [{ name: "OUTPUT0", parameters: { binary_data: true } }, { name: "OUTPUT1", parameters: { binary_data: true } }],
        };
        const res = await postBinary(`${s.url}/v2/models/${model}/infer`, header, [bytesOf(a), bytesOf(b)]);
        assert.equal(res.status, 200, res.body.toString());
        const { binary } = splitBinaryResponse(res);
        const out0 = new Int32Array(binary.get("OUTPUT0")!.buffer.slice(binary.get("OUTPUT0")!.byteOffset, binary.get("OUTPUT0")!.byteOffset + 64));
        const out1 = new Int32Array(binary.get("OUTPUT1")!.buffer.slice(binary.get("OUTPUT1")!.byteOffset, binary.get("OUTPUT1")!.byteOffset + 64));
        assert.deepEqual(Array.from(out0), Array.from(a, (v) => v + k), `request ${k} OUTPUT0`);
        assert.deepEqual(Array.from(out1), Array.from(a, (v) => v - k), `request ${k} OUTPUT1`);
      };
      await Promise.all(Array.from({ length: 400 }, (_, k) => one(k)));
    });
  }

  it("passes BYTES tensors intact, small ones through the ring and a large one around it", async () => {
    for (const n of [3, 40_000]) {
      const strings = Array.from({ length: n }, (_, i) => `élément ${i} ${"x".repeat(i % 13)}`);
      const res = await s.core.infer({
        model_name: "identity_bytes",
        inputs: [{ name: "INPUT0", datatype: "BYTES", shape: [1, n], data: bytesElements(strings) }],
      });
      const out = res.outputs[0]!;
      assert.deepEqual(out.shape, [1, n]);
      assert.ok(Buffer.from(out.data).equals(bytesElements(strings)), `${n} strings intact`);
    }
  });
});

describe("the hand-off with a 64 MiB tensor", () => {
  let core: InferenceServer;
  before(async () => {
    core = await createServer({ modelRepository: FIXTURES, modelControlMode: "explicit", startupModels: ["identity_fp32"], quiet: true });
  });
  after(async () => {
    await core?.stop();
  });

  it("passes it through the instance worker and back intact", async () => {
    const n = (64 * 1024 * 1024) / 4;
    const values = new Float32Array(n);
    for (let i = 0; i < n; i++) values[i] = i * 0.5 - 7;
    const res = await core.infer({
      model_name: "identity_fp32",
      inputs: [{ name: "INPUT0", datatype: "FP32", shape: [1, n], data: new Uint8Array(values.buffer) }],
    });
    const out = res.outputs[0]!;
    assert.deepEqual(out.shape, [1, n]);
    assert.equal(out.data.byteLength, n * 4);
    assert.ok(Buffer.from(out.data).equals(Buffer.from(values.buffer)), "64 MiB intact");
  });
});
