/**
 * HTTP and gRPC are two doors to the same core: the same cases go through
 * both and must give identical results — metadata, configuration, every
 * datatype, errors (same message, statuses from the same error code), the
 * repository index and statistics.
 */
import assert from "node:assert/strict";
import fs from "node:fs/promises";
import path from "node:path";
import { after, before, describe, it } from "node:test";
import { fromJson, toJson, type DescMessage, type JsonValue, type MessageShape } from "@bufbuild/protobuf";
import { status } from "@grpc/grpc-js";
import { modelConfigToJson } from "../src/core/repository/model-config.js";
import { Health, HealthCheckResponse_ServingStatus } from "../src/gen/grpc/health/v1/health_pb.js";
import {
  GRPCInferenceService,
  ModelMetadataResponseSchema,
  ModelStatisticsResponseSchema,
  RepositoryIndexResponseSchema,
  ServerMetadataResponseSchema,
} from "../src/gen/inference/grpc_service_pb.js";
import {
  DATATYPE_CASES,
  EXAMPLES,
  FIXTURES,
  GrpcTestClient,
  bytesOf,
  getJson,
  grpcError,
  httpRequest,
  postBinary,
  postJson,
  splitBinaryResponse,
  startGrpcServer,
  tempRepository,
  type GrpcTestServer,
} from "./helpers.js";

const S = GRPCInferenceService.method;

/** The HTTP status Triton gives the error code behind each gRPC status. */
const HTTP_FOR_GRPC: Partial<Record<status, number>> = {
  [status.UNKNOWN]: 400,
  [status.INTERNAL]: 500,
  [status.NOT_FOUND]: 404,
  [status.INVALID_ARGUMENT]: 400,
  [status.UNAVAILABLE]: 503,
  [status.UNIMPLEMENTED]: 501,
  [status.ALREADY_EXISTS]: 400,
  [status.CANCELLED]: 400,
};

/**
 * Reads a core JSON answer (as HTTP sends it) into the gRPC message, refusing
 * any field the message lacks, and prints both sides as proto JSON so that a
 * difference shows field by field.
 */
function assertSameMessage<D extends DescMessage>(schema: D, httpJson: unknown, grpc: MessageShape<D>, what: string): void {
  const fromHttp = fromJson(schema, httpJson as JsonValue, { ignoreUnknownFields: false });
  const opts = { useProtoFieldName: true, alwaysEmitImplicit: true } as const;
  assert.deepEqual(toJson(schema, grpc, opts), toJson(schema, fromHttp, opts), what);
}

interface TensorSpec {
  name: string;
  datatype: string;
  shape: number[];
  raw: Uint8Array;
}

interface InferCase {
  what: string;
  model: string;
  version?: string;
  id?: string;
  inputs: TensorSpec[];
  outputs?: string[];
}

const i32 = (n: number, v = 1) => bytesOf(new Int32Array(n).fill(v));

/** Both doors' outputs as (name, datatype, shape, bytes), or the error. */
type Outcome = { outputs: { name: string; datatype: string; shape: number[]; data: string }[]; id: string; version: string } | { error: string; http: number; grpc?: status };

async function viaHttp(url: string, c: InferCase): Promise<Outcome> {
  const header = {
    ...(c.id !== undefined ? { id: c.id } : {}),
    inputs: c.inputs.map((t) => ({ name: t.name, datatype: t.datatype, shape: t.shape, parameters: { binary_data_size: t.raw.byteLength } })),
    ...(c.outputs ? { outputs: c.outputs.map((name) => ({ name, parameters: { binary_data: true } })) } : {}),
    parameters: { binary_data_output: true },
  };
  const route = `${url}/v2/models/${c.model}${c.version ? `/versions/${c.version}` : ""}/infer`;
  const res = await postBinary(route, header, c.inputs.map((t) => t.raw));
  if (res.status !== 200) return { error: JSON.parse(res.body.toString()).error, http: res.status };
  const { header: h, binary } = splitBinaryResponse(res);
  return {
    id: h.id ?? "",
    version: h.model_version,
    outputs: h.outputs.map((o: { name: string; datatype: string; shape: number[] }) => ({
      name: o.name,
      datatype: o.datatype,
      shape: o.shape,
      data: binary.get(o.name)!.toString("hex"),
    })),
  };
}

async function viaGrpc(client: GrpcTestClient, c: InferCase): Promise<Outcome> {
  try {
    const res = await client.unary(S.modelInfer, {
      modelName: c.model,
      modelVersion: c.version ?? "",
      id: c.id ?? "",
      inputs: c.inputs.map((t) => ({ name: t.name, datatype: t.datatype, shape: t.shape.map(BigInt) })),
      outputs: (c.outputs ?? []).map((name) => ({ name })),
      rawInputContents: c.inputs.map((t) => t.raw),
    });
    return {
      id: res.id,
      version: res.modelVersion,
      outputs: res.outputs.map((o, i) => ({ name: o.name, datatype: o.datatype, shape: o.shape.map(Number), data: Buffer.from(res.rawOutputContents[i]!).toString("hex") })),
    };
  } catch (e) {
    const err = e as { code: status; details: string };
    return { error: err.details, http: HTTP_FOR_GRPC[err.code] ?? -1, grpc: err.code };
  }
}

/** Runs a case through both doors and asserts identical outcomes (for errors: same message, matching statuses). */
async function assertSameInfer(s: GrpcTestServer, client: GrpcTestClient, c: InferCase): Promise<Outcome> {
  const [h, g] = await Promise.all([viaHttp(s.url, c), viaGrpc(client, c)]);
  const { grpc: _code, ...grpcComparable } = g as Outcome & { grpc?: status };
  assert.deepEqual(grpcComparable, h, c.what);
  return g;
}

describe("HTTP and gRPC conformance: the same cases through both doors", () => {
  let s: GrpcTestServer;
  let c: GrpcTestClient;
  let models: string[];

  before(async () => {
    const repo = await tempRepository({
      simple: path.join(EXAMPLES, "simple"),
      versioned: path.join(FIXTURES, "versioned"),
      ...Object.fromEntries(DATATYPE_CASES.map((d) => [d.model, path.join(FIXTURES, d.model)])),
    });
    // A model that cannot load gives the index an UNAVAILABLE entry with a reason.
    await fs.mkdir(path.join(repo, "broken", "1"), { recursive: true });
    await fs.writeFile(path.join(repo, "broken", "config.pbtxt"), 'name: "broken"\nplatform: "onnxruntime_onnx"\nmax_batch_size: "eight"\n');
    s = await startGrpcServer({ modelRepository: repo });
    c = new GrpcTestClient(s.grpcAddress);
    models = ["simple", "versioned", ...DATATYPE_CASES.map((d) => d.model)];
  });
  after(async () => {
    c.close();
    await s.close();
  });

  it("server metadata, liveness and readiness", async () => {
    assertSameMessage(ServerMetadataResponseSchema, (await getJson(`${s.url}/v2`)).json, await c.unary(S.serverMetadata, {}), "server metadata");
    const live = await fetch(`${s.url}/v2/health/live`);
    assert.equal(live.status === 200, (await c.unary(S.serverLive, {})).live);
    const ready = await fetch(`${s.url}/v2/health/ready`);
    // The broken model keeps a strictly-ready server unready through both doors.
    assert.equal(ready.status, 400);
    assert.equal((await c.unary(S.serverReady, {})).ready, false);
    assert.equal((await c.unary(Health.method.check, {})).status, HealthCheckResponse_ServingStatus.NOT_SERVING);
  });

  it("model metadata and readiness of every model and version", async () => {
    for (const m of models) {
      for (const version of ["", "1", "2", "3", "9"]) {
        const route = `${s.url}/v2/models/${m}${version ? `/versions/${version}` : ""}`;
        const http = await getJson(route);
        const grpc = c.unary(S.modelMetadata, { name: m, version });
        if (http.status === 200) assertSameMessage(ModelMetadataResponseSchema, http.json, await grpc, `${m} v${version}`);
        else {
          const err = await grpcError(grpc);
          assert.deepEqual([HTTP_FOR_GRPC[err.code], err.details], [http.status, http.json.error], `${m} v${version}`);
        }
        const httpReady = (await fetch(`${route}/ready`)).status === 200;
        assert.equal((await c.unary(S.modelReady, { name: m, version })).ready, httpReady, `${m} v${version} ready`);
      }
    }
  });

  it("model configuration of every model", async () => {
    for (const m of models) {
      const http = await getJson(`${s.url}/v2/models/${m}/config`);
      assert.equal(http.status, 200);
      const grpc = await c.unary(S.modelConfig, { name: m });
      assert.deepEqual(modelConfigToJson(grpc.config!), http.json, m);
    }
  });

  for (const dc of DATATYPE_CASES) {
    it(`${dc.datatype}: binary HTTP, JSON HTTP, raw gRPC and typed gRPC give the same tensor`, async () => {
      const tensor = { name: "INPUT0", datatype: dc.datatype, shape: [1, 3], raw: dc.raw };
      const out = await assertSameInfer(s, c, { what: dc.model, model: dc.model, id: `id-${dc.datatype}`, inputs: [tensor] });
      assert.ok("outputs" in out);
      assert.deepEqual(out.outputs, [{ name: "OUTPUT0", datatype: dc.datatype, shape: [1, 3], data: dc.raw.toString("hex") }]);
      assert.equal(out.id, `id-${dc.datatype}`);

      // JSON in (HTTP) and typed contents in (gRPC): the same bytes out.
      const json = await httpRequest(`${s.url}/v2/models/${dc.model}/infer`, {
        method: "POST",
        headers: { "Content-Type": "application/json" },
        body: JSON.stringify({
          inputs: [{ name: "INPUT0", datatype: dc.datatype, shape: [1, 3], data: dc.json }],
          outputs: [{ name: "OUTPUT0", parameters: { binary_data: true } }],
        }),
      });
      assert.equal(json.status, 200, json.body.toString());
      assert.equal(splitBinaryResponse(json).binary.get("OUTPUT0")!.toString("hex"), dc.raw.toString("hex"));
      if (dc.contents) {
        const typed = await c.unary(S.modelInfer, {
          modelName: dc.model,
          inputs: [{ name: "INPUT0", datatype: dc.datatype, shape: [1n, 3n], contents: dc.contents }],
        });
        assert.equal(Buffer.from(typed.rawOutputContents[0]!).toString("hex"), dc.raw.toString("hex"));
      }
      // JSON out (HTTP) decodes to the values gRPC returned as bytes.
      const jsonOut = await postJson(`${s.url}/v2/models/${dc.model}/infer`, {
        inputs: [{ name: "INPUT0", datatype: dc.datatype, shape: [1, 3], data: dc.json }],
      });
      assert.deepEqual(jsonOut.json.outputs[0].data, dc.json);
    });
  }

  it("simple: outputs, requested outputs, versions", async () => {
    const inputs = [
      { name: "INPUT0", datatype: "INT32", shape: [2, 16], raw: bytesOf(Int32Array.from({ length: 32 }, (_, i) => i)) },
      { name: "INPUT1", datatype: "INT32", shape: [2, 16], raw: i32(32, 3) },
    ];
    await assertSameInfer(s, c, { what: "simple batch 2", model: "simple", inputs });
    await assertSameInfer(s, c, { what: "simple OUTPUT1 only", model: "simple", inputs, outputs: ["OUTPUT1"] });
    await assertSameInfer(s, c, { what: "simple version 1", model: "simple", version: "1", id: "v1", inputs });
  });

  it("errors: same message, statuses from the same error code", async () => {
    const good = (n = 16) => [
      { name: "INPUT0", datatype: "INT32", shape: [1, n], raw: i32(n) },
      { name: "INPUT1", datatype: "INT32", shape: [1, 16], raw: i32(16) },
    ];
    const cases: InferCase[] = [
      { what: "unknown model", model: "nope", inputs: good() },
      { what: "unknown version", model: "simple", version: "7", inputs: good() },
      { what: "unknown version of a versioned model", model: "versioned", version: "1", inputs: [] },
      { what: "bad shape", model: "simple", id: "shape", inputs: good(15) },
      { what: "wrong datatype", model: "simple", inputs: [{ name: "INPUT0", datatype: "FP32", shape: [1, 16], raw: i32(16) }, good()[1]!] },
      { what: "missing input", model: "simple", inputs: [good()[0]!] },
      { what: "unexpected input", model: "simple", inputs: [...good(), { name: "INPUT2", datatype: "INT32", shape: [1, 16], raw: i32(16) }] },
      { what: "batch too large", model: "simple", inputs: good().map((t) => ({ ...t, shape: [9, 16], raw: i32(9 * 16) })) },
      { what: "byte size mismatch", model: "simple", inputs: [{ ...good()[0]!, raw: i32(15) }, good()[1]!] },
      { what: "unknown output", model: "simple", inputs: good(), outputs: ["OUTPUT9"] },
      { what: "malformed BYTES", model: "identity_bytes", inputs: [{ name: "INPUT0", datatype: "BYTES", shape: [1, 1], raw: Buffer.from([9, 0, 0, 0, 1]) }] },
      { what: "model that failed to load", model: "broken", inputs: [] },
    ];
    for (const k of cases) {
      const out = await assertSameInfer(s, c, k);
      assert.ok("error" in out, `${k.what} should fail`);
      assert.ok(out.error.length > 0);
    }
    // Non-inference RPCs fail alike too.
    const pairs: [string, () => Promise<unknown>][] = [
      [`${s.url}/v2/models/nope/config`, () => c.unary(S.modelConfig, { name: "nope" })],
      [`${s.url}/v2/models/simple/versions/4/config`, () => c.unary(S.modelConfig, { name: "simple", version: "4" })],
      [`${s.url}/v2/models/nope/stats`, () => c.unary(S.modelStatistics, { name: "nope" })],
      [`${s.url}/v2/models/simple/versions/4/stats`, () => c.unary(S.modelStatistics, { name: "simple", version: "4" })],
      [`${s.url}/v2/models/broken`, () => c.unary(S.modelMetadata, { name: "broken" })],
    ];
    for (const [route, grpc] of pairs) {
      const http = await getJson(route);
      const err = await grpcError(grpc());
      assert.deepEqual([HTTP_FOR_GRPC[err.code], err.details], [http.status, http.json.error], route);
    }
  });

  it("repository index, all and ready only", async () => {
    for (const ready of [false, true]) {
      const http = await postJson(`${s.url}/v2/repository/index`, { ready });
      const grpc = await c.unary(S.repositoryIndex, { ready });
      assertSameMessage(RepositoryIndexResponseSchema, { models: http.json }, grpc, `index ready=${ready}`);
    }
    const http = await postJson(`${s.url}/v2/repository/index`, {});
    assert.ok(http.json.some((e: { name: string; state?: string }) => e.name === "broken" && e.state === "UNAVAILABLE"));
  });

  it("statistics, for every model and for each one, after the cases above", async () => {
    // Statistics only change with inferences; none runs between the two reads.
    assertSameMessage(ModelStatisticsResponseSchema, (await getJson(`${s.url}/v2/models/stats`)).json, await c.unary(S.modelStatistics, {}), "all models");
    for (const m of models) {
      assertSameMessage(ModelStatisticsResponseSchema, (await getJson(`${s.url}/v2/models/${m}/stats`)).json, await c.unary(S.modelStatistics, { name: m }), m);
    }
    const simple = await c.unary(S.modelStatistics, { name: "simple", version: "1" });
    assert.ok(simple.modelStats[0]!.inferenceCount > 0n);
  });
});
