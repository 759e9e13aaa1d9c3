/**
 * `@tritium/client` streaming against a real Tritium: gRPC ModelStreamInfer
 * (async iteration, callbacks, one-request streams, per-request errors,
 * cancellation) and HTTP's generate extension (generate, generate_stream as
 * server-sent events), with decoupled JavaScript models.
 */
import assert from "node:assert/strict";
import fs from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { after, before, describe, it } from "node:test";
import { GrpcClient, HttpClient, InferenceServerError, type InferResult } from "@tritium/client";
import { startGrpcServer, type GrpcTestServer } from "./helpers.js";
import { TICKER_MODEL, WORDS_MODEL, countdownModel } from "./decoupled-models.js";

const MODELS: Record<string, [config: string, code: string]> = {
  // N = n: responses OUT = n, n-1, ..., 1, then the final flag alone; N = -1: one response, then a failure.
  countdown: countdownModel(2),
  words: WORDS_MODEL,
  upper: [`
name: "upper"
backend: "js"
max_batch_size: 0
input [ { name: "text_input" data_type: TYPE_STRING dims: [ 1 ] }, { name: "times" data_type: TYPE_INT32 dims: [ 1 ] optional: true } ]
output [ { name: "text_output" data_type: TYPE_STRING dims: [ 1 ] } ]`, `
export default {
  execute(requests) {
    return requests.map((r) => ({ outputs: { text_output: { shape: [1], data: [r.inputs.text_input.data[0].toUpperCase().repeat(r.inputs.times ? r.inputs.times.data[0] : 1)] } } }));
  },
};`],
  ticker: TICKER_MODEL,
};

const N = (n: number) => [{ name: "N", datatype: "INT32" as const, shape: [1], data: [n] }];
const out = (r: InferResult | undefined) => (r!.asArray("OUT") as Int32Array)[0];

let repo: string;
let server: GrpcTestServer;
let grpc: GrpcClient;
let http: HttpClient;

before(async () => {
  repo = await fs.mkdtemp(path.join(os.tmpdir(), "tritium-client-stream-"));
  for (const [name, [config, code]] of Object.entries(MODELS)) {
    await fs.mkdir(path.join(repo, name, "1"), { recursive: true });
    await fs.writeFile(path.join(repo, name, "config.pbtxt"), config);
    await fs.writeFile(path.join(repo, name, "1", "model.js"), code);
  }
  server = await startGrpcServer({ modelRepository: repo });
  grpc = new GrpcClient(server.grpcAddress);
  http = new HttpClient(server.url);
});

after(async () => {
  grpc?.close();
  await server?.close();
  await fs.rm(repo, { recursive: true, force: true });
});

/** The promise's rejection, which must be an InferenceServerError. */
async function failure(p: Promise<unknown>): Promise<InferenceServerError> {
  try {
    await p;
  } catch (e) {
    assert.ok(e instanceof InferenceServerError, `expected an InferenceServerError, got ${String(e)}`);
    return e;
  }
  assert.fail("expected the call to fail");
}

/** Waits for the ticker to write its count (it does once it stops), and reads it. */
async function tickerCount(file: string): Promise<number> {
  for (let i = 0; i < 500; i++) {
    const text = await fs.readFile(file, "utf8").catch(() => "");
    if (text) return Number(text);
    await new Promise((res) => setTimeout(res, 20));
  }
  assert.fail("the ticker never stopped");
}

describe("grpc streams", () => {
  it("iterates the responses of several requests on one stream, each under its request id", async () => {
    const stream = grpc.startStream();
    stream.send("countdown", N(3), { requestId: "a" });
    stream.send("countdown", N(2), { requestId: "b" });
    stream.end();
    const got: Record<string, number[]> = {};
    for await (const { result, error } of stream) {
      assert.equal(error, undefined);
      (got[result!.id!] ??= []).push(out(result)!);
    }
    assert.deepEqual(got, { a: [3, 2, 1], b: [2, 1] });
  });

  it("hands responses to a callback, with the empty final response when asked for", async () => {
    const seen: string[] = [];
    const stream = grpc.startStream({
      onResponse: (result, error) => seen.push(error ? `error ${error.message}` : result!.outputs.length ? String(out(result)) : `final ${result!.isFinal}`),
    });
    stream.send("countdown", N(2), { parameters: { triton_enable_empty_final_response: true } });
    stream.end();
    await stream.closed();
    assert.deepEqual(seen, ["2", "1", "final true"]);
  });

  it("streamInfer yields a decoupled model's responses and stops at its final one", async () => {
    const values: number[] = [];
    for await (const r of grpc.streamInfer("countdown", N(4))) values.push(out(r)!);
    assert.deepEqual(values, [4, 3, 2, 1]);
    const none: InferResult[] = [];
    for await (const r of grpc.streamInfer("countdown", N(0))) none.push(r);
    assert.deepEqual(none, []);
  });

  it("delivers a request's error as a stream message, and streamInfer throws it after the responses before it", async () => {
    const stream = grpc.startStream();
    stream.send("countdown", N(-1));
    stream.send("countdown", N(1));
    stream.end();
    const messages: string[] = [];
    for await (const { result, error } of stream) messages.push(error ? `error: ${error.message}` : String(out(result)));
    const errors = messages.filter((m) => m.startsWith("error"));
    assert.equal(errors.length, 1);
    assert.match(errors[0]!, /^error: \[request id: <id_unknown>\] model 'countdown' .*execute failed: broke after one response$/);
    assert.deepEqual(messages.filter((m) => !m.startsWith("error")).sort(), ["1", "42"]);

    const values: number[] = [];
    const e = await failure((async () => {
      for await (const r of grpc.streamInfer("countdown", N(-1))) values.push(out(r)!);
    })());
    assert.deepEqual(values, [42]);
    assert.match(e.message, /execute failed: broke after one response$/);
  });

  it("leaving a streamInfer loop early cancels the request on the server", async () => {
    const file = path.join(repo, "grpc-ticks");
    let seen = 0;
    for await (const r of grpc.streamInfer("ticker", [{ name: "text_input", datatype: "BYTES", shape: [1], data: [file] }])) {
      assert.equal(r.asStrings("text_output")[0], `tick ${seen}`);
      if (++seen === 2) break;
    }
    assert.ok((await tickerCount(file)) < 100);
  });

  it("an AbortSignal ends the stream's iteration with CANCELLED", async () => {
    const controller = new AbortController();
    const stream = grpc.startStream({ signal: controller.signal });
    stream.send("ticker", [{ name: "text_input", datatype: "BYTES", shape: [1], data: [path.join(repo, "grpc-abort")] }]);
    const e = await failure((async () => {
      for await (const _ of stream) controller.abort();
    })());
    assert.equal(e.status, "CANCELLED");
  });

  it("unary infer on a decoupled model rejects with the server's status and message", async () => {
    const e = await failure(grpc.infer("countdown", N(1)));
    assert.equal(e.status, "UNIMPLEMENTED");
    assert.match(e.message, /decoupled/);
  });

  it("rejects with UNAVAILABLE when nothing listens at the address", async () => {
    const nobody = new GrpcClient("127.0.0.1:1");
    try {
      const e = await failure(nobody.isServerLive());
      assert.equal(e.status, "UNAVAILABLE");
    } finally {
      nobody.close();
    }
  });
});

describe("http generate extension", () => {
  it("generate answers one JSON object with the outputs by name", async () => {
    const answer = await http.generate("upper", { id: "g1", text_input: "abc", times: 2 });
    assert.deepEqual(answer, { id: "g1", model_name: "upper", model_version: "1", text_output: "ABCABC" });
  });

  it("generateStream yields each response of a decoupled model as an event", async () => {
    const pieces: unknown[] = [];
    for await (const piece of http.generateStream("words", { text_input: "one two three" })) pieces.push(piece.text_output);
    assert.deepEqual(pieces, ["one", "two", "three"]);
  });

  it("generate and generateStream reject an unknown model with the server's status and message", async () => {
    const e = await failure(http.generate("nope", { text_input: "x" }));
    const wire = await fetch(`${server.url}/v2/models/nope/generate`, { method: "POST", body: JSON.stringify({ text_input: "x" }) });
    assert.equal(e.status, wire.status);
    assert.equal(e.message, ((await wire.json()) as { error: string }).error);
    const s = await failure((async () => {
      for await (const _ of http.generateStream("nope", { text_input: "x" })) assert.fail("no events expected");
    })());
    assert.equal(s.status, e.status);
    assert.equal(s.message, e.message);
  });

  it("leaving a generateStream loop early closes the stream and the server stops the request", async () => {
    const file = path.join(repo, "http-ticks");
    let seen = 0;
    for await (const piece of http.generateStream("ticker", { text_input: file })) {
      assert.equal(piece.text_output, `tick ${seen}`);
      if (++seen === 2) break;
    }
    assert.ok((await tickerCount(file)) < 100);
  });

  it("an AbortSignal stops a generateStream with CANCELLED", async () => {
    const controller = new AbortController();
    const e = await failure((async () => {
      for await (const _ of http.generateStream("ticker", { text_input: path.join(repo, "http-abort") }, { signal: controller.signal })) controller.abort();
    })());
    assert.equal(e.status, "CANCELLED");
  });
});
