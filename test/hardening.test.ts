/**
 * What a hostile or careless client cannot do: reach outside the repository
 * through a model name or a file override (HTTP and gRPC), alias one range
 * of shared memory under two names, register keys outside the allowed
 * prefix, or hold a connection by never finishing its request; and a body
 * over the size limit is answered, not cut off.
 */
import assert from "node:assert/strict";
import fs from "node:fs";
import net from "node:net";
import path from "node:path";
import { after, before, describe, it } from "node:test";
import { status } from "@grpc/grpc-js";
import { S } from "./grpc-simple.js";
import { EXAMPLES, GrpcTestClient, grpcError, postJson, startGrpcServer, type GrpcTestServer } from "./helpers.js";

const NAME_ERROR = /invalid model name '.*': a model name is one directory of the repository/;

describe("hostile names and shared memory", () => {
  let s: GrpcTestServer;
  let client: GrpcTestClient;
  const key = `tritium-hardening-${process.pid}`;
  before(async () => {
    fs.writeFileSync(path.join("/dev/shm", key), Buffer.alloc(256));
    s = await startGrpcServer(
      { modelRepository: EXAMPLES, modelControlMode: "explicit", startupModels: ["simple"], allowClientShm: true, clientShmKeyPrefix: "/tritium-hardening-" },
      {},
      { maxInputSize: 4096, requestTimeoutMs: 1000 },
    );
    client = new GrpcTestClient(s.grpcAddress);
  });
  after(async () => {
    client?.close();
    await s?.close();
    fs.rmSync(path.join("/dev/shm", key), { force: true });
  });

  it("refuses model names with '/', '\\', NUL or '..' before touching the file system, over HTTP and gRPC", async () => {
    // ("%2E%2E" alone never arrives: clients resolve it as ".." in the URL.)
    for (const name of ["..%2F..%2Ftmp", "a%5Cb", "a%00b", "simple%2F..%2Fsimple"]) {
      for (const action of ["load", "unload"]) {
        const r = await postJson(`${s.url}/v2/repository/models/${name}/${action}`, {});
        assert.equal(r.status, 400, `${action} ${name}: ${JSON.stringify(r.json)}`);
        assert.match(r.json.error, NAME_ERROR);
      }
    }
    for (const modelName of ["../model_repository/simple", ".."]) {
      const e = await grpcError(client.unary(S.repositoryModelLoad, { modelName }));
      assert.equal(e.code, status.INVALID_ARGUMENT);
      assert.match(e.details, NAME_ERROR);
    }
    // The server still serves what it had.
    assert.equal((await fetch(`${s.url}/v2/models/simple/ready`)).status, 200);
  });

  it("refuses file overrides that climb out of the model or hold NUL", async () => {
    const config = JSON.stringify({ name: "simple", backend: "onnxruntime" });
    for (const file of ["file:1/../../escape.onnx", "file:/etc/passwd", "file:1/a\u0000b"]) {
      const r = await postJson(`${s.url}/v2/repository/models/simple/load`, { parameters: { config, [file]: "AAAA" } });
      assert.equal(r.status, 400, JSON.stringify(r.json));
      assert.match(r.json.error, /invalid file override/);
    }
  });

  it("refuses a second name over bytes already registered, and keys outside --client-shm-key-prefix", async () => {
    const register = (name: string, k: string, offset: number, byteSize: number) =>
      postJson(`${s.url}/v2/systemsharedmemory/region/${name}/register`, { key: k, offset, byte_size: byteSize });
    assert.equal((await register("inputs", `/${key}`, 0, 128)).status, 200);
    const alias = await register("alias", `/${key}`, 64, 64);
    assert.equal(alias.status, 400);
    assert.match(alias.json.error, /overlap region 'inputs' \(0\.\.128\); a range of shared memory can be registered once/);
    assert.equal((await register("outputs", `/${key}`, 128, 128)).status, 200, "a disjoint range of the same key is fine");
    const outside = await register("other", "/some-other-key", 0, 16);
    assert.equal(outside.status, 400);
    assert.match(outside.json.error, /accepts only keys that start with '\/tritium-hardening-'/);
    await postJson(`${s.url}/v2/systemsharedmemory/unregister`, {});
  });

  it("answers a body over --http-max-input-size with 400 and keeps the connection usable", async () => {
    const big = await postJson(`${s.url}/v2/models/simple/infer`, { inputs: [{ name: "INPUT0", datatype: "INT32", shape: [1, 4000], data: new Array(4000).fill(1) }] });
    assert.equal(big.status, 400);
    assert.match(big.json.error, /HTTP request size exceeds the maximum allowed value of 4096 bytes/);
    assert.equal((await fetch(`${s.url}/v2/health/live`)).status, 200);
  });

  it("answers 408 and closes a connection whose request never finishes", async () => {
    const port = Number(new URL(s.url).port);
    const reply = await new Promise<string>((resolve, reject) => {
      const socket = net.connect(port, "127.0.0.1", () => {
        socket.write("POST /v2/models/simple/infer HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n{");
      });
      let text = "";
      socket.on("data", (c: Buffer) => (text += c.toString()));
      socket.on("close", () => resolve(text));
      socket.on("error", reject);
      setTimeout(() => reject(new Error("no answer within 10 s")), 10_000).unref();
    });
    assert.match(reply, /^HTTP\/1\.1 408 Request Timeout/);
  });
});
