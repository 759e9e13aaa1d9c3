import assert from "node:assert/strict";
import path from "node:path";
import { after, before, describe, it } from "node:test";
import { status } from "@grpc/grpc-js";
import { FIXTURES, GrpcTestClient, grpcError, startGrpcServer, tempRepository, type GrpcTestServer } from "./helpers.js";
import { S, i32, int32s } from "./grpc-simple.js";

type Choice = { case: "int64Param"; value: bigint } | { case: "stringParam"; value: string } | { case: "boolParam"; value: boolean };
const param = (c: Choice) => ({ parameterChoice: c });

describe("sequence batcher over gRPC", () => {
  let s: GrpcTestServer;
  let c: GrpcTestClient;
  before(async () => {
    s = await startGrpcServer({ modelRepository: await tempRepository({ sequence_state: path.join(FIXTURES, "sequence_state") }) });
    c = new GrpcTestClient(s.grpcAddress);
  });
  after(async () => {
    c.close();
    await s.close();
  });

  const step = (id: Choice, value: number, flags: { start?: boolean; end?: boolean } = {}) =>
    c.unary(S.modelInfer, {
      modelName: "sequence_state",
      parameters: {
        sequence_id: param(id),
        ...(flags.start ? { sequence_start: param({ case: "boolParam", value: true }) } : {}),
        ...(flags.end ? { sequence_end: param({ case: "boolParam", value: true }) } : {}),
      },
      inputs: [{ name: "INPUT", datatype: "INT32", shape: [1n, 1n] }],
      rawInputContents: [i32([value])],
    });

  it("keeps the implicit state of int64 and string sequences from step to step", async () => {
    const n = { case: "int64Param" as const, value: 9007199254740993n }; // above 2^53: kept exact
    const t = { case: "stringParam" as const, value: "session-x" };
    const out = (r: Awaited<ReturnType<typeof step>>) => int32s(r.rawOutputContents[0]!)[0];
    assert.equal(out(await step(n, 4, { start: true })), 4);
    assert.equal(out(await step(t, 10, { start: true })), 10);
    assert.equal(out(await step(n, 5)), 9);
    assert.equal(out(await step(t, 1, { end: true })), 11);
    assert.equal(out(await step(n, 1, { end: true })), 10);
  });

  it("answers INVALID_ARGUMENT for a sequence request without START", async () => {
    const err = await grpcError(step({ case: "int64Param", value: 77n }, 1));
    assert.equal(err.code, status.INVALID_ARGUMENT);
    assert.match(err.details, /must specify the START flag on the first request of the sequence/);
  });
});
