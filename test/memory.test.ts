/**
 * Nothing a finished request held stays reachable. Every request that enters
 * core is watched through WeakRefs (the request, its response and each output
 * buffer); after the traffic, garbage collection is forced and the survivors
 * are counted. A leak keeps every finished request, so the assertion is on a
 * count, not on time or on heap size.
 */
import assert from "node:assert/strict";
import fs from "node:fs";
import fsp from "node:fs/promises";
import http from "node:http";
import path from "node:path";
import v8 from "node:v8";
import vm from "node:vm";
import { describe, it } from "node:test";
import type { InferenceRequest } from "../src/core/requests/inference.js";
import { GRPCInferenceService, type ModelStreamInferResponse } from "../src/gen/inference/grpc_service_pb.js";
import { createServer, makeTensor, type InferenceServer } from "../src/index.js";
import { GateBackend, gateConfig } from "./gate-backend.js";
import { A, B, i32, simpleRaw } from "./grpc-simple.js";
import { EXAMPLES, FIXTURES, GrpcTestClient, httpRequest, postBinary, startCli, startGrpcServer, tempRepository } from "./helpers.js";

v8.setFlagsFromString("--expose-gc");
const gc = vm.runInNewContext("gc") as () => void;
const S = GRPCInferenceService.method;

/** Requests that may legitimately stay reachable: the last one on each keep-alive connection or stream. */
const SLACK = 8;

/** Watches what passes through `core.infer`, the one door every frontend uses. */
class RetentionProbe {
  private readonly refs: WeakRef<object>[] = [];
  requests = 0;

  constructor(core: InferenceServer) {
    const infer = core.infer.bind(core);
    core.infer = async (request: InferenceRequest) => {
      this.requests++;
      this.refs.push(new WeakRef(request));
      const response = await infer(request);
      this.refs.push(new WeakRef(response));
      for (const t of response.outputs) this.refs.push(new WeakRef(t.data.buffer));
      return response;
    };
  }

  /** Objects of finished requests still reachable after full collections. */
  async survivors(): Promise<number> {
    for (let i = 0; i < 3; i++) {
      await new Promise((r) => setTimeout(r, 5));
      gc();
    }
    return this.refs.filter((r) => r.deref() !== undefined).length;
  }

  async assertReleased(minRequests: number): Promise<void> {
    assert.ok(this.requests >= minRequests, `only ${this.requests} requests reached core`);
    const live = await this.survivors();
    assert.ok(live <= SLACK, `${live} of ${this.refs.length} objects of ${this.requests} finished requests are still reachable`);
  }
}

/** Runs `count` calls of `one`, `concurrency` at a time. */
async function drive(count: number, concurrency: number, one: (i: number) => Promise<unknown>): Promise<void> {
  let next = 0;
  await Promise.all(
    Array.from({ length: concurrency }, async () => {
      while (next < count) await one(next++);
    }),
  );
}

const simple = (i: number): InferenceRequest => ({
  model_name: "simple",
  inputs: [
    makeTensor("INPUT0", "INT32", [1, 16], new Int32Array(16).fill(i)),
    makeTensor("INPUT1", "INT32", [1, 16], new Int32Array(16).fill(1)),
  ],
});

describe("finished requests leave nothing reachable", () => {
  it("in-process successes and validation errors on an ONNX Runtime model", async () => {
    const core = await createServer({ modelRepository: await tempRepository({ simple: path.join(EXAMPLES, "simple") }), quiet: true });
    const probe = new RetentionProbe(core);
    try {
      await drive(200, 8, (i) => core.infer(simple(i)));
      await drive(50, 4, (i) =>
        core.infer({ ...simple(i), inputs: [simple(i).inputs[0]!, makeTensor("INPUT1", "INT32", [1, 15], new Int32Array(15))] }).then(
          () => assert.fail("a wrong shape must fail"),
          () => undefined,
        ),
      );
      await probe.assertReleased(250);
    } finally {
      await core.stop();
    }
  });

  it("HTTP JSON and binary requests, with client errors", async () => {
    const s = await startGrpcServer({ modelRepository: await tempRepository({ simple: path.join(EXAMPLES, "simple") }) });
    const probe = new RetentionProbe(s.core);
    const agent = new http.Agent({ keepAlive: true, maxSockets: 4 });
    const url = `${s.url}/v2/models/simple/infer`;
    try {
      const json = (i: number, n = 16) =>
        JSON.stringify({
          inputs: [
            { name: "INPUT0", datatype: "INT32", shape: [1, 16], data: new Array(16).fill(i) },
            { name: "INPUT1", datatype: "INT32", shape: [1, n], data: new Array(n).fill(1) },
          ],
        });
      await drive(100, 4, async (i) => {
        const res = await httpRequest(url, { method: "POST", body: json(i), headers: { "Content-Type": "application/json" }, agent });
        assert.equal(res.status, 200);
      });
      await drive(100, 4, async (i) => {
        const header = {
          inputs: [
            { name: "INPUT0", datatype: "INT32", shape: [1, 16], parameters: { binary_data_size: 64 } },
            { name: "INPUT1", datatype: "INT32", shape: [1, 16], parameters: { binary_data_size: 64 } },
          ],
          outputs: [{ name: "OUTPUT0", parameters: { binary_data: true } }, { name: "OUTPUT1", parameters: { binary_data: true } }],
        };
        const res = await postBinary(url, header, [i32(new Array(16).fill(i)), i32(B)]);
        assert.equal(res.status, 200);
      });
      await drive(30, 4, async (i) => {
        const res = await httpRequest(url, { method: "POST", body: json(i, 15), headers: { "Content-Type": "application/json" }, agent });
        assert.equal(res.status, 400);
      });
      agent.destroy();
      await probe.assertReleased(230);
    } finally {
      agent.destroy();
      await s.close();
    }
  });

  it("gRPC unary calls and a stream", async () => {
    const s = await startGrpcServer({ modelRepository: await tempRepository({ simple: path.join(EXAMPLES, "simple") }) });
    const probe = new RetentionProbe(s.core);
    const c = new GrpcTestClient(s.grpcAddress);
    try {
      await drive(100, 4, (i) => c.unary(S.modelInfer, simpleRaw(`u${i}`, A.map((x) => x + i))));
      const stream = c.stream(S.modelStreamInfer);
      let answered = 0;
      const done = new Promise<void>((resolve, reject) => {
        stream.on("data", (r: ModelStreamInferResponse) => {
          assert.equal(r.errorMessage, "");
          answered++;
        });
        stream.on("end", resolve);
        stream.on("error", reject);
      });
      for (let i = 0; i < 100; i++) stream.write(simpleRaw(`s${i}`));
      stream.end();
      await done;
      assert.equal(answered, 100);
      await probe.assertReleased(200);
    } finally {
      c.close();
      await s.close();
    }
  });

  it("system shared memory inputs and outputs over HTTP", async () => {
    const s = await startGrpcServer({ modelRepository: await tempRepository({ simple: path.join(EXAMPLES, "simple") }), allowClientShm: true });
    const probe = new RetentionProbe(s.core);
    const name = `tritium-memtest-${process.pid}`;
    fs.writeFileSync(path.join("/dev/shm", name), Buffer.concat([i32(A), i32(B), Buffer.alloc(128)]));
    const shm = (offset: number) => ({ shared_memory_region: "r", shared_memory_byte_size: 64, shared_memory_offset: offset });
    try {
      const reg = await httpRequest(`${s.url}/v2/systemsharedmemory/region/r/register`, {
        method: "POST",
        body: JSON.stringify({ key: `/${name}`, byte_size: 256 }),
      });
      assert.equal(reg.status, 200);
      await drive(100, 4, async () => {
        const body = {
          inputs: [
            { name: "INPUT0", datatype: "INT32", shape: [1, 16], parameters: shm(0) },
            { name: "INPUT1", datatype: "INT32", shape: [1, 16], parameters: shm(64) },
          ],
          outputs: [{ name: "OUTPUT0", parameters: shm(128) }, { name: "OUTPUT1", parameters: shm(192) }],
        };
        const res = await httpRequest(`${s.url}/v2/models/simple/infer`, { method: "POST", body: JSON.stringify(body) });
        assert.equal(res.status, 200, res.body.toString());
      });
      await probe.assertReleased(100);
    } finally {
      await s.close();
      await fsp.rm(path.join("/dev/shm", name), { force: true });
    }
  });

  it("requests batched by the dynamic batcher", async () => {
    const repo = await tempRepository({ image_classifier: path.join(EXAMPLES, "image_classifier") });
    const cfg = path.join(repo, "image_classifier", "config.pbtxt");
    await fsp.appendFile(cfg, "\ndynamic_batching { max_queue_delay_microseconds: 2000 }\n");
    const core = await createServer({ modelRepository: repo, quiet: true });
    const probe = new RetentionProbe(core);
    try {
      await drive(240, 32, (i) => core.infer({ model_name: "image_classifier", inputs: [makeTensor("INPUT", "FP32", [1, 3, 32, 32], new Float32Array(3072).fill(i / 240))] }));
      const batches = core.statistics("image_classifier").model_stats[0]!.batch_stats;
      assert.ok(batches.some((b) => b.batch_size > 1), "the batcher formed no batch larger than 1");
      await probe.assertReleased(240);
    } finally {
      await core.stop();
    }
  });

  it("sequences through the sequence batcher, with implicit state", async () => {
    const core = await createServer({ modelRepository: await tempRepository({ sequence_state: path.join(FIXTURES, "sequence_state") }), quiet: true });
    const probe = new RetentionProbe(core);
    const step = (id: number, k: number, steps: number) =>
      core.infer({
        model_name: "sequence_state",
        parameters: { sequence_id: id, sequence_start: k === 0, sequence_end: k === steps - 1 },
        inputs: [makeTensor("INPUT", "INT32", [1, 1], new Int32Array([k]))],
      });
    try {
      await drive(20, 4, async (id) => {
        for (let k = 0; k < 10; k++) await step(id + 1, k, 10);
      });
      await probe.assertReleased(200);
    } finally {
      await core.stop();
    }
  });

  it("requests cancelled while queued", async () => {
    const repo = await tempRepository({});
    await fsp.mkdir(path.join(repo, "m", "1"), { recursive: true });
    await fsp.writeFile(path.join(repo, "m", "1", "model.gate"), "");
    await fsp.writeFile(path.join(repo, "m", "config.pbtxt"), gateConfig("m", 4, "instance_group [ { count: 1 } ]"));
    const gate = new GateBackend();
    const core = await createServer({ modelRepository: repo, backends: [gate], quiet: true });
    const probe = new RetentionProbe(core);
    try {
      gate.hold();
      const x = (v: number, signal?: AbortSignal) => ({ model_name: "m", inputs: [makeTensor("X", "INT32", [1, 1], new Int32Array([v]))], signal });
      // 8 fill the instance's pipeline (the default scheduler's depth); the rest wait in the queue and are cancelled there.
      const running = Array.from({ length: 8 }, (_, i) => core.infer(x(i)));
      const controllers = Array.from({ length: 100 }, () => new AbortController());
      const cancelled = controllers.map((c, i) => core.infer(x(100 + i, c.signal)).then(() => "ran", (e: { code?: string }) => e.code));
      await new Promise((r) => setTimeout(r, 20));
      for (const c of controllers) c.abort();
      assert.deepEqual(new Set(await Promise.all(cancelled)), new Set(["CANCELLED"]));
      gate.release();
      await Promise.all(running);
      // The test's own references go too.
      running.length = 0;
      controllers.length = 0;
      await probe.assertReleased(108);
    } finally {
      gate.release();
      await core.stop();
    }
  });
});

describe("diagnosing the server", () => {
  it("serves models when Node.js runs it with V8's diagnostic flags (--trace-gc, --expose-gc, --heapsnapshot-signal)", async () => {
    const cli = await startCli(
      ["--model-repository", EXAMPLES, "--load-model", "simple", "--model-control-mode", "explicit", "--http-port", "0", "--grpc-port", "0", "--allow-metrics", "false"],
      30_000,
      ["--trace-gc", "--expose-gc", "--heapsnapshot-signal=SIGUSR2"],
    );
    try {
      const res = await httpRequest(`${cli.url}/v2/models/simple/ready`);
      assert.equal(res.status, 200, cli.output());
      const body = JSON.stringify({ inputs: [
        { name: "INPUT0", datatype: "INT32", shape: [1, 16], data: A },
        { name: "INPUT1", datatype: "INT32", shape: [1, 16], data: B },
      ] });
      const infer = await httpRequest(`${cli.url}/v2/models/simple/infer`, { method: "POST", body });
      assert.equal(infer.status, 200, infer.body.toString());
      assert.deepEqual(infer.json.outputs[0].data, A.map((a, i) => a + B[i]!));
    } finally {
      assert.equal(await cli.stop(), 0);
    }
  });
});
