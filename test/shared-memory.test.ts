/**
 * Triton's system shared memory extension over HTTP, gRPC and in-process:
 * regions are real POSIX shared memory objects (/dev/shm files) made by the
 * test, registered through either door, and `simple` reads its inputs from
 * them and writes its outputs into them.
 */
import assert from "node:assert/strict";
import fs from "node:fs";
import fsp from "node:fs/promises";
import path from "node:path";
import { after, before, describe, it } from "node:test";
import { status } from "@grpc/grpc-js";
import { GRPCInferenceService, type ModelStreamInferResponse } from "../src/gen/inference/grpc_service_pb.js";
import { createServer } from "../src/index.js";
import type { InferenceServer } from "../src/core/server.js";
import { parseFlags } from "../src/cli/flags.js";
import { GateBackend, gateConfig } from "./gate-backend.js";
import {
  EXAMPLES,
  GrpcTestClient,
  bytesOf,
  getJson,
  grpcError,
  httpRequest,
  postJson,
  startGrpcServer,
  tempRepository,
  type GrpcTestServer,
} from "./helpers.js";

const S = GRPCInferenceService.method;
const A = Array.from({ length: 16 }, (_, i) => i);
const B = Array.from({ length: 16 }, (_, i) => 100 - i);
const SUM = A.map((x, i) => x + B[i]!);
const DIFF = A.map((x, i) => x - B[i]!);
const i32 = (v: number[]) => bytesOf(new Int32Array(v));
const int32s = (b: Uint8Array) => Array.from(new Int32Array(Uint8Array.from(b).buffer));

/** POSIX shared memory objects made by this test: key `/tritium-test-<pid>-<tag>` ⇔ `/dev/shm/tritium-test-<pid>-<tag>`. */
const made = new Set<string>();
function shmObject(tag: string, bytes: number | Buffer): string {
  const name = `tritium-test-${process.pid}-${tag}`;
  fs.writeFileSync(path.join("/dev/shm", name), typeof bytes === "number" ? Buffer.alloc(bytes) : bytes);
  made.add(name);
  return `/${name}`;
}
const shmFile = (key: string) => path.join("/dev/shm", key.slice(1));
/** Reads `n` INT32s at `offset` of the object. */
function readInts(key: string, offset: number, n = 16): number[] {
  return int32s(fs.readFileSync(shmFile(key)).subarray(offset, offset + 4 * n));
}
function cleanup(): void {
  for (const name of made) fs.rmSync(path.join("/dev/shm", name), { force: true });
  made.clear();
}

const str = (value: string) => ({ parameterChoice: { case: "stringParam" as const, value } });
const int = (value: number | bigint) => ({ parameterChoice: { case: "int64Param" as const, value: BigInt(value) } });
const shmParams = (region: string, byteSize: number, offset?: number) => ({
  shared_memory_region: region,
  shared_memory_byte_size: byteSize,
  ...(offset === undefined ? {} : { shared_memory_offset: offset }),
});
const grpcShm = (region: string, byteSize: number, offset?: number) => ({
  shared_memory_region: str(region),
  shared_memory_byte_size: int(byteSize),
  ...(offset === undefined ? {} : { shared_memory_offset: int(offset) }),
});

describe("system shared memory (--allow-client-shm=true)", () => {
  let s: GrpcTestServer;
  let c: GrpcTestClient;
  // Objects: inputs in two objects (INPUT1 at region offset 16 + request offset 16),
  // both outputs in one object at offsets 0 and 128.
  let in0: string;
  let in1: string;
  let out: string;
  const url = (p: string) => `${s.url}${p}`;
  const register = (name: string, key: string, byteSize: number, offset?: number) =>
    postJson(url(`/v2/systemsharedmemory/region/${name}/register`), { key, ...(offset === undefined ? {} : { offset }), byte_size: byteSize });
  const infer = (body: unknown) => postJson(url("/v2/models/simple/infer"), body);
  const shmInputs = () => [
    { name: "INPUT0", datatype: "INT32", shape: [1, 16], parameters: shmParams("in0", 64) },
    { name: "INPUT1", datatype: "INT32", shape: [1, 16], parameters: shmParams("in1", 64, 16) },
  ];

  before(async () => {
    s = await startGrpcServer({ modelRepository: await tempRepository({ simple: path.join(EXAMPLES, "simple") }), allowClientShm: true });
    c = new GrpcTestClient(s.grpcAddress);
    in0 = shmObject("in0", i32(A));
    const in1Bytes = Buffer.alloc(96, 0xee);
    i32(B).copy(in1Bytes, 32);
    in1 = shmObject("in1", in1Bytes);
    out = shmObject("out", 256);
  });
  after(async () => {
    c.close();
    await s.close();
    cleanup();
  });

  it("lists system_shared_memory among the extensions, after model_configuration", async () => {
    const { json } = await getJson(url("/v2"));
    const ext: string[] = json.extensions;
    assert.ok(ext.includes("system_shared_memory"));
    assert.equal(ext.indexOf("system_shared_memory"), ext.indexOf("model_configuration") + 1);
  });

  it("registers regions over HTTP and reports them in Triton's status shape, sorted by name", async () => {
    for (const [name, key, size, offset] of [
      ["out1", out, 64, 128],
      ["in0", in0, 64, undefined],
      ["in1", in1, 80, 16],
      ["out0", out, 64, 0],
    ] as const) {
      const res = await register(name, key, size, offset);
      assert.equal(res.status, 200, JSON.stringify(res.json));
    }
    const all = await httpRequest(url("/v2/systemsharedmemory/status"));
    assert.equal(all.status, 200);
    assert.equal(
      all.body.toString(),
      JSON.stringify([
        { name: "in0", key: in0, offset: 0, byte_size: 64 },
        { name: "in1", key: in1, offset: 16, byte_size: 80 },
        { name: "out0", key: out, offset: 0, byte_size: 64 },
        { name: "out1", key: out, offset: 128, byte_size: 64 },
      ]),
    );
    const one = await getJson(url("/v2/systemsharedmemory/region/in1/status"));
    assert.deepEqual(one.json, [{ name: "in1", key: in1, offset: 16, byte_size: 80 }]);
  });

  it("sees the same regions over gRPC (a map of name to region status)", async () => {
    const res = await c.unary(S.systemSharedMemoryStatus, {});
    assert.deepEqual(
      Object.values(res.regions).map((r) => [r.name, r.key, r.offset, r.byteSize]),
      [
        ["in0", in0, 0n, 64n],
        ["in1", in1, 16n, 80n],
        ["out0", out, 0n, 64n],
        ["out1", out, 128n, 64n],
      ],
    );
    assert.deepEqual(Object.keys((await c.unary(S.systemSharedMemoryStatus, { name: "out1" })).regions), ["out1"]);
  });

  it("HTTP: reads both inputs from shared memory and writes both outputs into it; the response carries no data", async () => {
    fs.writeFileSync(shmFile(out), Buffer.alloc(256));
    const res = await httpRequest(url("/v2/models/simple/infer"), {
      method: "POST",
      headers: { "Content-Type": "application/json" },
      body: JSON.stringify({
        id: "h1",
        inputs: shmInputs(),
        outputs: [
          { name: "OUTPUT0", parameters: shmParams("out0", 64) },
          { name: "OUTPUT1", parameters: shmParams("out1", 64) },
        ],
      }),
    });
    assert.equal(res.status, 200, res.body.toString());
    assert.equal(res.headers["inference-header-content-length"], undefined);
    assert.equal(
      res.body.toString(),
      JSON.stringify({
        id: "h1",
        model_name: "simple",
        model_version: "1",
        outputs: [
          { name: "OUTPUT0", datatype: "INT32", shape: [1, 16] },
          { name: "OUTPUT1", datatype: "INT32", shape: [1, 16] },
        ],
      }),
    );
    assert.deepEqual(readInts(out, 0), SUM);
    assert.deepEqual(readInts(out, 128), DIFF);
  });

  it("HTTP: mixes shared memory with JSON and binary tensors, and honours a request-level shared_memory_offset", async () => {
    fs.writeFileSync(shmFile(out), Buffer.alloc(256));
    const res = await infer({
      parameters: { binary_data_output: false },
      inputs: [
        { name: "INPUT0", datatype: "INT32", shape: [1, 16], data: A },
        { name: "INPUT1", datatype: "INT32", shape: [1, 16], parameters: shmParams("in1", 64, 16) },
      ],
      outputs: [{ name: "OUTPUT0" }, { name: "OUTPUT1", parameters: shmParams("out1", 64) }],
    });
    assert.equal(res.status, 200, JSON.stringify(res.json));
    assert.deepEqual(res.json.outputs, [
      { name: "OUTPUT0", datatype: "INT32", shape: [1, 16], data: SUM },
      { name: "OUTPUT1", datatype: "INT32", shape: [1, 16] },
    ]);
    assert.deepEqual(readInts(out, 128), DIFF);
    assert.deepEqual(readInts(out, 0), new Array(16).fill(0));

    // Binary output beside a shared-memory output: only the binary one follows the JSON.
    const bin = await httpRequest(url("/v2/models/simple/infer"), {
      method: "POST",
      headers: { "Content-Type": "application/json" },
      body: JSON.stringify({
        inputs: shmInputs(),
        outputs: [{ name: "OUTPUT0", parameters: shmParams("out0", 64) }, { name: "OUTPUT1", parameters: { binary_data: true } }],
      }),
    });
    assert.equal(bin.status, 200, bin.body.toString());
    const hl = Number(bin.headers["inference-header-content-length"]);
    const header = JSON.parse(bin.body.toString("utf8", 0, hl));
    assert.deepEqual(header.outputs, [
      { name: "OUTPUT0", datatype: "INT32", shape: [1, 16] },
      { name: "OUTPUT1", datatype: "INT32", shape: [1, 16], parameters: { binary_data_size: 64 } },
    ]);
    assert.deepEqual(int32s(bin.body.subarray(hl)), DIFF);
    assert.deepEqual(readInts(out, 0), SUM);
  });

  it("gRPC: reads inputs from and writes outputs to regions registered over HTTP; raw_output_contents keeps one (empty) entry per output", async () => {
    fs.writeFileSync(shmFile(out), Buffer.alloc(256));
    const res = await c.unary(S.modelInfer, {
      modelName: "simple",
      id: "g1",
      inputs: [
        { name: "INPUT0", datatype: "INT32", shape: [1n, 16n], parameters: grpcShm("in0", 64) },
        { name: "INPUT1", datatype: "INT32", shape: [1n, 16n], parameters: grpcShm("in1", 64, 16) },
      ],
      outputs: [
        { name: "OUTPUT0", parameters: grpcShm("out0", 64) },
        { name: "OUTPUT1", parameters: grpcShm("out1", 64) },
      ],
    });
    assert.equal(res.id, "g1");
    assert.deepEqual(res.outputs.map((o) => [o.name, o.datatype, o.shape, Object.keys(o.parameters), o.contents]), [
      ["OUTPUT0", "INT32", [1n, 16n], [], undefined],
      ["OUTPUT1", "INT32", [1n, 16n], [], undefined],
    ]);
    assert.deepEqual(res.rawOutputContents.map((b) => b.byteLength), [0, 0]);
    assert.deepEqual(readInts(out, 0), SUM);
    assert.deepEqual(readInts(out, 128), DIFF);
  });

  it("gRPC: registers over gRPC, mixes raw and shared-memory tensors, and works in ModelStreamInfer", async () => {
    const g = shmObject("grpc", 200);
    fs.writeFileSync(shmFile(g), Buffer.concat([i32(A), Buffer.alloc(136)]));
    await c.unary(S.systemSharedMemoryRegister, { name: "g", key: g, offset: 0n, byteSize: 200n });
    assert.deepEqual((await getJson(url("/v2/systemsharedmemory/region/g/status"))).json, [{ name: "g", key: g, offset: 0, byte_size: 200 }]);
    const request = (id: string) => ({
      modelName: "simple",
      id,
      inputs: [
        { name: "INPUT0", datatype: "INT32", shape: [1n, 16n], parameters: grpcShm("g", 64) },
        { name: "INPUT1", datatype: "INT32", shape: [1n, 16n] },
      ],
      rawInputContents: [i32(B)],
      outputs: [{ name: "OUTPUT0" }, { name: "OUTPUT1", parameters: grpcShm("g", 64, 128) }],
    });
    const res = await c.unary(S.modelInfer, request("mixed"));
    assert.equal(res.rawOutputContents.length, 2);
    assert.deepEqual(int32s(res.rawOutputContents[0]!), SUM);
    assert.equal(res.rawOutputContents[1]!.byteLength, 0);
    assert.deepEqual(readInts(g, 128), DIFF);

    fs.writeFileSync(shmFile(g), Buffer.concat([i32(A), Buffer.alloc(136)]));
    const stream = c.stream(S.modelStreamInfer);
    const responses: ModelStreamInferResponse[] = [];
    const done = new Promise<void>((resolve, reject) => {
      stream.on("data", (r: ModelStreamInferResponse) => responses.push(r));
      stream.on("end", resolve);
      stream.on("error", reject);
    });
    stream.write(request("st"));
    stream.write({ ...request("st-bad"), outputs: [{ name: "OUTPUT1", parameters: grpcShm("nope", 64) }] });
    stream.end();
    await done;
    assert.deepEqual(responses.map((r) => [r.inferResponse?.id, r.errorMessage]), [
      ["st", ""],
      ["st-bad", "Unable to find shared memory region: 'nope'"],
    ]);
    assert.deepEqual(readInts(g, 128), DIFF);
    await c.unary(S.systemSharedMemoryUnregister, { name: "g" });
    assert.deepEqual(Object.keys((await c.unary(S.systemSharedMemoryStatus, {})).regions), ["in0", "in1", "out0", "out1"]);
  });

  it("refuses bad registrations with Triton's messages (HTTP and gRPC)", async () => {
    const small = shmObject("small", 64);
    const cases: [string, unknown, number, string | RegExp][] = [
      ["r", { key: `/tritium-test-${process.pid}-missing`, byte_size: 8 }, 400, `Unable to open shared memory region: '/tritium-test-${process.pid}-missing' (no such shared memory object)`],
      ["r", { key: small, byte_size: 65 }, 400, /^failed to register shared memory region 'r': invalid args/],
      ["r", { key: small, offset: 1, byte_size: 64 }, 400, /^failed to register shared memory region 'r': invalid args/],
      ["r", { key: small, offset: 64, byte_size: 1 }, 400, /^failed to register shared memory region 'r': invalid args/],
      ["r", { key: small, offset: 65, byte_size: 0 }, 400, /^failed to register shared memory region 'r': invalid args/],
      ["r", { key: small, byte_size: 0 }, 400, /^failed to register shared memory region 'r': invalid args/],
      ["r", { key: "/../etc/passwd", byte_size: 8 }, 400, /^Unable to open shared memory region: '\/\.\.\/etc\/passwd'/],
      ["r", { key: "/", byte_size: 8 }, 400, /^Unable to open shared memory region: '\/'/],
      ["r", { key: "/dir/x", byte_size: 8 }, 400, /^Unable to open shared memory region: '\/dir\/x'/],
      [
        "my_test_shm_name",
        { key: "triton_python_backend_shm_region__my_test_shm_key", byte_size: 8 },
        400,
        "cannot register shared memory region 'my_test_shm_name' with key 'triton_python_backend_shm_region__my_test_shm_key' as the key contains the reserved prefix 'triton_python_backend_shm_region_'",
      ],
      ["in0", { key: in0, byte_size: 8 }, 400, "shared memory region 'in0' already in manager"],
      ["r", { byte_size: 8 }, 400, "Shared memory register request has no 'key' field"],
      ["r", { key: small }, 400, "Shared memory register request has no 'byte_size' field"],
      ["r", { key: small, byte_size: -1 }, 400, /'byte_size' must be a non-negative integer/],
      ["r", { key: 7, byte_size: 8 }, 400, /'key' must be a string/],
    ];
    for (const [name, body, code, message] of cases) {
      const res = await postJson(url(`/v2/systemsharedmemory/region/${name}/register`), body);
      assert.equal(res.status, code, `${JSON.stringify(body)} → ${JSON.stringify(res.json)}`);
      if (typeof message === "string") assert.equal(res.json.error, message);
      else assert.match(res.json.error, message);
    }
    const noRegion = await postJson(url("/v2/systemsharedmemory/register"), { key: small, byte_size: 8 });
    assert.deepEqual([noRegion.status, noRegion.json], [400, { error: "'region name' is necessary to register system shared memory region" }]);
    // A symbolic link in /dev/shm is not followed (shm_open's O_NOFOLLOW).
    const link = `tritium-test-${process.pid}-link`;
    fs.symlinkSync(shmFile(small), path.join("/dev/shm", link));
    made.add(link);
    const linked = await register("r", `/${link}`, 8);
    assert.equal(linked.status, 400);
    assert.match(linked.json.error, /^Unable to open shared memory region: '.*link' \(a symbolic link/);

    let err = await grpcError(c.unary(S.systemSharedMemoryRegister, { name: "in0", key: in0, offset: 0n, byteSize: 8n }));
    assert.deepEqual([err.code, err.details], [status.ALREADY_EXISTS, "shared memory region 'in0' already in manager"]);
    err = await grpcError(c.unary(S.systemSharedMemoryRegister, { name: "r", key: "/nope-nope", offset: 0n, byteSize: 8n }));
    assert.deepEqual([err.code, err.details], [status.INVALID_ARGUMENT, "Unable to open shared memory region: '/nope-nope' (no such shared memory object)"]);
    err = await grpcError(c.unary(S.systemSharedMemoryRegister, { name: "r", key: small, offset: 2n ** 63n, byteSize: 8n }));
    assert.equal(err.code, status.INVALID_ARGUMENT);
    assert.match(err.details, /^failed to register shared memory region 'r': invalid args/);
    // Nothing was registered by any of them.
    assert.deepEqual(Object.keys((await c.unary(S.systemSharedMemoryStatus, {})).regions), ["in0", "in1", "out0", "out1"]);
  });

  it("answers status and routing errors as Triton does", async () => {
    const missing = await getJson(url("/v2/systemsharedmemory/region/nope/status"));
    assert.deepEqual([missing.status, missing.json], [404, { error: "Unable to find system shared memory region: 'nope'" }]);
    const err = await grpcError(c.unary(S.systemSharedMemoryStatus, { name: "nope" }));
    assert.deepEqual([err.code, err.details], [status.NOT_FOUND, "Unable to find system shared memory region: 'nope'"]);
    assert.equal((await postJson(url("/v2/systemsharedmemory/status"), {})).status, 405);
    assert.equal((await getJson(url("/v2/systemsharedmemory/region/x/register"))).status, 405);
    assert.equal((await getJson(url("/v2/systemsharedmemory/unregister"))).status, 405);
    // CUDA shared memory: a server without GPUs; names share the namespace with system regions.
    assert.deepEqual((await getJson(url("/v2/cudasharedmemory/status"))).json, []);
    const cuda = await getJson(url("/v2/cudasharedmemory/region/g0/status"));
    assert.deepEqual([cuda.status, cuda.json], [404, { error: "Unable to find cuda shared memory region: 'g0'" }]);
    const sys = await getJson(url("/v2/cudasharedmemory/region/in0/status"));
    assert.deepEqual([sys.status, sys.json], [404, { error: "The region named 'in0' is registered as system shared memory, not CUDA shared memory" }]);
    const reg = await postJson(url("/v2/cudasharedmemory/region/g0/register"), { raw_handle: { b64: "" }, device_id: 0, byte_size: 8 });
    assert.deepEqual([reg.status, reg.json], [400, { error: "failed to register CUDA shared memory region: 'g0', GPUs not supported" }]);
    assert.equal((await postJson(url("/v2/cudasharedmemory/unregister"), "")).status, 200);
    const gerr = await grpcError(c.unary(S.cudaSharedMemoryStatus, { name: "in0" }));
    assert.deepEqual([gerr.code, gerr.details], [status.NOT_FOUND, "The region named 'in0' is registered as system shared memory, not CUDA shared memory"]);
  });

  it("refuses requests whose shared-memory parameters do not fit their region, with Triton's messages", async () => {
    const withOut0 = (params: Record<string, unknown>) => ({
      inputs: shmInputs(),
      outputs: [{ name: "OUTPUT0", parameters: params }],
    });
    const cases: [unknown, number, string | RegExp][] = [
      [withOut0(shmParams("nope", 64)), 404, "Unable to find shared memory region: 'nope'"],
      [withOut0(shmParams("out0", 4, 64)), 400, "Invalid offset for shared memory region: 'out0'"],
      [withOut0(shmParams("out0", 64, 2 ** 64 - 32)), 400, "Invalid offset for shared memory region: 'out0'"],
      [withOut0(shmParams("out0", 64, 60)), 400, "Invalid offset + byte size for shared memory region: 'out0'"],
      [withOut0(shmParams("out0", 2 ** 64 - 32, 32)), 400, /^Integer overflow detected: byte_size \(\d+\) \+ offset \(32\) exceeds maximum value \(18446744073709551615\) for region 'out0'$/],
      [withOut0(shmParams("out0", 32)), 400, "shared memory size specified with the request for output 'OUTPUT0' (32 bytes) should be at least 64 bytes to hold the results"],
      [withOut0({ shared_memory_region: "out0" }), 400, /sets 'shared_memory_region' but not 'shared_memory_byte_size'/],
      [withOut0({ shared_memory_region: 5, shared_memory_byte_size: 64 }), 400, /^Unable to parse 'shared_memory_region' of output 'OUTPUT0'/],
      [withOut0({ ...shmParams("out0", 64), shared_memory_offset: -1 }), 400, /^Unable to parse 'shared_memory_offset'/],
      [withOut0({ ...shmParams("out0", 64), binary_data: true }), 400, "Output can't set both 'shared_memory_region' and 'binary_data'"],
      [withOut0({ ...shmParams("out0", 64), classification: 2 }), 400, "Output can't set both 'shared_memory_region' and 'classification'"],
      [
        { inputs: [{ ...shmInputs()[0], data: A }, shmInputs()[1]] },
        400,
        "Input must set only one of the following fields: 'data', 'binary_data_size' in 'parameters', 'shared_memory_region' in 'parameters'. But set 'data' 'shared_memory_region'",
      ],
      // An input region larger than the tensor: the model sees 80 bytes where it expects 64.
      [
        { inputs: [shmInputs()[0], { ...shmInputs()[1], parameters: shmParams("in1", 80) }] },
        400,
        /input byte size mismatch for input 'INPUT1' for model 'simple'. Expected 64, got 80/,
      ],
    ];
    for (const [body, code, message] of cases) {
      const res = await infer(body);
      assert.equal(res.status, code, `${JSON.stringify(body)} → ${JSON.stringify(res.json)}`);
      if (typeof message === "string") assert.equal(res.json.error, message);
      else assert.match(res.json.error, message);
    }

    const grpcCases: [unknown, number, string | RegExp][] = [
      [
        {
          modelName: "simple",
          inputs: [
            { name: "INPUT0", datatype: "INT32", shape: [1n, 16n], parameters: grpcShm("in0", 64), contents: { intContents: A } },
            { name: "INPUT1", datatype: "INT32", shape: [1n, 16n], parameters: grpcShm("in1", 64, 16) },
          ],
        },
        status.INVALID_ARGUMENT,
        "unexpected 'contents' provided when using shared memory for input tensor 'INPUT0' for model 'simple'",
      ],
      [
        {
          modelName: "simple",
          inputs: [
            { name: "INPUT0", datatype: "INT32", shape: [1n, 16n], parameters: grpcShm("in0", 64) },
            { name: "INPUT1", datatype: "INT32", shape: [1n, 16n], parameters: grpcShm("in1", 64, 80) },
          ],
        },
        status.INVALID_ARGUMENT,
        "Invalid offset for shared memory region: 'in1'",
      ],
      [
        {
          modelName: "simple",
          inputs: [
            { name: "INPUT0", datatype: "INT32", shape: [1n, 16n], parameters: grpcShm("gone", 64) },
            { name: "INPUT1", datatype: "INT32", shape: [1n, 16n], parameters: grpcShm("in1", 64, 16) },
          ],
        },
        status.NOT_FOUND,
        "Unable to find shared memory region: 'gone'",
      ],
    ];
    for (const [request, code, message] of grpcCases) {
      const err = await grpcError(c.unary(S.modelInfer, request as never));
      assert.equal(err.code, code, `${String(message)}: got ${err.code} ${err.details}`);
      if (typeof message === "string") assert.equal(err.details, message);
      else assert.match(err.details, message);
    }
    // The regions are untouched and still usable.
    const ok = await infer({ inputs: shmInputs() });
    assert.equal(ok.status, 200);
    assert.deepEqual(ok.json.outputs[0].data, SUM);
  });

  it("fails clearly when a registered object shrinks, and when its file is deleted keeps using the open region", async () => {
    const key = shmObject("shrink", i32(A));
    assert.equal((await register("shrink", key, 64)).status, 200);
    const body = { inputs: [{ ...shmInputs()[0], parameters: shmParams("shrink", 64) }, shmInputs()[1]] };
    fs.truncateSync(shmFile(key), 32);
    const res = await infer(body);
    assert.equal(res.status, 400);
    assert.match(res.json.error, /^shared memory region 'shrink' \(key '.*shrink'\) is smaller than when it was registered/);
    // Writing an output past the end would grow the client's object: refused too.
    const outRes = await infer({ inputs: shmInputs(), outputs: [{ name: "OUTPUT0", parameters: shmParams("shrink", 64) }] });
    assert.equal(outRes.status, 400);
    assert.match(outRes.json.error, /is smaller than when it was registered; output 'OUTPUT0' needs bytes \[0, 64\)/);
    assert.equal(fs.statSync(shmFile(key)).size, 32);

    // Restored (same object), then unlinked by the client (shm_unlink): the
    // registered region stays readable, as a mapping would.
    fs.writeFileSync(shmFile(key), i32(A));
    fs.rmSync(shmFile(key));
    const unlinked = await infer(body);
    assert.equal(unlinked.status, 200, JSON.stringify(unlinked.json));
    assert.deepEqual(unlinked.json.outputs[0].data, SUM);
    await postJson(url("/v2/systemsharedmemory/region/shrink/unregister"), "");
  });

  it("unregisters one region, an unknown one (no error), then all; requests naming them fail afterwards", async () => {
    let res = await postJson(url("/v2/systemsharedmemory/region/out1/unregister"), "");
    assert.equal(res.status, 200);
    assert.deepEqual((await getJson(url("/v2/systemsharedmemory/status"))).json.map((r: { name: string }) => r.name), ["in0", "in1", "out0"]);
    assert.equal((await getJson(url("/v2/systemsharedmemory/region/out1/status"))).status, 404);
    res = await postJson(url("/v2/systemsharedmemory/region/never-registered/unregister"), "");
    assert.equal(res.status, 200);
    const failed = await infer({ inputs: shmInputs(), outputs: [{ name: "OUTPUT1", parameters: shmParams("out1", 64) }] });
    assert.deepEqual([failed.status, failed.json], [404, { error: "Unable to find shared memory region: 'out1'" }]);
    // The same name can be registered again.
    assert.equal((await register("out1", out, 64, 128)).status, 200);
    await c.unary(S.systemSharedMemoryUnregister, {});
    assert.deepEqual((await getJson(url("/v2/systemsharedmemory/status"))).json, []);
    assert.deepEqual((await c.unary(S.systemSharedMemoryStatus, {})).regions, {});
    res = await postJson(url("/v2/systemsharedmemory/unregister"), "");
    assert.equal(res.status, 200);
    const gone = await infer({ inputs: shmInputs() });
    assert.deepEqual([gone.status, gone.json], [404, { error: "Unable to find shared memory region: 'in0'" }]);
  });
});

describe("system shared memory without --allow-client-shm (Triton's default)", () => {
  let s: GrpcTestServer;
  let c: GrpcTestClient;
  before(async () => {
    s = await startGrpcServer({ modelRepository: await tempRepository({ simple: path.join(EXAMPLES, "simple") }) });
    c = new GrpcTestClient(s.grpcAddress);
  });
  after(async () => {
    c.close();
    await s.close();
    cleanup();
  });

  it("refuses registration and use, and still answers status and unregister", async () => {
    const key = shmObject("off", i32(A));
    const message = "failed to register system shared memory region 'r': system shared memory is not supported unless the server is started with --allow-client-shm=true";
    const res = await postJson(`${s.url}/v2/systemsharedmemory/region/r/register`, { key, byte_size: 64 });
    assert.deepEqual([res.status, res.json], [501, { error: message }]);
    const err = await grpcError(c.unary(S.systemSharedMemoryRegister, { name: "r", key, offset: 0n, byteSize: 64n }));
    assert.deepEqual([err.code, err.details], [status.UNIMPLEMENTED, message]);
    assert.deepEqual((await getJson(`${s.url}/v2/systemsharedmemory/status`)).json, []);
    assert.equal((await postJson(`${s.url}/v2/systemsharedmemory/unregister`, "")).status, 200);
    await c.unary(S.systemSharedMemoryUnregister, {});
    const infer = await postJson(`${s.url}/v2/models/simple/infer`, {
      inputs: [
        { name: "INPUT0", datatype: "INT32", shape: [1, 16], parameters: shmParams("r", 64) },
        { name: "INPUT1", datatype: "INT32", shape: [1, 16], data: B },
      ],
    });
    assert.deepEqual([infer.status, infer.json], [
      501,
      { error: "input 'INPUT0' for model 'simple' names shared memory region 'r', but shared memory is not supported unless the server is started with --allow-client-shm=true" },
    ]);
  });

  it("is off unless --allow-client-shm=true is given on the command line", () => {
    assert.equal(parseFlags([])["allow-client-shm"], false);
    assert.equal(parseFlags(["--allow-client-shm=true"])["allow-client-shm"], true);
    assert.equal(parseFlags(["--allow-client-shm", "false"])["allow-client-shm"], false);
  });
});

describe("system shared memory in process: a region unregistered while a request uses it", () => {
  let core: InferenceServer;
  let gate: GateBackend;
  before(async () => {
    const repo = await tempRepository({});
    await fsp.mkdir(path.join(repo, "m", "1"), { recursive: true });
    await fsp.writeFile(path.join(repo, "m", "1", "model.gate"), "");
    await fsp.writeFile(path.join(repo, "m", "config.pbtxt"), gateConfig("m", 4, "instance_group [ { count: 1 } ]\n"));
    gate = new GateBackend();
    core = await createServer({ modelRepository: repo, backends: [gate], quiet: true, allowClientShm: true });
  });
  after(async () => {
    gate.release();
    await core.stop();
    cleanup();
  });

  it("stays listed and usable until its last request finishes, then is removed; nothing crashes", async () => {
    const x = shmObject("gate-x", i32([41, 42]));
    const y = shmObject("gate-y", 8);
    core.registerSystemSharedMemory("x", x, 0, 8);
    core.registerSystemSharedMemory("y", y, 0, 8);
    const request = {
      model_name: "m",
      inputs: [{ name: "X", datatype: "INT32" as const, shape: [2, 1], data: new Uint8Array(0), parameters: shmParams("x", 8) }],
      outputs: [{ name: "Y", parameters: shmParams("y", 8) }],
    };
    gate.hold();
    const first = core.infer(request);
    while (gate.running === 0) await new Promise((r) => setTimeout(r, 5));
    core.unregisterSystemSharedMemory();
    // As in Triton: still listed, and a new request may still use it.
    assert.deepEqual(core.systemSharedMemoryStatus().map((r) => r.name), ["x", "y"]);
    assert.throws(() => core.registerSystemSharedMemory("x", x, 0, 8), /shared memory region 'x' already in manager/);
    const second = core.infer(request);
    gate.release();
    const [r1, r2] = await Promise.all([first, second]);
    for (const r of [r1, r2]) {
      assert.equal(r.outputs[0]!.data.byteLength, 0);
      assert.deepEqual(r.outputs[0]!.parameters, { shared_memory_region: "y", shared_memory_byte_size: 8 });
    }
    assert.deepEqual(readInts(y, 0, 2), [41, 42]);
    assert.deepEqual(core.systemSharedMemoryStatus(), []);
    await assert.rejects(core.infer(request), /Unable to find shared memory region: 'x'/);
    // The names are free again.
    core.registerSystemSharedMemory("x", x, 0, 8);
    assert.deepEqual(core.systemSharedMemoryStatus().map((r) => r.name), ["x"]);
  });
});
