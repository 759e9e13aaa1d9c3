/**
 * A client's model version string is read as Triton reads it, with Triton's
 * messages: its clients (the explicit-INT8 gRPC example among them) compare
 * the beginning of the text.
 */
import assert from "node:assert/strict";
import path from "node:path";
import { after, before, describe, it } from "node:test";
import { status } from "@grpc/grpc-js";
import { parseVersionString } from "../src/core/repository/version-string.js";
import { S, assertSimpleOutputs, simpleRaw } from "./grpc-simple.js";
import { EXAMPLES, GrpcTestClient, grpcError, httpRequest, startGrpcServer, tempRepository, type GrpcTestServer } from "./helpers.js";

const BAD = "failed to get model version from specified version string";

describe("model version strings", () => {
  let s: GrpcTestServer;
  let c: GrpcTestClient;
  before(async () => {
    s = await startGrpcServer({ modelRepository: await tempRepository({ simple: path.join(EXAMPLES, "simple") }) });
    c = new GrpcTestClient(s.grpcAddress);
  });
  after(async () => {
    c.close();
    await s.close();
  });

  it("gRPC ModelInfer with model_version 'wrong_specification' fails with Triton's text and INVALID_ARGUMENT", async () => {
    const err = await grpcError(c.unary(S.modelInfer, { ...simpleRaw(), modelVersion: "wrong_specification" }));
    assert.equal(err.code, status.INVALID_ARGUMENT);
    assert.equal(err.details, `${BAD} 'wrong_specification' (details: stol), version should be an integral value > 0`);
  });

  it("gRPC: a negative version is refused as Triton refuses it; metadata, config, readiness and statistics read versions the same way", async () => {
    const neg = await grpcError(c.unary(S.modelInfer, { ...simpleRaw(), modelVersion: "-1" }));
    assert.equal(neg.code, status.INVALID_ARGUMENT);
    assert.equal(neg.details, "invalid model version specified '-1' , version should be an integral value > 0");
    for (const call of [
      c.unary(S.modelMetadata, { name: "simple", version: "x" }),
      c.unary(S.modelConfig, { name: "simple", version: "x" }),
      c.unary(S.modelReady, { name: "simple", version: "x" }),
      c.unary(S.modelStatistics, { name: "simple", version: "x" }),
    ]) {
      const err = await grpcError(call);
      assert.equal(err.code, status.INVALID_ARGUMENT);
      assert.ok(err.details.startsWith(`${BAD} 'x'`), err.details);
    }
  });

  it("gRPC: a version with trailing text or leading spaces is read as std::stol reads it", async () => {
    assertSimpleOutputs(await c.unary(S.modelInfer, { ...simpleRaw(), modelVersion: " 1" }));
    assertSimpleOutputs(await c.unary(S.modelInfer, { ...simpleRaw(), modelVersion: "1abc" }));
  });

  it("HTTP: a version beyond int64 fails with Triton's text and 400", async () => {
    const res = await httpRequest(`${s.url}/v2/models/simple/versions/99999999999999999999/infer`, { method: "POST", body: "{}" });
    assert.equal(res.status, 400);
    assert.equal(res.json.error, `${BAD} '99999999999999999999' (details: stol), version should be an integral value > 0`);
    const meta = await httpRequest(`${s.url}/v2/models/simple/versions/99999999999999999999`);
    assert.equal(meta.status, 400);
    assert.ok(meta.json.error.startsWith(BAD), meta.json.error);
  });

  it("parses as std::stol: empty means the server chooses; int64 bounds hold", () => {
    assert.equal(parseVersionString(""), undefined);
    assert.equal(parseVersionString("+7"), 7);
    assert.equal(parseVersionString("9223372036854775807"), 9223372036854775807);
    assert.throws(() => parseVersionString("9223372036854775808"), /details: stol/);
    assert.throws(() => parseVersionString("abc"), /details: stol/);
    assert.throws(() => parseVersionString("-3"), /invalid model version specified '-3'/);
  });
});
