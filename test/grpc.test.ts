import assert from "node:assert/strict";
import http2 from "node:http2";
import path from "node:path";
import zlib from "node:zlib";
import { after, before, describe, it } from "node:test";
import { create, fromBinary, toBinary, type MessageShape } from "@bufbuild/protobuf";
import { compressionAlgorithms, Metadata, status } from "@grpc/grpc-js";
import { GrpcFrontend } from "../src/frontends/grpc/grpc-server.js";
import { Health, HealthCheckResponse_ServingStatus } from "../src/gen/grpc/health/v1/health_pb.js";
import {
  ModelInferRequestSchema,
  ModelInferResponseSchema,
  type ModelStreamInferResponse,
} from "../src/gen/inference/grpc_service_pb.js";
import {
  DATATYPE_CASES,
  EXAMPLES,
  FIXTURES,
  GrpcTestClient,
  grpcError,
  startGrpcServer,
  tempRepository,
  type GrpcError,
  type GrpcTestServer,
} from "./helpers.js";

import { A, B, S, assertSimpleOutputs, i32, int32s, simpleRaw } from "./grpc-simple.js";
async function repositoryWithAllModels(): Promise<string> {
  const models: Record<string, string> = { simple: path.join(EXAMPLES, "simple") };
  for (const c of DATATYPE_CASES) models[c.model] = path.join(FIXTURES, c.model);
  return tempRepository(models);
}

describe("gRPC frontend: every RPC over simple and the identity models", () => {
  let s: GrpcTestServer;
  let c: GrpcTestClient;
  before(async () => {
    s = await startGrpcServer({ modelRepository: await repositoryWithAllModels() });
    c = new GrpcTestClient(s.grpcAddress);
  });
  after(async () => {
    c.close();
    await s.close();
  });

  it("answers ServerLive, ServerReady and grpc.health.v1.Health/Check", async () => {
    assert.equal((await c.unary(S.serverLive, {})).live, true);
    assert.equal((await c.unary(S.serverReady, {})).ready, true);
    const health = await c.unary(Health.method.check, { service: "" });
    assert.equal(health.status, HealthCheckResponse_ServingStatus.SERVING);
    const named = await c.unary(Health.method.check, { service: "inference.GRPCInferenceService" });
    assert.equal(named.status, HealthCheckResponse_ServingStatus.SERVING);
  });

  it("answers ModelReady for ready, unknown and missing versions without an error", async () => {
    assert.equal((await c.unary(S.modelReady, { name: "simple" })).ready, true);
    assert.equal((await c.unary(S.modelReady, { name: "simple", version: "1" })).ready, true);
    assert.equal((await c.unary(S.modelReady, { name: "simple", version: "9" })).ready, false);
    assert.equal((await c.unary(S.modelReady, { name: "nope" })).ready, false);
  });

  it("returns server metadata from core", async () => {
    const m = await c.unary(S.serverMetadata, {});
    assert.deepEqual({ name: m.name, version: m.version, extensions: m.extensions }, s.core.metadata());
  });

  it("returns model metadata with int64 shapes", async () => {
    const m = await c.unary(S.modelMetadata, { name: "simple" });
    assert.equal(m.name, "simple");
    assert.deepEqual(m.versions, ["1"]);
    assert.equal(m.platform, "onnxruntime_onnx");
    assert.deepEqual(m.inputs.map((t) => [t.name, t.datatype, t.shape]), [
      ["INPUT0", "INT32", [-1n, 16n]],
      ["INPUT1", "INT32", [-1n, 16n]],
    ]);
    assert.deepEqual(m.outputs.map((t) => t.name), ["OUTPUT0", "OUTPUT1"]);
    const v = await c.unary(S.modelMetadata, { name: "simple", version: "1" });
    assert.deepEqual(v.versions, ["1"]);
    const err = await grpcError(c.unary(S.modelMetadata, { name: "nope" }));
    assert.equal(err.code, status.INVALID_ARGUMENT);
    assert.equal(err.details, "Request for unknown model: 'nope' is not found");
  });

  it("returns the completed model configuration as the generated ModelConfig message", async () => {
    const res = await c.unary(S.modelConfig, { name: "simple" });
    assert.ok(res.config);
    assert.equal(res.config.name, "simple");
    assert.equal(res.config.maxBatchSize, 8);
    assert.equal(res.config.platform, "onnxruntime_onnx");
    assert.deepEqual(res.config.input.map((t) => [t.name, t.dims]), [
      ["INPUT0", [16n]],
      ["INPUT1", [16n]],
    ]);
    // Byte-for-byte the config core holds.
    const { ModelConfigSchema } = await import("../src/gen/inference/model_config_pb.js");
    assert.deepEqual(Buffer.from(toBinary(ModelConfigSchema, res.config)), Buffer.from(toBinary(ModelConfigSchema, s.core.modelConfig("simple"))));
    const err = await grpcError(c.unary(S.modelConfig, { name: "simple", version: "3" }));
    assert.equal(err.code, status.NOT_FOUND);
  });

  it("infers simple with raw contents and echoes the request id", async () => {
    const res = await c.unary(S.modelInfer, simpleRaw("req-1"));
    assert.equal(res.id, "req-1");
    assertSimpleOutputs(res);
  });

  it("infers simple with typed int_contents; outputs come back raw, as Triton sends them", async () => {
    const res = await c.unary(S.modelInfer, {
      modelName: "simple",
      modelVersion: "1",
      inputs: [
        { name: "INPUT0", datatype: "INT32", shape: [1n, 16n], contents: { intContents: A } },
        { name: "INPUT1", datatype: "INT32", shape: [1n, 16n], contents: { intContents: B } },
      ],
    });
    assertSimpleOutputs(res);
    assert.equal(res.outputs[0]!.contents, undefined);
  });

  it("returns only the requested outputs, in the requested order", async () => {
    const res = await c.unary(S.modelInfer, { ...simpleRaw(), outputs: [{ name: "OUTPUT1" }] });
    assert.deepEqual(res.outputs.map((o) => o.name), ["OUTPUT1"]);
    assert.deepEqual(int32s(res.rawOutputContents[0]!), A.map((x) => x - 1));
  });

  it("runs the classification extension from an int64 'classification' output parameter", async () => {
    const res = await c.unary(S.modelInfer, {
      ...simpleRaw(),
      outputs: [{ name: "OUTPUT0", parameters: { classification: { parameterChoice: { case: "int64Param", value: 3n } } } }],
    });
    assert.equal(res.outputs[0]!.datatype, "BYTES");
    assert.deepEqual(res.outputs[0]!.shape, [1n, 3n]);
    const raw = Buffer.from(res.rawOutputContents[0]!);
    const first = raw.subarray(4, 4 + raw.readUInt32LE(0)).toString();
    assert.equal(first, "16:15");
    const err = await grpcError(
      c.unary(S.modelInfer, { ...simpleRaw(), outputs: [{ name: "OUTPUT0", parameters: { classification: { parameterChoice: { case: "stringParam", value: "3" } } } }] }),
    );
    assert.equal(err.code, status.INVALID_ARGUMENT);
    assert.equal(err.details, "invalid value type for 'classification' parameter, expected int64_param.");
  });

  it("accepts every InferParameter type on the request and checks Triton's reserved keys", async () => {
    const p = (c: MessageShape<typeof ModelInferRequestSchema>["parameters"][string]["parameterChoice"]) => ({ parameterChoice: c });
    const res = await c.unary(S.modelInfer, {
      ...simpleRaw("params"),
      parameters: {
        b: p({ case: "boolParam", value: true }),
        i: p({ case: "int64Param", value: -5n }),
        s: p({ case: "stringParam", value: "x" }),
        d: p({ case: "doubleParam", value: 0.5 }),
        u: p({ case: "uint64Param", value: 18446744073709551615n }),
        sequence_id: p({ case: "stringParam", value: "abc" }),
        priority: p({ case: "uint64Param", value: 1n }),
      },
    });
    assertSimpleOutputs(res);
    const bad = [
      [{ sequence_start: p({ case: "int64Param", value: 1n }) }, "invalid value type for 'sequence_start' parameter, expected bool_param."],
      [{ sequence_id: p({ case: "boolParam", value: true }) }, "invalid value type for 'sequence_id' parameter, expected int64_param or string_param."],
      [{ timeout: p({ case: "stringParam", value: "1" }) }, "invalid value type for 'timeout' parameter, expected int64_param."],
      [{ priority: p({ case: "int64Param", value: -1n }) }, "invalid value for 'priority', expected value >= 0."],
      [
        { triton_foo: p({ case: "boolParam", value: true }) },
        "parameter keys starting with 'triton_' are reserved for Triton usage. Only the following keys starting with 'triton_' are allowed: triton_enable_empty_final_response",
      ],
    ] as const;
    for (const [parameters, message] of bad) {
      const err = await grpcError(c.unary(S.modelInfer, { ...simpleRaw(), parameters }));
      assert.equal(err.code, status.INVALID_ARGUMENT, message);
      assert.equal(err.details, message);
    }
  });

  for (const dc of DATATYPE_CASES) {
    it(`round-trips ${dc.datatype} through ${dc.model} as raw contents`, async () => {
      const res = await c.unary(S.modelInfer, {
        modelName: dc.model,
        inputs: [{ name: "INPUT0", datatype: dc.datatype, shape: [1n, 3n] }],
        rawInputContents: [dc.raw],
      });
      assert.deepEqual(res.outputs.map((o) => [o.name, o.datatype, o.shape]), [["OUTPUT0", dc.datatype, [1n, 3n]]]);
      assert.deepEqual(Buffer.from(res.rawOutputContents[0]!), dc.raw);
    });

    it(`round-trips ${dc.datatype} through ${dc.model} as typed contents`, async () => {
      const request = {
        modelName: dc.model,
        inputs: [{ name: "INPUT0", datatype: dc.datatype, shape: [1n, 3n], contents: dc.contents ?? { fp32Contents: [1, -2, 65504] } }],
      };
      if (!dc.contents) {
        // FP16 has no typed field: Triton's message for the mismatch.
        const err = await grpcError(c.unary(S.modelInfer, request));
        assert.equal(err.code, status.INVALID_ARGUMENT);
        assert.equal(err.details, `unexpected explicit tensor data for input tensor 'INPUT0' for model '${dc.model}' of type 'FP32', expected datatype 'FP16'`);
        return;
      }
      const res = await c.unary(S.modelInfer, request);
      assert.deepEqual(Buffer.from(res.rawOutputContents[0]!), dc.raw);
    });
  }

  it("sends typed contents back for typed requests when configured with outputContents 'as-request'", async () => {
    const typedFront = new GrpcFrontend(s.core, { address: "127.0.0.1", port: 0, outputContents: "as-request" });
    const port = await typedFront.listen();
    const tc = new GrpcTestClient(`127.0.0.1:${port}`);
    try {
      for (const dc of DATATYPE_CASES) {
        if (!dc.contents) continue;
        const res = await tc.unary(S.modelInfer, {
          modelName: dc.model,
          inputs: [{ name: "INPUT0", datatype: dc.datatype, shape: [1n, 3n], contents: dc.contents }],
        });
        assert.equal(res.rawOutputContents.length, 0, dc.datatype);
        const contents = res.outputs[0]!.contents!;
        const [field, values] = Object.entries(dc.contents)[0]!;
        const got = (contents as unknown as Record<string, unknown[]>)[field]!;
        if (dc.datatype === "BYTES") assert.deepEqual(got.map((b) => Buffer.from(b as Uint8Array).toString()), ["hello", "", "wörld"]);
        else assert.deepEqual(got, values, dc.datatype);
      }
      // Raw requests still get raw outputs.
      assertSimpleOutputs(await tc.unary(S.modelInfer, simpleRaw()));
    } finally {
      tc.close();
      await typedFront.close();
    }
  });

  it("reports Triton's errors with Triton's codes and messages", async () => {
    const cases: [Parameters<typeof c.unary<typeof ModelInferRequestSchema, typeof ModelInferResponseSchema>>[1], status, string | RegExp][] = [
      [{ modelName: "nope" }, status.INVALID_ARGUMENT, "Request for unknown model: 'nope' is not found"],
      [{ ...simpleRaw(), modelVersion: "7" }, status.NOT_FOUND, "Request for unknown model: 'simple' version 7 is not found"],
      [
        {
          modelName: "simple",
          inputs: [
            { name: "INPUT0", datatype: "INT32", shape: [1n, 16n], contents: { intContents: A } },
            { name: "INPUT1", datatype: "INT32", shape: [1n, 16n] },
          ],
          rawInputContents: [i32(B)],
        },
        status.INVALID_ARGUMENT,
        "contents field must not be specified when using raw_input_contents for 'INPUT0' for model 'simple'",
      ],
      [{ ...simpleRaw(), rawInputContents: [i32(A)] }, status.INVALID_ARGUMENT, "unable to find data for input tensor 'INPUT1' for model 'simple' in request."],
      [{ ...simpleRaw(), rawInputContents: [i32(A), i32(B), i32(B)] }, status.INVALID_ARGUMENT, /has 3 raw_input_contents but only 2 of its 2 inputs/],
      [
        { ...simpleRaw(), inputs: [{ name: "INPUT0", datatype: "INT32", shape: [1n, 15n] }, { name: "INPUT1", datatype: "INT32", shape: [1n, 16n] }] },
        status.INVALID_ARGUMENT,
        /^\[request id: <id_unknown>\] unexpected shape for input 'INPUT0' for model 'simple'\. Expected \[-1,16\], got \[1,15\]/,
      ],
      [
        { ...simpleRaw(), inputs: [{ name: "INPUT0", datatype: "FP32", shape: [1n, 16n] }, { name: "INPUT1", datatype: "INT32", shape: [1n, 16n] }] },
        status.INVALID_ARGUMENT,
        "[request id: <id_unknown>] inference input 'INPUT0' data-type is 'FP32', but model 'simple' expects 'INT32'",
      ],
      [
        { ...simpleRaw(), inputs: [{ name: "INPUT0", datatype: "INT33", shape: [1n, 16n] }, { name: "INPUT1", datatype: "INT32", shape: [1n, 16n] }] },
        status.INVALID_ARGUMENT,
        "input 'INPUT0' for model 'simple' has invalid datatype 'INT33'",
      ],
      [{ ...simpleRaw("x"), rawInputContents: [i32(A), i32(B.slice(1))] }, status.INVALID_ARGUMENT, /^\[request id: x\] input byte size mismatch for input 'INPUT1'/],
      [
        {
          modelName: "simple",
          inputs: [
            { name: "INPUT0", datatype: "INT32", shape: [1n, 16n], contents: { intContents: A, fp32Contents: [1] } },
            { name: "INPUT1", datatype: "INT32", shape: [1n, 16n], contents: { intContents: B } },
          ],
        },
        status.INVALID_ARGUMENT,
        "unexpected explicit tensor data for input tensor 'INPUT0' for model 'simple', binary data was already supplied.",
      ],
      [
        {
          ...simpleRaw(),
          // A shared-memory input takes no raw entry: only INPUT1 has one.
          rawInputContents: [i32(B)],
          inputs: [
            { name: "INPUT0", datatype: "INT32", shape: [1n, 16n], parameters: { shared_memory_region: { parameterChoice: { case: "stringParam", value: "r0" } } } },
            { name: "INPUT1", datatype: "INT32", shape: [1n, 16n] },
          ],
        },
        status.UNIMPLEMENTED,
        /names shared memory region 'r0', but shared memory is not supported/,
      ],
    ];
    for (const [request, code, message] of cases) {
      const err = await grpcError(c.unary(S.modelInfer, request));
      assert.equal(err.code, code, `${String(message)}: got ${err.code} ${err.details}`);
      if (typeof message === "string") assert.equal(err.details, message);
      else assert.match(err.details, message);
    }
    // The server is still fine.
    assertSimpleOutputs(await c.unary(S.modelInfer, simpleRaw()));
  });

  it("streams several requests in order with their ids; a bad one becomes error_message and the stream goes on", async () => {
    const stream = c.stream(S.modelStreamInfer);
    const responses: ModelStreamInferResponse[] = [];
    const done = new Promise<void>((resolve, reject) => {
      stream.on("data", (r: ModelStreamInferResponse) => responses.push(r));
      stream.on("end", resolve);
      stream.on("error", reject);
    });
    const ids = ["s0", "s1", "bad-shape", "s3", "unknown", "s5"];
    for (const id of ids) {
      if (id === "bad-shape") stream.write({ ...simpleRaw(id), rawInputContents: [i32(A), i32(B.slice(2))] });
      else if (id === "unknown") stream.write({ ...simpleRaw(id), modelName: "nope" });
      else stream.write(simpleRaw(id, A.map((x) => x * Number(id.slice(1)))));
    }
    stream.end();
    await done;
    assert.deepEqual(responses.map((r) => r.inferResponse?.id), ids);
    for (const r of responses) {
      const id = r.inferResponse!.id;
      if (id === "bad-shape") assert.match(r.errorMessage, /^\[request id: bad-shape\] input byte size mismatch for input 'INPUT1' for model 'simple'/);
      else if (id === "unknown") assert.equal(r.errorMessage, "Request for unknown model: 'nope' is not found");
      else {
        assert.equal(r.errorMessage, "");
        assertSimpleOutputs(r.inferResponse!, A.map((x) => x * Number(id.slice(1))));
      }
    }
  });

  it("keeps request order across many concurrent stream requests and mixed models", async () => {
    const stream = c.stream(S.modelStreamInfer);
    const responses: ModelStreamInferResponse[] = [];
    const done = new Promise<void>((resolve, reject) => {
      stream.on("data", (r: ModelStreamInferResponse) => responses.push(r));
      stream.on("end", resolve);
      stream.on("error", reject);
    });
    for (let i = 0; i < 60; i++) {
      const dc = DATATYPE_CASES[i % DATATYPE_CASES.length]!;
      stream.write(
        i % 3 === 0
          ? simpleRaw(String(i))
          : { modelName: dc.model, id: String(i), inputs: [{ name: "INPUT0", datatype: dc.datatype, shape: [1n, 3n] }], rawInputContents: [dc.raw] },
      );
    }
    stream.end();
    await done;
    assert.deepEqual(responses.map((r) => r.inferResponse!.id), Array.from({ length: 60 }, (_, i) => String(i)));
    assert.ok(responses.every((r) => r.errorMessage === ""));
  });

  it("ends the stream with the gRPC status of the first error when the client sends triton_grpc_error: true", async () => {
    const md = new Metadata();
    md.set("triton_grpc_error", "true");
    const stream = c.stream(S.modelStreamInfer, { metadata: md });
    const responses: ModelStreamInferResponse[] = [];
    const failed = new Promise<Error & { code: number; details: string }>((resolve, reject) => {
      stream.on("data", (r: ModelStreamInferResponse) => responses.push(r));
      stream.on("error", resolve);
      stream.on("end", () => reject(new Error("stream ended without an error")));
    });
    stream.write(simpleRaw("ok"));
    stream.write({ ...simpleRaw("bad"), modelName: "nope" });
    const err = await failed;
    assert.equal(err.code, status.INVALID_ARGUMENT);
    assert.equal(err.details, "Request for unknown model: 'nope' is not found");
    assert.deepEqual(responses.map((r) => r.inferResponse!.id), ["ok"]);
  });

  it("lists the repository index, with the ready filter, and refuses named repositories", async () => {
    const index = await c.unary(S.repositoryIndex, {});
    const expected = await s.core.repositoryIndex();
    assert.deepEqual(
      index.models.map((m) => ({ name: m.name, version: m.version, state: m.state, reason: m.reason })),
      expected.map((e) => ({ name: e.name, version: e.version ?? "", state: e.state ?? "", reason: e.reason ?? "" })),
    );
    assert.ok(index.models.some((m) => m.name === "simple" && m.version === "1" && m.state === "READY"));
    const ready = await c.unary(S.repositoryIndex, { ready: true });
    assert.ok(ready.models.every((m) => m.state === "READY"));
    const err = await grpcError(c.unary(S.repositoryIndex, { repositoryName: "other" }));
    assert.equal(err.code, status.UNIMPLEMENTED);
    assert.equal(err.details, "'repository_name' specification is not supported");
  });

  it("refuses load and unload outside explicit mode with UNAVAILABLE, as HTTP does", async () => {
    for (const p of [c.unary(S.repositoryModelLoad, { modelName: "simple" }), c.unary(S.repositoryModelUnload, { modelName: "simple" })]) {
      const err = await grpcError(p);
      assert.equal(err.code, status.UNAVAILABLE);
      assert.equal(err.details, "explicit model load / unload is not allowed if polling is enabled");
    }
    const http = await fetch(`${s.url}/v2/repository/models/simple/load`, { method: "POST" });
    assert.equal(http.status, 503);
    assert.equal(((await http.json()) as { error: string }).error, "explicit model load / unload is not allowed if polling is enabled");
  });

  it("returns statistics from core, for one model and for all", async () => {
    await c.unary(S.modelInfer, simpleRaw());
    const one = await c.unary(S.modelStatistics, { name: "simple" });
    const coreStats = s.core.statistics("simple").model_stats[0]!;
    assert.equal(one.modelStats.length, 1);
    const st = one.modelStats[0]!;
    assert.equal(st.name, "simple");
    assert.equal(st.version, "1");
    assert.equal(st.inferenceCount, BigInt(coreStats.inference_count));
    assert.equal(st.executionCount, BigInt(coreStats.execution_count));
    assert.equal(st.lastInference, BigInt(coreStats.last_inference));
    assert.ok(st.inferenceCount > 0n);
    assert.equal(st.inferenceStats!.success!.count, BigInt(coreStats.inference_stats.success!.count));
    assert.equal(st.inferenceStats!.fail!.count, BigInt(coreStats.inference_stats.fail!.count));
    assert.deepEqual(st.batchStats.map((b) => b.batchSize), coreStats.batch_stats.map((b) => BigInt(b.batch_size)));
    const all = await c.unary(S.modelStatistics, {});
    assert.equal(all.modelStats.length, s.core.statistics().model_stats.length);
    const err = await grpcError(c.unary(S.modelStatistics, { name: "nope" }));
    assert.equal(err.code, status.INVALID_ARGUMENT);
  });

  it("answers shared-memory RPCs as a Triton started without --allow-client-shm and without GPUs", async () => {
    let err: GrpcError;
    assert.deepEqual((await c.unary(S.systemSharedMemoryStatus, {})).regions, {});
    err = await grpcError(c.unary(S.systemSharedMemoryStatus, { name: "r0" }));
    assert.deepEqual([err.code, err.details], [status.NOT_FOUND, "Unable to find system shared memory region: 'r0'"]);
    err = await grpcError(c.unary(S.systemSharedMemoryRegister, { name: "r0", key: "/k", offset: 0n, byteSize: 64n }));
    assert.equal(err.code, status.UNIMPLEMENTED);
    assert.match(err.details, /^failed to register system shared memory region 'r0': system shared memory is not supported/);
    await c.unary(S.systemSharedMemoryUnregister, {});
    await c.unary(S.systemSharedMemoryUnregister, { name: "r0" });

    assert.deepEqual((await c.unary(S.cudaSharedMemoryStatus, {})).regions, {});
    err = await grpcError(c.unary(S.cudaSharedMemoryStatus, { name: "g0" }));
    assert.deepEqual([err.code, err.details], [status.NOT_FOUND, "Unable to find cuda shared memory region: 'g0'"]);
    err = await grpcError(c.unary(S.cudaSharedMemoryRegister, { name: "g0", rawHandle: new Uint8Array(8), deviceId: 0n, byteSize: 64n }));
    assert.deepEqual([err.code, err.details], [status.INVALID_ARGUMENT, "failed to register CUDA shared memory region: 'g0', GPUs not supported"]);
    await c.unary(S.cudaSharedMemoryUnregister, {});
  });

  it("accepts gzip- and deflate-compressed requests (grpc-encoding) from a raw HTTP/2 client", async () => {
    const session = http2.connect(`http://${s.grpcAddress}`);
    try {
      for (const [encoding, compress] of [["gzip", zlib.gzipSync], ["deflate", zlib.deflateSync]] as const) {
        const body = Buffer.from(compress(toBinary(ModelInferRequestSchema, create(ModelInferRequestSchema, simpleRaw(encoding)))));
        const frame = Buffer.alloc(5);
        frame.writeUInt8(1, 0); // compressed flag
        frame.writeUInt32BE(body.byteLength, 1);
        const req = session.request({
          ":method": "POST",
          ":path": "/inference.GRPCInferenceService/ModelInfer",
          "content-type": "application/grpc",
          te: "trailers",
          "grpc-encoding": encoding,
          "grpc-accept-encoding": "identity,deflate,gzip",
        });
        const chunks: Buffer[] = [];
        const trailers = new Promise<http2.IncomingHttpHeaders>((resolve) => req.on("trailers", resolve));
        req.on("data", (d: Buffer) => chunks.push(d));
        const ended = new Promise((resolve) => req.on("end", resolve));
        req.end(Buffer.concat([frame, body]));
        const t = await trailers;
        await ended;
        assert.equal(t["grpc-status"], "0", String(t["grpc-message"]));
        const data = Buffer.concat(chunks);
        assert.equal(data.readUInt8(0), 0);
        const res = fromBinary(ModelInferResponseSchema, data.subarray(5, 5 + data.readUInt32BE(1)));
        assert.equal(res.id, encoding);
        assertSimpleOutputs(res);
      }
    } finally {
      session.close();
    }
  });

  it("accepts compression, keepalive and custom channel arguments from a @grpc/grpc-js client", async () => {
    for (const algorithm of [compressionAlgorithms.gzip, compressionAlgorithms.deflate]) {
      const cc = new GrpcTestClient(s.grpcAddress, undefined, {
        "grpc.default_compression_algorithm": algorithm,
        "grpc.keepalive_time_ms": 100,
        "grpc.keepalive_timeout_ms": 1000,
        "grpc.keepalive_permit_without_calls": 1,
        "grpc.primary_user_agent": "tritonclient-test",
        "grpc.max_receive_message_length": 2 ** 31 - 1,
      });
      try {
        assertSimpleOutputs(await cc.unary(S.modelInfer, simpleRaw()));
        // Several keepalive pings later, the connection still serves calls.
        await new Promise((r) => setTimeout(r, 450));
        assertSimpleOutputs(await cc.unary(S.modelInfer, simpleRaw()));
      } finally {
        cc.close();
      }
    }
  });

  it("accepts and returns messages far above gRPC's 4 MiB default", async () => {
    const n = 12 * 1024 * 1024;
    const data = Buffer.alloc(n);
    for (let i = 0; i < n; i += 4096) data[i] = i % 251;
    const res = await c.unary(S.modelInfer, {
      modelName: "identity_uint8",
      inputs: [{ name: "INPUT0", datatype: "UINT8", shape: [1n, BigInt(n)] }],
      rawInputContents: [data],
    });
    assert.equal(res.rawOutputContents[0]!.byteLength, n);
    assert.ok(Buffer.from(res.rawOutputContents[0]!).equals(data));
  });

  it("enforces a configured maximum message size with RESOURCE_EXHAUSTED", async () => {
    const small = new GrpcFrontend(s.core, { address: "127.0.0.1", port: 0, maxMessageSize: 1024 });
    const port = await small.listen();
    const sc = new GrpcTestClient(`127.0.0.1:${port}`);
    try {
      assertSimpleOutputs(await sc.unary(S.modelInfer, simpleRaw()));
      const err = await grpcError(
        sc.unary(S.modelInfer, { modelName: "identity_uint8", inputs: [{ name: "INPUT0", datatype: "UINT8", shape: [1n, 4096n] }], rawInputContents: [Buffer.alloc(4096)] }),
      );
      assert.equal(err.code, status.RESOURCE_EXHAUSTED);
    } finally {
      sc.close();
      await small.close();
    }
  });
});

