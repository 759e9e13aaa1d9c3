/**
 * Fuzzing with fast-check: random and mutated inference requests over HTTP
 * (JSON, binary tensors, raw garbage) and gRPC, against the example models.
 * Whatever a client sends, the answer is a client error or a success, never
 * a 500 / INTERNAL, never a dropped connection; afterwards the server still
 * answers correctly and its heap has not grown. Prints the cases tried.
 */
import assert from "node:assert/strict";
import v8 from "node:v8";
import vm from "node:vm";
import { after, before, describe, it } from "node:test";
import fc from "fast-check";
import { status } from "@grpc/grpc-js";
import { S } from "./grpc-simple.js";
import { EXAMPLES, GrpcTestClient, startGrpcServer, type GrpcTestServer } from "./helpers.js";

/** Fixed seed: a failure replays; FUZZ_SEED and FUZZ_RUNS start another, longer hunt. */
const SEED = Number(process.env.FUZZ_SEED ?? 20261205);
const RUNS = Number(process.env.FUZZ_RUNS ?? 400);
const tried: Record<string, number> = {};

v8.setFlagsFromString("--expose-gc");
const gc = vm.runInNewContext("gc") as () => void;
const heapAfterGc = () => {
  gc();
  gc();
  return process.memoryUsage().heapUsed;
};

const MODELS = ["simple", "simple_string", "identity_fp32", "no_such_model", "simple/../simple", ""];
const DATATYPES = ["INT32", "FP32", "BYTES", "INT64", "UINT8", "BOOL", "FP16", "BF16", "int32", "", "FLOAT"];

const number = fc.oneof(fc.integer(), fc.double(), fc.constantFrom(2 ** 31, -(2 ** 31) - 1, 2 ** 53, Number.MAX_VALUE, 1e308));
const jsonValue: fc.Arbitrary<unknown> = fc.oneof(number, fc.string(), fc.boolean(), fc.constant(null), fc.array(number, { maxLength: 40 }), fc.array(fc.string(), { maxLength: 5 }), fc.object({ maxDepth: 2 }));
const shape = fc.oneof(
  fc.array(fc.integer({ min: -2, max: 20 }), { maxLength: 4 }),
  fc.constantFrom([1, 16], [16], [1, 1e9], [2 ** 40], [1, -1], []),
  jsonValue,
);
const input = fc.record(
  {
    name: fc.oneof(fc.constantFrom("INPUT0", "INPUT1", "input0", ""), fc.string()),
    datatype: fc.oneof(fc.constantFrom(...DATATYPES), fc.string()),
    shape,
    data: fc.oneof(fc.array(number, { maxLength: 40 }), fc.array(fc.string(), { maxLength: 20 }), jsonValue),
    parameters: fc.oneof(
      fc.constant(undefined),
      fc.record({ binary_data_size: fc.oneof(fc.integer({ min: -10, max: 1 << 20 }), jsonValue) }, { requiredKeys: [] }),
      fc.record({ shared_memory_region: fc.string(), shared_memory_byte_size: number }, { requiredKeys: [] }),
      fc.object({ maxDepth: 1 }),
    ),
  },
  { requiredKeys: ["name"] },
);
const request = fc.record(
  {
    id: fc.oneof(fc.string(), number),
    inputs: fc.oneof(fc.array(input, { maxLength: 4 }), jsonValue),
    outputs: fc.oneof(fc.array(fc.record({ name: fc.string(), parameters: fc.object({ maxDepth: 1 }) }, { requiredKeys: [] }), { maxLength: 3 }), jsonValue),
    parameters: fc.oneof(fc.object({ maxDepth: 1 }), fc.record({ binary_data_output: fc.boolean(), sequence_id: number, priority: number, timeout: number }, { requiredKeys: [] })),
  },
  { requiredKeys: [] },
);

/** A valid `simple` request, so mutations start near the paths that do work. */
const VALID = {
  inputs: [
    { name: "INPUT0", datatype: "INT32", shape: [1, 16], data: Array.from({ length: 16 }, (_, i) => i) },
    { name: "INPUT1", datatype: "INT32", shape: [1, 16], data: Array.from({ length: 16 }, () => 1) },
  ],
};
const mutated = fc.tuple(fc.constantFrom("inputs", "outputs", "parameters", "id"), fc.nat(1), fc.constantFrom("name", "datatype", "shape", "data", "parameters"), jsonValue).map(([top, i, field, value]) => {
  const body = structuredClone(VALID) as Record<string, unknown>;
  if (top === "inputs") (body.inputs as Record<string, unknown>[])[i]![field] = value;
  else body[top] = value;
  return body;
});

async function post(url: string, body: Uint8Array | string, headers: Record<string, string>): Promise<{ status: number; text: string }> {
  const res = await fetch(url, { method: "POST", body, headers });
  return { status: res.status, text: await res.text() };
}

/**
 * A client's mistake is a 4xx with an `error` message, or 501 where it asks
 * for what Triton does not implement (UNSUPPORTED, Triton's status for it);
 * anything else must be a success.
 */
function assertClientAnswer(r: { status: number; text: string }, what: string): void {
  assert.ok(r.status < 500 || r.status === 501, `${what} → ${r.status} ${r.text.slice(0, 300)}`);
  if (r.status !== 200) assert.equal(typeof JSON.parse(r.text).error, "string", `${what} → ${r.text.slice(0, 300)}`);
}

describe("fuzzing", () => {
  let s: GrpcTestServer;
  let client: GrpcTestClient;
  let heapBefore = 0;
  before(async () => {
    s = await startGrpcServer({ modelRepository: EXAMPLES, modelControlMode: "explicit", startupModels: ["simple", "simple_string", "identity_fp32"] });
    client = new GrpcTestClient(s.grpcAddress);
    heapBefore = heapAfterGc();
  });
  after(async () => {
    client?.close();
    await s?.close();
    console.log(`# fuzz cases tried: ${Object.entries(tried).map(([k, n]) => `${k} ${n}`).join(", ")} (seed ${SEED})`);
  });

  it("answers random and mutated JSON requests with a client error or a result", async () => {
    await fc.assert(
      fc.asyncProperty(fc.constantFrom(...MODELS), fc.oneof(request, mutated), async (model, body) => {
        tried["HTTP JSON"] = (tried["HTTP JSON"] ?? 0) + 1;
        const text = JSON.stringify(body);
        assertClientAnswer(await post(`${s.url}/v2/models/${encodeURIComponent(model)}/infer`, text, { "content-type": "application/json" }), text.slice(0, 300));
      }),
      { seed: SEED, numRuns: RUNS * 3 },
    );
  });

  it("answers binary-tensor requests with wrong header lengths, sizes and payloads", async () => {
    await fc.assert(
      fc.asyncProperty(fc.constantFrom(...MODELS.slice(0, 3)), request, fc.uint8Array({ maxLength: 512 }), fc.integer({ min: -5, max: 5000 }), async (model, header, payload, delta) => {
        tried["HTTP binary"] = (tried["HTTP binary"] ?? 0) + 1;
        const head = Buffer.from(JSON.stringify(header));
        const length = delta === 0 ? head.byteLength : Math.max(-1, head.byteLength + (delta % 50));
        const r = await post(`${s.url}/v2/models/${model}/infer`, Buffer.concat([head, payload]), { "inference-header-content-length": String(length), "content-type": "application/octet-stream" });
        assertClientAnswer(r, `${head.toString().slice(0, 200)} + ${payload.byteLength} bytes, header length ${length}`);
      }),
      { seed: SEED, numRuns: RUNS },
    );
  });

  it("answers raw garbage, compressed garbage and bodies on every route", async () => {
    const routes = ["/v2/models/simple/infer", "/v2/repository/index", "/v2/repository/models/simple/load", "/v2/systemsharedmemory/region/r/register", "/v2/trace/setting", "/v2/logging", "/v2/models/simple/generate"];
    await fc.assert(
      fc.asyncProperty(fc.constantFrom(...routes), fc.uint8Array({ maxLength: 300 }), fc.constantFrom("identity", "gzip", "deflate", "br"), async (route, bytes, encoding) => {
        tried["HTTP garbage"] = (tried["HTTP garbage"] ?? 0) + 1;
        assertClientAnswer(await post(`${s.url}${route}`, bytes, { "content-type": "application/json", "content-encoding": encoding }), `${route} ${encoding} ${Buffer.from(bytes).toString("hex").slice(0, 80)}`);
      }),
      { seed: SEED, numRuns: RUNS },
    );
  });

  it("answers random gRPC ModelInfer requests with a client status", async () => {
    const CLIENT_CODES = new Set([status.OK, status.INVALID_ARGUMENT, status.NOT_FOUND, status.UNAVAILABLE, status.UNIMPLEMENTED, status.ALREADY_EXISTS]);
    const tensor = fc.record({
      name: fc.oneof(fc.constantFrom("INPUT0", "INPUT1"), fc.string()),
      datatype: fc.oneof(fc.constantFrom(...DATATYPES), fc.string()),
      shape: fc.array(fc.bigInt({ min: -3n, max: 1n << 40n }), { maxLength: 4 }),
      contents: fc.option(fc.record({ intContents: fc.array(fc.integer({ min: -(2 ** 31), max: 2 ** 31 - 1 }), { maxLength: 20 }) }), { nil: undefined }),
    });
    await fc.assert(
      fc.asyncProperty(fc.constantFrom(...MODELS), fc.array(tensor, { maxLength: 3 }), fc.array(fc.uint8Array({ maxLength: 128 }), { maxLength: 3 }), fc.string(), async (modelName, inputs, raw, modelVersion) => {
        tried["gRPC"] = (tried["gRPC"] ?? 0) + 1;
        const code = await client.unary(S.modelInfer, { modelName, modelVersion, inputs, rawInputContents: raw }).then(() => status.OK, (e: { code: number }) => e.code);
        assert.ok(CLIENT_CODES.has(code), `${modelName} ${JSON.stringify(inputs, (_, v) => (typeof v === "bigint" ? String(v) : v))} raw ${raw.map((r) => r.byteLength)} → gRPC code ${code}`);
      }),
      { seed: SEED, numRuns: RUNS },
    );
  });

  it("still answers correctly afterwards, its heap no larger than before", async () => {
    const r = await post(`${s.url}/v2/models/simple/infer`, JSON.stringify(VALID), { "content-type": "application/json" });
    assert.equal(r.status, 200);
    assert.deepEqual(JSON.parse(r.text).outputs[0].data, Array.from({ length: 16 }, (_, i) => i + 1));
    const grown = heapAfterGc() - heapBefore;
    console.log(`# heap after fuzzing: ${(grown / 2 ** 20).toFixed(1)} MiB more than before`);
    assert.ok(grown < 16 * 2 ** 20, `the heap grew by ${(grown / 2 ** 20).toFixed(1)} MiB`);
  });
});
