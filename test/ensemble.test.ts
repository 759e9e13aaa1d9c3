/**
 * Ensembles (`platform: "ensemble"`): plans checked at load, steps run
 * through their own models' schedulers, over real HTTP.
 */
import assert from "node:assert/strict";
import fs from "node:fs/promises";
import path from "node:path";
import { after, before, describe, it } from "node:test";
import { EXAMPLES, getJson, postJson, startServer, tempRepository, type TestServer } from "./helpers.js";

/** simple twice: (a+b)+(a-b) = 2a and (a+b)-(a-b) = 2b. */
const twiceConfig = (name: string, composing: string, extra = "") => `
name: "${name}"
platform: "ensemble"
max_batch_size: 8
input [ { name: "A" data_type: TYPE_INT32 dims: [ 16 ] }, { name: "B" data_type: TYPE_INT32 dims: [ 16 ] } ]
output [ { name: "TWO_A" data_type: TYPE_INT32 dims: [ 16 ] }, { name: "TWO_B" data_type: TYPE_INT32 dims: [ 16 ] } ]
ensemble_scheduling {
  step [
    {
      model_name: "${composing}"
      model_version: -1
      input_map { key: "INPUT0" value: "A" }
      input_map { key: "INPUT1" value: "B" }
      output_map { key: "OUTPUT0" value: "SUM" }
      output_map { key: "OUTPUT1" value: "DIFF" }
    },
    {
      model_name: "${composing}"
      model_version: -1
      input_map { key: "INPUT0" value: "SUM" }
      input_map { key: "INPUT1" value: "DIFF" }
      output_map { key: "OUTPUT0" value: "TWO_A" }
      output_map { key: "OUTPUT1" value: "TWO_B" }
    }
  ]
}
${extra}
`;

/** A one-step ensemble whose step reads `reads` and writes `writes`. */
const brokenConfig = (name: string, steps: string, outputs = `output [ { name: "OUT" data_type: TYPE_INT32 dims: [ 16 ] } ]`) => `
name: "${name}"
platform: "ensemble"
max_batch_size: 8
input [ { name: "A" data_type: TYPE_INT32 dims: [ 16 ] }, { name: "B" data_type: TYPE_INT32 dims: [ 16 ] } ]
${outputs}
ensemble_scheduling { step [ ${steps} ] }
`;

const step = (inputs: [string, string][], outputs: [string, string][]) =>
  `{ model_name: "simple" ${inputs.map(([k, v]) => `input_map { key: "${k}" value: "${v}" }`).join(" ")} ${outputs.map(([k, v]) => `output_map { key: "${k}" value: "${v}" }`).join(" ")} }`;

const body = (a: number[], b: number[]) => ({
  inputs: [
    { name: "A", datatype: "INT32", shape: [1, 16], data: a },
    { name: "B", datatype: "INT32", shape: [1, 16], data: b },
  ],
});

const range = (k: number) => Array.from({ length: 16 }, (_, i) => k + i);

describe("ensembles", { timeout: 120_000 }, () => {
  let repo: string;
  let s: TestServer;

  before(async () => {
    repo = await tempRepository({ simple: path.join(EXAMPLES, "simple"), simple_batched: path.join(EXAMPLES, "simple") });
    const batchedCfg = path.join(repo, "simple_batched", "config.pbtxt");
    await fs.writeFile(batchedCfg, (await fs.readFile(batchedCfg, "utf8")).replace('name: "simple"', 'name: "simple_batched"') + "\ndynamic_batching { max_queue_delay_microseconds: 5000 }\n");
    const ensembles: Record<string, string> = {
      twice: twiceConfig("twice", "simple"),
      twice_batched: twiceConfig("twice_batched", "simple_batched"),
      twice_missing: twiceConfig("twice_missing", "not_in_repository"),
      bad_source: brokenConfig("bad_source", step([["INPUT0", "A"], ["INPUT1", "NOWHERE"]], [["OUTPUT0", "OUT"]])),
      bad_cycle: brokenConfig("bad_cycle", [
        step([["INPUT0", "A"], ["INPUT1", "Y"]], [["OUTPUT0", "X"]]),
        step([["INPUT0", "X"], ["INPUT1", "B"]], [["OUTPUT0", "Y"], ["OUTPUT1", "OUT"]]),
      ].join(", ")),
      bad_twice_written: brokenConfig("bad_twice_written", [
        step([["INPUT0", "A"], ["INPUT1", "B"]], [["OUTPUT0", "OUT"]]),
        step([["INPUT0", "A"], ["INPUT1", "B"]], [["OUTPUT0", "OUT"]]),
      ].join(", ")),
      bad_self: brokenConfig("bad_self", `{ model_name: "bad_self" input_map { key: "A" value: "A" } output_map { key: "OUT" value: "OUT" } }`),
      cycle_a: brokenConfig("cycle_a", `{ model_name: "cycle_b" input_map { key: "A" value: "A" } input_map { key: "B" value: "B" } output_map { key: "OUT" value: "OUT" } }`),
      cycle_b: brokenConfig("cycle_b", `{ model_name: "cycle_a" input_map { key: "A" value: "A" } input_map { key: "B" value: "B" } output_map { key: "OUT" value: "OUT" } }`),
      bad_input_name: brokenConfig("bad_input_name", step([["NOPE", "A"], ["INPUT1", "B"]], [["OUTPUT0", "OUT"]])),
      bad_datatype: brokenConfig("bad_datatype", step([["INPUT0", "A"], ["INPUT1", "B"]], [["OUTPUT0", "OUT"]])).replace('{ name: "A" data_type: TYPE_INT32', '{ name: "A" data_type: TYPE_FP32'),
      bad_unwritten: brokenConfig("bad_unwritten", step([["INPUT0", "A"], ["INPUT1", "B"]], [["OUTPUT0", "OUT"]]),
        `output [ { name: "OUT" data_type: TYPE_INT32 dims: [ 16 ] }, { name: "NEVER" data_type: TYPE_INT32 dims: [ 16 ] } ]`),
    };
    for (const [name, config] of Object.entries(ensembles)) {
      await fs.mkdir(path.join(repo, name, "1"), { recursive: true });
      await fs.writeFile(path.join(repo, name, "config.pbtxt"), config);
    }
    s = await startServer({ modelRepository: repo, strictReadiness: false });
  });
  after(async () => {
    await s?.close();
    await fs.rm(repo, { recursive: true, force: true });
  });

  it("gives the same answer as calling its steps by hand", async () => {
    const a = range(1);
    const b = range(100);
    const r = await postJson(`${s.url}/v2/models/twice/infer`, body(a, b));
    assert.equal(r.status, 200, JSON.stringify(r.json));
    const first = await postJson(`${s.url}/v2/models/simple/infer`, { inputs: [
      { name: "INPUT0", datatype: "INT32", shape: [1, 16], data: a }, { name: "INPUT1", datatype: "INT32", shape: [1, 16], data: b }] });
    const [sum, diff] = first.json.outputs.map((o: { data: number[] }) => o.data);
    const second = await postJson(`${s.url}/v2/models/simple/infer`, { inputs: [
      { name: "INPUT0", datatype: "INT32", shape: [1, 16], data: sum }, { name: "INPUT1", datatype: "INT32", shape: [1, 16], data: diff }] });
    assert.deepEqual(r.json.outputs, [
      { name: "TWO_A", datatype: "INT32", shape: [1, 16], data: second.json.outputs[0].data },
      { name: "TWO_B", datatype: "INT32", shape: [1, 16], data: second.json.outputs[1].data },
    ]);
    assert.deepEqual(r.json.outputs[0].data, a.map((v) => 2 * v));
    assert.equal(r.json.model_name, "twice");
  });

  it("counts whole requests under the ensemble and each step under its own model", async () => {
    const stats = async (m: string) => (await getJson(`${s.url}/v2/models/${m}/stats`)).json.model_stats[0].inference_stats.success.count as number;
    const [e0, s0] = [await stats("twice"), await stats("simple")];
    for (let i = 0; i < 3; i++) assert.equal((await postJson(`${s.url}/v2/models/twice/infer`, body(range(i), range(i)))).status, 200);
    assert.equal(await stats("twice") - e0, 3);
    assert.equal(await stats("simple") - s0, 6);
  });

  it("lets a batching step batch across ensemble requests", async () => {
    const answers = await Promise.all(Array.from({ length: 32 }, (_, k) => postJson(`${s.url}/v2/models/twice_batched/infer`, body(range(k), range(2 * k)))));
    for (const [k, r] of answers.entries()) {
      assert.equal(r.status, 200, JSON.stringify(r.json));
      assert.deepEqual(r.json.outputs[0].data, range(k).map((v) => 2 * v));
      assert.deepEqual(r.json.outputs[1].data, range(2 * k).map((v) => 2 * v));
    }
    const st = (await getJson(`${s.url}/v2/models/simple_batched/stats`)).json.model_stats[0];
    assert.equal(Number(st.inference_count), 64);
    assert.ok(Number(st.execution_count) < 64, `batched: ${st.execution_count} executions for 64 inferences`);
  });

  it("refuses at load a step whose model is missing, a mapped tensor the model lacks, or mismatched datatypes", async () => {
    const index = (await postJson(`${s.url}/v2/repository/index`, {})).json as { name: string; state: string; reason: string }[];
    const reason = (m: string) => index.find((e) => e.name === m)?.reason ?? "";
    assert.match(reason("twice_missing"), /ensemble 'twice_missing': step 0 \('not_in_repository'\) cannot be served: Request for unknown model: 'not_in_repository' is not found/);
    assert.match(reason("bad_input_name"), /ensemble 'bad_input_name': step 0 \('simple'\) maps input 'NOPE', which model 'simple' does not have/);
    assert.match(reason("bad_datatype"), /ensemble 'bad_datatype': tensor 'A' is FP32 \(ensemble input 'A'\) but step 0 \('simple'\) input 'INPUT0' is INT32/);
    assert.notEqual((await postJson(`${s.url}/v2/models/twice_missing/infer`, body(range(0), range(0)))).status, 200);
  });

  it("refuses at load a plan that reads a tensor nobody writes, has a cycle, writes a tensor twice or leaves an output unwritten", async () => {
    const index = (await postJson(`${s.url}/v2/repository/index`, {})).json as { name: string; state: string; reason: string }[];
    const reason = (m: string) => index.find((e) => e.name === m)?.reason ?? "";
    assert.match(reason("bad_source"), /ensemble 'bad_source': step 0 \('simple'\) input 'INPUT1' reads tensor 'NOWHERE', which is neither an ensemble input nor an output of any step/);
    assert.match(reason("bad_cycle"), /ensemble 'bad_cycle': its steps form a cycle among step 0 \('simple'\), step 1 \('simple'\)/);
    assert.match(reason("bad_twice_written"), /ensemble 'bad_twice_written': tensor 'OUT' is written by both step 0 \('simple'\) and step 1 \('simple'\)/);
    assert.match(reason("bad_unwritten"), /ensemble 'bad_unwritten': output 'NEVER' is not written by any step/);
    for (const m of ["bad_source", "bad_cycle", "bad_twice_written", "bad_unwritten"]) assert.equal(index.find((e) => e.name === m)?.state, "UNAVAILABLE");
  });

  it("refuses an ensemble that is its own step, or two that are each other's, instead of waiting on itself", async () => {
    const index = (await postJson(`${s.url}/v2/repository/index`, {})).json as { name: string; state: string; reason: string }[];
    const reason = (m: string) => index.find((e) => e.name === m)?.reason ?? "";
    assert.match(reason("bad_self"), /ensemble 'bad_self': step 0 \('bad_self'\) is the ensemble itself/);
    assert.ok(/must not form a cycle/.test(reason("cycle_a")) || /must not form a cycle/.test(reason("cycle_b")), `${reason("cycle_a")} / ${reason("cycle_b")}`);
    assert.notEqual(index.find((e) => e.name === "cycle_a")?.state, "READY");
    assert.notEqual(index.find((e) => e.name === "cycle_b")?.state, "READY");
  });

  it("reports platform 'ensemble' in its metadata", async () => {
    const md = (await getJson(`${s.url}/v2/models/twice`)).json;
    assert.equal(md.platform, "ensemble");
    assert.deepEqual(md.inputs.map((t: { name: string }) => t.name), ["A", "B"]);
  });
});

describe("the example image pipeline (JavaScript pre-processing → ONNX classifier → JavaScript top-3)", () => {
  let s: TestServer;
  before(async () => {
    s = await startServer({ modelRepository: EXAMPLES, modelControlMode: "explicit", startupModels: ["image_pipeline", "image_preprocess", "image_classifier", "image_top3"] });
  });
  after(async () => {
    await s?.close();
  });

  it("answers as the classifier's own classification extension does for the same image", async () => {
    let seed = 7;
    const next = () => ((seed = (seed * 1103515245 + 12345) % 2 ** 31), seed % 256);
    const images = [0, 1].map(() => Array.from({ length: 32 * 32 * 3 }, next));
    const r = await postJson(`${s.url}/v2/models/image_pipeline/infer`, { inputs: [{ name: "IMAGE", datatype: "UINT8", shape: [2, 32, 32, 3], data: images.flat() }] });
    assert.equal(r.status, 200, JSON.stringify(r.json));
    assert.deepEqual(r.json.outputs[0].shape, [2, 3]);
    // By hand: HWC bytes → CHW floats in [0, 1], then the classification extension's top 3.
    const chw = images.flatMap((img) => {
      const out = new Array<number>(img.length);
      for (let y = 0; y < 32; y++) for (let x = 0; x < 32; x++) for (let k = 0; k < 3; k++) out[k * 1024 + y * 32 + x] = img[(y * 32 + x) * 3 + k]! / 255;
      return out;
    });
    const direct = await postJson(`${s.url}/v2/models/image_classifier/infer`, {
      inputs: [{ name: "INPUT", datatype: "FP32", shape: [2, 3, 32, 32], data: chw }],
      outputs: [{ name: "OUTPUT", parameters: { classification: 3 } }],
    });
    assert.equal(direct.status, 200, JSON.stringify(direct.json));
    const parse = (v: string) => { const [score, index, label] = v.split(":"); return { score: Number(score), index, label }; };
    const got = (r.json.outputs[0].data as string[]).map(parse);
    const want = (direct.json.outputs[0].data as string[]).map(parse);
    assert.deepEqual(got.map((g) => [g.index, g.label]), want.map((w) => [w.index, w.label]));
    for (const [i, g] of got.entries()) assert.ok(Math.abs(g.score - want[i]!.score) < 1e-5, `score ${i}`);
  });
});

