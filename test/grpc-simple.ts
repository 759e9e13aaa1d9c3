import assert from "node:assert/strict";
import { GRPCInferenceService, type ModelInferResponse } from "../src/gen/inference/grpc_service_pb.js";
import { bytesOf } from "./helpers.js";

/** What the gRPC test files share: the `simple` request and its checks. */
export const S = GRPCInferenceService.method;
export const i32 = (v: number[]) => bytesOf(new Int32Array(v));
export const A = Array.from({ length: 16 }, (_, i) => i);
export const B = Array.from({ length: 16 }, () => 1);

/** A ModelInfer request for `simple` with raw inputs. */
export function simpleRaw(id = "", a = A, b = B) {
  return {
    modelName: "simple",
    id,
    inputs: [
      { name: "INPUT0", datatype: "INT32", shape: [1n, BigInt(a.length)] },
      { name: "INPUT1", datatype: "INT32", shape: [1n, BigInt(b.length)] },
    ],
    rawInputContents: [i32(a), i32(b)],
  };
}

export function int32s(b: Uint8Array): number[] {
  return Array.from(new Int32Array(Uint8Array.from(b).buffer));
}

export function assertSimpleOutputs(res: ModelInferResponse, a = A, b = B): void {
  assert.equal(res.modelName, "simple");
  assert.equal(res.modelVersion, "1");
  assert.deepEqual(res.outputs.map((o) => [o.name, o.datatype, o.shape]), [
    ["OUTPUT0", "INT32", [1n, 16n]],
    ["OUTPUT1", "INT32", [1n, 16n]],
  ]);
  assert.equal(res.rawOutputContents.length, 2);
  assert.deepEqual(int32s(res.rawOutputContents[0]!), a.map((x, i) => x + b[i]!));
  assert.deepEqual(int32s(res.rawOutputContents[1]!), a.map((x, i) => x - b[i]!));
}

