/**
 * Decoupled models (`model_transaction_policy { decoupled: true }`): zero or
 * more responses per request, in-process and over gRPC ModelStreamInfer;
 * refused on HTTP /infer and unary ModelInfer with Triton's messages.
 */
import assert from "node:assert/strict";
import fs from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { after, before, describe, it } from "node:test";
import { status } from "@grpc/grpc-js";
import { makeTensor, tensorValues, type InferenceResponse, type TritonError } from "../src/index.js";
import { S } from "./grpc-simple.js";
import { GrpcTestClient, collectResponses, grpcError, postJson, startGrpcServer, type GrpcTestServer } from "./helpers.js";
import { TICKER_MODEL, WORDS_MODEL, countdownModel } from "./decoupled-models.js";


/** N = n: n responses OUT = n, n-1, ..., 1, 5 ms apart, then a final flag alone; N = -1: one response, then a throw. */
const [CONFIG, COUNTDOWN] = countdownModel(5);

/** Text models for the generate extension: `words` (decoupled: one response per word) and `upper` (one response). */
const TEXT = {
  words: WORDS_MODEL,
  upper: [`
name: "upper"
backend: "js"
max_batch_size: 4
input [ { name: "text_input" data_type: TYPE_STRING dims: [ 1 ] }, { name: "times" data_type: TYPE_INT32 dims: [ 1 ] optional: true } ]
output [ { name: "text_output" data_type: TYPE_STRING dims: [ 1 ] }, { name: "length" data_type: TYPE_INT32 dims: [ 1 ] } ]`, `
export default {
  execute(requests) {
    return requests.map((r) => {
      const text = r.inputs.text_input.data[0].toUpperCase().repeat(r.inputs.times ? r.inputs.times.data[0] : 1);
      return { outputs: { text_output: { shape: [1, 1], data: [text] }, length: { shape: [1, 1], data: [text.length] } } };
    });
  },
};`],
};


/** A model that streams countdown through BLS and sums what it gets. */
const BLS_STREAM = [`
name: "sum_countdown"
backend: "js"
max_batch_size: 0
input [ { name: "N" data_type: TYPE_INT32 dims: [ 1 ] } ]
output [ { name: "TOTAL" data_type: TYPE_INT32 dims: [ 1 ] }, { name: "COUNT" data_type: TYPE_INT32 dims: [ 1 ] } ]`, `
export default class {
  initialize(args, services) { this.services = services; }
  async execute(requests) {
    const out = [];
    for (const r of requests) {
      let total = 0, count = 0;
      try {
        for await (const res of this.services.stream({ model_name: "countdown", inputs: [{ name: "N", datatype: "INT32", shape: [1], data: r.inputs.N.data }] })) {
          total += res.OUT.data[0];
          count++;
        }
        out.push({ outputs: { TOTAL: { shape: [1], data: [total] }, COUNT: { shape: [1], data: [count] } } });
      } catch (e) {
        out.push({ error: "countdown failed: " + e.message });
      }
    }
    return out;
  }
}`];

/** Triton's repeat_int32 and square_int32 example configurations. */
const UTILITY = {
  square_int32: `
name: "square_int32"
backend: "square"
max_batch_size: 0
model_transaction_policy { decoupled: True }
input [ { name: "IN" data_type: TYPE_INT32 dims: [ 1 ] } ]
output [ { name: "OUT" data_type: TYPE_INT32 dims: [ 1 ] } ]
instance_group [ { kind: KIND_CPU } ]`,
  repeat_int32: `
name: "repeat_int32"
backend: "repeat"
max_batch_size: 0
model_transaction_policy { decoupled: True }
input [
  { name: "IN" data_type: TYPE_INT32 dims: [ -1 ] },
  { name: "DELAY" data_type: TYPE_UINT32 dims: [ -1 ] },
  { name: "WAIT" data_type: TYPE_UINT32 dims: [ 1 ] }
]
output [ { name: "OUT" data_type: TYPE_INT32 dims: [ 1 ] }, { name: "IDX" data_type: TYPE_UINT32 dims: [ 1 ] } ]
instance_group [ { kind: KIND_CPU } ]`,
};

const n = (v: number) => new Uint8Array(new Int32Array([v]).buffer);

describe("decoupled models", () => {
  let repo: string;
  let s: GrpcTestServer;
  let c: GrpcTestClient;

  before(async () => {
    repo = await fs.mkdtemp(path.join(os.tmpdir(), "tritium-decoupled-"));
    await fs.mkdir(path.join(repo, "countdown", "1"), { recursive: true });
    await fs.writeFile(path.join(repo, "countdown", "config.pbtxt"), CONFIG);
    await fs.writeFile(path.join(repo, "countdown", "1", "model.js"), COUNTDOWN);
    for (const [name, config] of Object.entries(UTILITY)) {
      await fs.mkdir(path.join(repo, name, "1"), { recursive: true });
      await fs.writeFile(path.join(repo, name, "config.pbtxt"), config);
    }
    for (const [name, [config, code]] of Object.entries({ ...TEXT, sum_countdown: BLS_STREAM, ticker: TICKER_MODEL })) {
      await fs.mkdir(path.join(repo, name, "1"), { recursive: true });
      await fs.writeFile(path.join(repo, name, "config.pbtxt"), config);
      await fs.writeFile(path.join(repo, name, "1", "model.js"), code);
    }
    s = await startGrpcServer({ modelRepository: repo });
    c = new GrpcTestClient(s.grpcAddress);
  });
  after(async () => {
    c?.close();
    await s?.close();
    await fs.rm(repo, { recursive: true, force: true });
  });

  it("streams every response in-process, the final flag last, and none for a request that gets none", async () => {
    for (const [count, expected] of [[3, ["3", "2", "1", "(final)"]], [0, ["(final)"]]] as const) {
      const got: string[] = [];
      await s.core.stream({ model_name: "countdown", inputs: [makeTensor("N", "INT32", [1], new Int32Array([count]))] }, (r, final) => {
        if (r === undefined) got.push(final ? "(final)" : "(empty)");
        else got.push(String((tensorValues((r as InferenceResponse).outputs[0]!) as Int32Array)[0]) + (final ? " final" : ""));
      });
      assert.deepEqual(got, expected);
    }
  });

  it("streams over ModelStreamInfer with triton_final_response, the empty final only when asked for", async () => {
    const stream = c.stream(S.modelStreamInfer);
    const done = collectResponses(stream);
    const input = (v: number) => ({ inputs: [{ name: "N", datatype: "INT32", shape: [1n] }], rawInputContents: [n(v)] });
    stream.write({ modelName: "countdown", id: "a", ...input(2) });
    stream.write({ modelName: "countdown", id: "b", ...input(1), parameters: { triton_enable_empty_final_response: { parameterChoice: { case: "boolParam", value: true } } } });
    stream.write({ modelName: "countdown", id: "z", ...input(0) });
    stream.end();
    const responses = await done;
    const view = responses.map((r) => {
      const ir = r.inferResponse!;
      const out = ir.rawOutputContents[0] ? new Int32Array(new Uint8Array(ir.rawOutputContents[0]).buffer)[0] : "empty";
      const final = ir.parameters["triton_final_response"]?.parameterChoice.value;
      return `${ir.id}:${out}:${final}`;
    });
    const of = (id: string) => view.filter((v) => v.startsWith(`${id}:`));
    assert.deepEqual(of("a"), ["a:2:false", "a:1:false"]);
    assert.deepEqual(of("b"), ["b:1:false", "b:empty:true"]);
    assert.deepEqual(of("z"), [], "no empty final unless asked");
  });

  it("sends a model's error mid-stream as an error_message after the responses before it", async () => {
    const stream = c.stream(S.modelStreamInfer);
    const done = collectResponses(stream);
    stream.write({ modelName: "countdown", id: "e", inputs: [{ name: "N", datatype: "INT32", shape: [1n] }], rawInputContents: [n(-1)] });
    stream.end();
    const responses = await done;
    assert.equal(responses.length, 2);
    assert.equal(new Int32Array(new Uint8Array(responses[0]!.inferResponse!.rawOutputContents[0]!).buffer)[0], 42);
    assert.match(responses[1]!.errorMessage, /model 'countdown' instance 'countdown_0_0': execute failed: broke after one response/);
  });

  it("refuses HTTP /infer and unary ModelInfer with Triton's messages", async () => {
    const r = await postJson(`${s.url}/v2/models/countdown/infer`, { inputs: [{ name: "N", datatype: "INT32", shape: [1], data: [1] }] });
    assert.equal(r.status, 501);
    assert.equal(r.json.error, "HTTP end point doesn't support models with decoupled transaction policy");
    const e = await grpcError(c.unary(S.modelInfer, { modelName: "countdown", inputs: [{ name: "N", datatype: "INT32", shape: [1n] }], rawInputContents: [n(1)] }));
    assert.equal(e.code, status.UNIMPLEMENTED);
    assert.equal(e.details, "ModelInfer RPC doesn't support models with decoupled transaction policy");
    await assert.rejects(s.core.infer({ model_name: "countdown", inputs: [makeTensor("N", "INT32", [1], new Int32Array([1]))] }), (err: TritonError) => err.code === "UNSUPPORTED");
  });

  it("serves Triton's square and repeat utility backends", async () => {
    const squares: number[] = [];
    await s.core.stream({ model_name: "square_int32", inputs: [makeTensor("IN", "INT32", [1], new Int32Array([3]))] }, (r) => {
      if (r && !(r instanceof Error)) squares.push((tensorValues(r.outputs[0]!) as Int32Array)[0]!);
    });
    assert.deepEqual(squares, [3, 3, 3]);
    const repeats: string[] = [];
    const t0 = Date.now();
    await s.core.stream({
      model_name: "repeat_int32",
      inputs: [
        makeTensor("IN", "INT32", [3], new Int32Array([7, 8, 9])),
        makeTensor("DELAY", "UINT32", [3], new Uint32Array([10, 10, 10])),
        makeTensor("WAIT", "UINT32", [1], new Uint32Array([10])),
      ],
    }, (r, final) => {
      if (r && !(r instanceof Error)) {
        const out = r.outputs.find((t) => t.name === "OUT")!;
        const idx = r.outputs.find((t) => t.name === "IDX")!;
        repeats.push(`${(tensorValues(out) as Int32Array)[0]}@${(tensorValues(idx) as Uint32Array)[0]}`);
      } else if (final) repeats.push("final");
    });
    assert.deepEqual(repeats, ["7@0", "8@1", "9@2", "final"]);
    assert.ok(Date.now() - t0 >= 35, "delays and wait observed");
  });

  it("answers the generate extension: inputs and outputs by name, a one-element output as its value", async () => {
    const r = await postJson(`${s.url}/v2/models/upper/generate`, { id: "g1", text_input: "abc", times: 2, parameters: { temperature: 0.5 } });
    assert.equal(r.status, 200, JSON.stringify(r.json));
    assert.deepEqual(r.json, { id: "g1", model_name: "upper", model_version: "1", text_output: "ABCABC", length: 6 });
    const several = await postJson(`${s.url}/v2/models/words/generate`, { text_input: "one two" });
    assert.equal(several.status, 400);
    assert.match(several.json.error, /sent 2 responses where exactly one is expected/);
  });

  it("streams generate_stream as server-sent events, one per response", async () => {
    const res = await fetch(`${s.url}/v2/models/words/generate_stream`, { method: "POST", body: JSON.stringify({ text_input: "to be or not" }) });
    assert.equal(res.status, 200);
    assert.equal(res.headers.get("content-type"), "text/event-stream; charset=utf-8");
    const events = (await res.text()).split("\n\n").filter(Boolean).map((e) => JSON.parse(e.replace(/^data: /, "")));
    assert.deepEqual(events.map((e) => e.text_output), ["to", "be", "or", "not"]);
    assert.equal(events[0].model_name, "words");
  });

  it("streams a decoupled model from /infer to a client that accepts events, its error as the last event", async () => {
    const body = JSON.stringify({ inputs: [{ name: "N", datatype: "INT32", shape: [1], data: [2] }] });
    const res = await fetch(`${s.url}/v2/models/countdown/infer`, { method: "POST", body, headers: { Accept: "text/event-stream" } });
    assert.equal(res.status, 200);
    const events = (await res.text()).split("\n\n").filter(Boolean).map((e) => JSON.parse(e.replace(/^data: /, "")));
    assert.deepEqual(events.map((e) => e.outputs[0].data), [[2], [1]]);
    const bad = await fetch(`${s.url}/v2/models/countdown/infer`, { method: "POST", body: body.replace("[2]", "[-1]"), headers: { Accept: "text/event-stream" } });
    const badEvents = (await bad.text()).split("\n\n").filter(Boolean).map((e) => JSON.parse(e.replace(/^data: /, "")));
    assert.equal(bad.status, 200);
    assert.deepEqual(badEvents[0].outputs[0].data, [42]);
    assert.match(badEvents[1].error, /broke after one response/);
  });

  it("lets a model stream a decoupled model through BLS, its error surfaced", async () => {
    const ok = await postJson(`${s.url}/v2/models/sum_countdown/infer`, { inputs: [{ name: "N", datatype: "INT32", shape: [1], data: [4] }] });
    assert.equal(ok.status, 200, JSON.stringify(ok.json));
    assert.deepEqual(ok.json.outputs.map((o: { data: number[] }) => o.data[0]), [10, 4]);
    const bad = await postJson(`${s.url}/v2/models/sum_countdown/infer`, { inputs: [{ name: "N", datatype: "INT32", shape: [1], data: [-1] }] });
    assert.equal(bad.status, 500);
    assert.match(bad.json.error, /countdown failed: .*broke after one response/);
  });

  it("tells a running decoupled model that its client has gone, so it can stop early", async () => {
    const marker = path.join(repo, "ticks.txt");
    const abort = new AbortController();
    const res = await fetch(`${s.url}/v2/models/ticker/generate_stream`, { method: "POST", body: JSON.stringify({ text_input: marker }), signal: abort.signal });
    const reader = res.body!.getReader();
    let text = "";
    while (!text.includes("tick 2")) text += new TextDecoder().decode((await reader.read()).value);
    abort.abort();
    for (let i = 0; i < 100 && !(await fs.stat(marker).catch(() => undefined)); i++) await new Promise((r) => setTimeout(r, 20));
    const sent = Number(await fs.readFile(marker, "utf8"));
    assert.ok(sent >= 3 && sent < 50, `the model stopped after ${sent} ticks`);
  });
});

