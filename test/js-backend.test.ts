/**
 * The `js` backend: models written in JavaScript, each instance in a worker
 * thread behind the worker channel, served over real HTTP.
 */
import assert from "node:assert/strict";
import fs from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { after, before, describe, it } from "node:test";
import { bytesElements, postBinary, postJson, splitBinaryResponse, startServer, type TestServer } from "./helpers.js";

const ADD_MODEL = `
export default class {
  initialize(args) { this.args = args; }
  execute(requests) {
    return requests.map((r) => {
      const a = r.inputs.INPUT0.data, b = r.inputs.INPUT1.data;
      if (a[0] === -1) while (true) {}          // hangs
      if (a[0] === -2) process.exit(3);        // ends its thread
      if (a[0] === -3) throw new Error("asked to fail");
      if (a[0] === -4) return { error: "this request only" };
      if (a[0] === -5) return { error: { code: "INVALID_ARG", message: "INPUT0 must not be -5" } };
      return { outputs: {
        SUM: { shape: r.inputs.INPUT0.shape, data: a.map((v, i) => v + b[i]) },
        ARGS: { shape: [1, 1], data: [JSON.stringify(this.args)] },
      } };
    });
  }
  finalize() {
    const marker = JSON.parse(this.args.model_config).parameters?.marker?.string_value;
    if (marker) require_fs().writeFileSync(marker, "finalized");
  }
}
import { createRequire } from "node:module";
const require_fs = () => createRequire(import.meta.url)("node:fs");
`;

const addConfig = (name: string, extra: string) => `
name: "${name}"
backend: "js"
max_batch_size: 8
input [ { name: "INPUT0" data_type: TYPE_INT32 dims: [ 4 ] }, { name: "INPUT1" data_type: TYPE_INT32 dims: [ 4 ] } ]
output [ { name: "SUM" data_type: TYPE_INT32 dims: [ 4 ] }, { name: "ARGS" data_type: TYPE_STRING dims: [ 1 ] } ]
${extra}
`;

const STRINGS_MODEL = `
export default {
  execute(requests) {
    return requests.map((r) => ({ outputs: {
      REVERSED: { shape: r.inputs.TEXT.shape, data: r.inputs.TEXT.data.map((s) => [...s].reverse().join("")) },
      RAW: { shape: r.inputs.TEXT.shape, data: r.inputs.TEXT.bytes },
    } }));
  },
};
`;

const STRINGS_CONFIG = `
name: "strings_js"
backend: "js"
max_batch_size: 0
input [ { name: "TEXT" data_type: TYPE_STRING dims: [ -1 ] } ]
output [ { name: "REVERSED" data_type: TYPE_STRING dims: [ -1 ] }, { name: "RAW" data_type: TYPE_STRING dims: [ -1 ] } ]
`;

const BLS_MODEL = `
export default class {
  initialize(args, services) { this.services = services; }
  async execute(requests) {
    const out = [];
    for (const r of requests) {
      let x = new Int32Array([1, 2, 3, 4]);
      for (let i = 0; i < r.inputs.N.data[0]; i++) {
        const res = await this.services.infer({
          model_name: "add_js",
          inputs: [
            { name: "INPUT0", datatype: "INT32", shape: [1, 4], data: x },
            { name: "INPUT1", datatype: "INT32", shape: [1, 4], data: [10, 10, 10, 10] },
          ],
          outputs: ["SUM"],
        });
        x = res.SUM.data;
      }
      let error = "";
      try {
        await this.services.infer({ model_name: "no_such_model", inputs: [] });
      } catch (e) {
        error = e.message;
      }
      out.push({ outputs: { TOTAL: { shape: [1, 4], data: x }, ERROR: { shape: [1], data: [error] } } });
    }
    return out;
  }
}
`;

const BLS_CONFIG = `
name: "bls_js"
backend: "js"
max_batch_size: 0
input [ { name: "N" data_type: TYPE_INT32 dims: [ 1 ] } ]
output [ { name: "TOTAL" data_type: TYPE_INT32 dims: [ 1, 4 ] }, { name: "ERROR" data_type: TYPE_STRING dims: [ 1 ] } ]
`;

async function writeModel(repo: string, name: string, config: string, code: string): Promise<void> {
  await fs.mkdir(path.join(repo, name, "1"), { recursive: true });
  await fs.writeFile(path.join(repo, name, "config.pbtxt"), config);
  await fs.writeFile(path.join(repo, name, "1", "model.js"), code);
}

const addBody = (a: number[], b: number[]) => ({
  inputs: [
    { name: "INPUT0", datatype: "INT32", shape: [1, 4], data: a },
    { name: "INPUT1", datatype: "INT32", shape: [1, 4], data: b },
  ],
  outputs: [{ name: "SUM" }],
});

describe("js backend", () => {
  let repo: string;
  let s: TestServer;
  let marker: string;

  before(async () => {
    repo = await fs.mkdtemp(path.join(os.tmpdir(), "tritium-js-"));
    marker = path.join(repo, "finalized.txt");
    await writeModel(repo, "add_js", addConfig("add_js", `
      dynamic_batching { max_queue_delay_microseconds: 2000 }
      parameters { key: "execute_timeout_ms" value: { string_value: "500" } }
      parameters { key: "marker" value: { string_value: "${marker}" } }`), ADD_MODEL);
    await writeModel(repo, "strings_js", STRINGS_CONFIG, STRINGS_MODEL);
    await writeModel(repo, "broken_js", addConfig("broken_js", ""), `export default { initialize() { throw new Error("no weights here"); }, execute() { return []; } };`);
    await fs.mkdir(path.join(repo, "identity_pair", "1"), { recursive: true });
    await fs.writeFile(path.join(repo, "identity_pair", "config.pbtxt"), `
      name: "identity_pair"
      backend: "identity"
      max_batch_size: 4
      input [ { name: "INPUT0" data_type: TYPE_STRING dims: [ -1 ] }, { name: "INPUT1" data_type: TYPE_FP32 dims: [ 2 ] } ]
      output [ { name: "OUTPUT0" data_type: TYPE_STRING dims: [ -1 ] }, { name: "OUTPUT1" data_type: TYPE_FP32 dims: [ 2 ] } ]`);
    await writeModel(repo, "bls_js", BLS_CONFIG, BLS_MODEL);
    await writeModel(repo, "slow_js", addConfig("slow_js", `parameters { key: "execute_timeout_ms" value: { string_value: "500" } }`),
      `export default { async execute(requests) { await new Promise((r) => setTimeout(r, 300)); return requests.map((r) => ({ outputs: { SUM: { shape: r.inputs.INPUT0.shape, data: r.inputs.INPUT0.data } } })); } };`);
    // Waits 300 ms, then calls add_js: the call happens while the server drains.
    await writeModel(repo, "slow_bls_js", BLS_CONFIG.replace('"bls_js"', '"slow_bls_js"'), BLS_MODEL.replace("async execute(requests) {", "async execute(requests) {\n    await new Promise((r) => setTimeout(r, 300));"));
    // model.ts and model.mjs are found without default_model_filename.
    for (const [name, file, code] of [
      ["typed_ts", "model.ts", `import { EOL } from "node:os";
import { twice } from "./twice.ts";
interface Req { inputs: Record<string, { data: Int32Array; shape: number[] }> }
export default class {
  private readonly eol: string = EOL;
  execute(requests: Req[]): { outputs: Record<string, { shape: number[]; data: number[] }> }[] {
    return requests.map((r) => ({ outputs: { SUM: { shape: r.inputs.INPUT0!.shape, data: Array.from(r.inputs.INPUT0!.data, (v, i) => twice(v) + r.inputs.INPUT1!.data[i]! + this.eol.length - 1) }, ARGS: { shape: [1, 1], data: [0] } } }));
  }
}`],
      ["plain_mjs", "model.mjs", `export default { execute: (requests) => requests.map((r) => ({ outputs: { SUM: { shape: r.inputs.INPUT0.shape, data: r.inputs.INPUT0.data.map((v) => -v) }, ARGS: { shape: [1, 1], data: [""] } } })) };`],
    ] as const) {
      await fs.mkdir(path.join(repo, name, "1"), { recursive: true });
      await fs.writeFile(path.join(repo, name, "config.pbtxt"), addConfig(name, ""));
      await fs.writeFile(path.join(repo, name, "1", file), code);
    }
    await fs.writeFile(path.join(repo, "typed_ts", "1", "twice.ts"), "export const twice = (v: number): number => v * 2;\n");
    s = await startServer({ modelRepository: repo, strictReadiness: false });
  });
  after(async () => {
    await s?.close();
    await fs.rm(repo, { recursive: true, force: true });
  });

  it("answers 64 concurrent requests, batched by the dynamic batcher, each with its own values", async () => {
    const answers = await Promise.all(Array.from({ length: 64 }, (_, k) => postJson(`${s.url}/v2/models/add_js/infer`, addBody([k, k + 1, k + 2, k + 3], [100, 100, 100, 100]))));
    for (const [k, r] of answers.entries()) {
      assert.equal(r.status, 200, JSON.stringify(r.json));
      assert.deepEqual(r.json.outputs, [{ name: "SUM", datatype: "INT32", shape: [1, 4], data: [k + 100, k + 101, k + 102, k + 103] }]);
    }
    const stats = await (await fetch(`${s.url}/v2/models/add_js/stats`)).json() as { model_stats: { execution_count: number; inference_count: number }[] };
    assert.equal(stats.model_stats[0]!.inference_count, 64);
    assert.ok(stats.model_stats[0]!.execution_count < 64, `batched: ${stats.model_stats[0]!.execution_count} executions`);
  });

  it("gives initialize the args of Triton's Python backend", async () => {
    const r = await postJson(`${s.url}/v2/models/add_js/infer`, { ...addBody([1, 2, 3, 4], [0, 0, 0, 0]), outputs: [{ name: "ARGS" }] });
    assert.equal(r.status, 200, JSON.stringify(r.json));
    const args = JSON.parse(r.json.outputs[0].data[0]);
    assert.equal(args.model_name, "add_js");
    assert.equal(args.model_version, "1");
    assert.match(args.model_instance_name, /^add_js_0/);
    assert.equal(args.model_instance_kind, "KIND_CPU");
    assert.equal(args.model_repository, path.join(repo, "add_js"));
    assert.equal(JSON.parse(args.model_config).max_batch_size, 8);
  });

  it("passes BYTES as strings and as exact bytes, NUL bytes included", async () => {
    const raw = Buffer.from([0x61, 0x00, 0x62, 0xff]);
    const header = {
      inputs: [{ name: "TEXT", datatype: "BYTES", shape: [3], parameters: { binary_data_size: 0 } }],
      outputs: [{ name: "REVERSED" }, { name: "RAW", parameters: { binary_data: true } }],
    };
    const data = bytesElements(["héllo", "", raw]);
    header.inputs[0]!.parameters.binary_data_size = data.byteLength;
    const res = await postBinary(`${s.url}/v2/models/strings_js/infer`, header, [data]);
    assert.equal(res.status, 200, res.body.toString());
    const { header: h, binary } = splitBinaryResponse(res);
    assert.deepEqual(h.outputs[0].data.slice(0, 2), ["olléh", ""]);
    assert.ok(binary.get("RAW")!.equals(data), "RAW echoes the exact bytes");
  });

  it("fails a batch that throws with an error naming the model, and serves the next one", async () => {
    const bad = await postJson(`${s.url}/v2/models/add_js/infer`, addBody([-3, 0, 0, 0], [0, 0, 0, 0]));
    assert.equal(bad.status, 500);
    assert.match(bad.json.error, /model 'add_js' instance 'add_js_0_0': execute failed: asked to fail/);
    const ok = await postJson(`${s.url}/v2/models/add_js/infer`, addBody([1, 1, 1, 1], [1, 1, 1, 1]));
    assert.deepEqual(ok.json.outputs[0].data, [2, 2, 2, 2]);
  });

  it("fails only the request whose response carries an error", async () => {
    const [bad, good] = await Promise.all([
      postJson(`${s.url}/v2/models/add_js/infer`, addBody([-4, 0, 0, 0], [0, 0, 0, 0])),
      postJson(`${s.url}/v2/models/add_js/infer`, addBody([5, 5, 5, 5], [1, 1, 1, 1])),
    ]);
    assert.equal(bad.status, 500);
    assert.match(bad.json.error, /this request only/);
    assert.deepEqual(good.json.outputs[0].data, [6, 6, 6, 6]);
    // An error with a code of Triton's keeps its status and its message as the model wrote it.
    const coded = await postJson(`${s.url}/v2/models/add_js/infer`, addBody([-5, 0, 0, 0], [0, 0, 0, 0]));
    assert.equal(coded.status, 400);
    assert.equal(coded.json.error, "[request id: <id_unknown>] INPUT0 must not be -5");
  });

  it("fails a hung execute after execute_timeout_ms and restarts the instance", async () => {
    const t0 = Date.now();
    const hung = await postJson(`${s.url}/v2/models/add_js/infer`, addBody([-1, 0, 0, 0], [0, 0, 0, 0]));
    assert.equal(hung.status, 500);
    assert.match(hung.json.error, /execute did not finish within 500 ms/);
    assert.ok(Date.now() - t0 < 5000);
    const ok = await postJson(`${s.url}/v2/models/add_js/infer`, addBody([2, 2, 2, 2], [1, 1, 1, 1]));
    assert.equal(ok.status, 200, JSON.stringify(ok.json));
    assert.deepEqual(ok.json.outputs[0].data, [3, 3, 3, 3]);
  });

  it("fails the batch of a thread that exits and serves the next request on a new thread", async () => {
    const gone = await postJson(`${s.url}/v2/models/add_js/infer`, addBody([-2, 0, 0, 0], [0, 0, 0, 0]));
    assert.equal(gone.status, 500);
    assert.match(gone.json.error, /model 'add_js' instance 'add_js_0_0': js model worker thread exited unexpectedly \(exit code 3\)/);
    const ok = await postJson(`${s.url}/v2/models/add_js/infer`, addBody([4, 4, 4, 4], [1, 1, 1, 1]));
    assert.deepEqual(ok.json.outputs[0].data, [5, 5, 5, 5]);
  });

  it("refuses to load a model whose initialize throws, with its message", async () => {
    const index = await postJson(`${s.url}/v2/repository/index`, {});
    const broken = (index.json as { name: string; state: string; reason: string }[]).find((m) => m.name === "broken_js")!;
    assert.equal(broken.state, "UNAVAILABLE");
    assert.match(broken.reason, /model 'broken_js' instance 'broken_js_0_0': failed to load '.*model\.js': no weights here/);
  });

  it("serves Triton's identity backend: each input back as the output at its position, BYTES byte for byte", async () => {
    const data = bytesElements(["a\u0000b", "", "✓"]);
    const header = {
      inputs: [
        { name: "INPUT0", datatype: "BYTES", shape: [1, 3], parameters: { binary_data_size: data.byteLength } },
        { name: "INPUT1", datatype: "FP32", shape: [1, 2], data: [1.5, -2] },
      ],
      outputs: [{ name: "OUTPUT1" }, { name: "OUTPUT0", parameters: { binary_data: true } }],
    };
    const res = await postBinary(`${s.url}/v2/models/identity_pair/infer`, header, [data]);
    assert.equal(res.status, 200, res.body.toString());
    const { header: h, binary } = splitBinaryResponse(res);
    assert.deepEqual(h.outputs[0], { name: "OUTPUT1", datatype: "FP32", shape: [1, 2], data: [1.5, -2] });
    assert.deepEqual(h.outputs[1].shape, [1, 3]);
    assert.ok(binary.get("OUTPUT0")!.equals(data));
  });

  it("lets a model call other models (BLS) in a loop, with their errors surfaced", async () => {
    const r = await postJson(`${s.url}/v2/models/bls_js/infer`, { inputs: [{ name: "N", datatype: "INT32", shape: [1], data: [3] }] });
    assert.equal(r.status, 200, JSON.stringify(r.json));
    // add_js applied 3 times: [1,2,3,4] + 3 × [10,10,10,10]
    assert.deepEqual(r.json.outputs.find((o: { name: string }) => o.name === "TOTAL").data, [31, 32, 33, 34]);
    assert.equal(r.json.outputs.find((o: { name: string }) => o.name === "ERROR").data[0], "Request for unknown model: 'no_such_model' is not found");
    const stats = await (await fetch(`${s.url}/v2/models/add_js/stats`)).json() as { model_stats: { inference_count: number }[] };
    assert.ok(stats.model_stats[0]!.inference_count >= 3, "the calls count as add_js's own inferences");
  });

  it("loads model.ts (compiled as it loads, with its local .ts imports) and model.mjs without default_model_filename", async () => {
    const ts = await postJson(`${s.url}/v2/models/typed_ts/infer`, addBody([1, 2, 3, 4], [10, 10, 10, 10]));
    assert.equal(ts.status, 200, JSON.stringify(ts.json));
    assert.deepEqual(ts.json.outputs[0].data, [12, 14, 16, 18]);
    const mjs = await postJson(`${s.url}/v2/models/plain_mjs/infer`, addBody([1, 2, 3, 4], [0, 0, 0, 0]));
    assert.equal(mjs.status, 200, JSON.stringify(mjs.json));
    assert.deepEqual(mjs.json.outputs[0].data, [-1, -2, -3, -4]);
  });

  it("counts execute_timeout_ms from when a batch starts, not while it waits behind others", async () => {
    // 4 batches of 300 ms on one instance, timeout 500 ms: the last ends 1.2 s after it was sent.
    const answers = await Promise.all([1, 2, 3, 4].map((k) => postJson(`${s.url}/v2/models/slow_js/infer`, addBody([k, 0, 0, 0], [0, 0, 0, 0]))));
    for (const [i, r] of answers.entries()) {
      assert.equal(r.status, 200, JSON.stringify(r.json));
      assert.equal(r.json.outputs[0].data[0], i + 1);
    }
  });

  it("lets an ensemble step and a BLS call in flight finish while the server drains for shutdown", async () => {
    const pending = postJson(`${s.url}/v2/models/slow_bls_js/infer`, { inputs: [{ name: "N", datatype: "INT32", shape: [1], data: [1] }] });
    await new Promise((r) => setTimeout(r, 100));
    const closing = s.close();
    const r = await pending;
    await closing;
    assert.equal(r.status, 200, JSON.stringify(r.json));
    s = await startServer({ modelRepository: repo, strictReadiness: false });
  });

  it("runs finalize when the model is unloaded", async () => {
    await s.close();
    assert.equal(await fs.readFile(marker, "utf8"), "finalized");
    s = await startServer({ modelRepository: repo, strictReadiness: false });
  });
});


