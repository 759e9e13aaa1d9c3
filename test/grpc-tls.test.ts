import assert from "node:assert/strict";
import { execFile, spawn } from "node:child_process";
import fs from "node:fs/promises";
import path from "node:path";
import { promisify } from "node:util";
import { after, before, describe, it } from "node:test";
import { credentials, status } from "@grpc/grpc-js";
import { GRPCInferenceService } from "../src/gen/inference/grpc_service_pb.js";
import { readTlsFiles } from "../src/frontends/grpc/grpc-server.js";
import { makePki, type Pki } from "./pki.js";
import { EXAMPLES, GrpcTestClient, ROOT, bytesOf, grpcError, startGrpcServer, tempRepository, type GrpcTestServer } from "./helpers.js";

const S = GRPCInferenceService.method;
const run = promisify(execFile);

const simple = {
  modelName: "simple",
  inputs: [
    { name: "INPUT0", datatype: "INT32", shape: [1n, 16n] },
    { name: "INPUT1", datatype: "INT32", shape: [1n, 16n] },
  ],
  rawInputContents: [bytesOf(new Int32Array(16).fill(2)), bytesOf(new Int32Array(16).fill(1))],
};

describe("gRPC over TLS and mutual TLS (certificates made by openssl in the test)", () => {
  let pki: Pki;
  let repo: string;
  let tls: GrpcTestServer;
  let mtls: GrpcTestServer;
  const read = (f: string) => fs.readFile(f);

  before(async () => {
    pki = await makePki();
    repo = await tempRepository({ simple: path.join(EXAMPLES, "simple") });
    tls = await startGrpcServer({ modelRepository: repo }, { tls: await readTlsFiles({ serverCert: pki.serverCert, serverKey: pki.serverKey }) });
    mtls = await startGrpcServer(
      { modelRepository: repo },
      { tls: await readTlsFiles({ serverCert: pki.serverCert, serverKey: pki.serverKey, rootCert: pki.ca, mutual: true }) },
    );
  });
  after(async () => {
    await Promise.all([tls?.close(), mtls?.close()]);
    await fs.rm(pki.dir, { recursive: true, force: true });
  });

  it("serves a client that trusts the server's CA", async () => {
    const c = new GrpcTestClient(tls.grpcAddress, credentials.createSsl(await read(pki.ca)));
    try {
      assert.equal((await c.unary(S.serverLive, {})).live, true);
      const res = await c.unary(S.modelInfer, simple);
      assert.deepEqual([...new Int32Array(Uint8Array.from(res.rawOutputContents[0]!).buffer)], new Array(16).fill(3));
    } finally {
      c.close();
    }
  });

  it("refuses plaintext clients and clients that do not trust the server's CA", async () => {
    for (const creds of [credentials.createInsecure(), credentials.createSsl(await read(pki.rogueCa))]) {
      const c = new GrpcTestClient(tls.grpcAddress, creds);
      try {
        const err = await grpcError(c.unary(S.serverLive, {}, { deadline: Date.now() + 3000 }));
        assert.ok([status.UNAVAILABLE, status.DEADLINE_EXCEEDED].includes(err.code), `${err.code} ${err.details}`);
      } finally {
        c.close();
      }
    }
  });

  it("serves a client whose certificate the root CA signed, with mutual TLS", async () => {
    const c = new GrpcTestClient(mtls.grpcAddress, credentials.createSsl(await read(pki.ca), await read(pki.clientKey), await read(pki.clientCert)));
    try {
      assert.equal((await c.unary(S.serverReady, {})).ready, true);
      const res = await c.unary(S.modelInfer, simple);
      assert.deepEqual([...new Int32Array(Uint8Array.from(res.rawOutputContents[1]!).buffer)], new Array(16).fill(1));
    } finally {
      c.close();
    }
  });

  it("refuses, with mutual TLS, clients without a certificate or with one from another CA", async () => {
    const cases = [
      credentials.createSsl(await read(pki.ca)),
      credentials.createSsl(await read(pki.ca), await read(pki.rogueKey), await read(pki.rogueCert)),
    ];
    for (const creds of cases) {
      const c = new GrpcTestClient(mtls.grpcAddress, creds);
      try {
        const err = await grpcError(c.unary(S.serverLive, {}, { deadline: Date.now() + 3000 }));
        assert.ok([status.UNAVAILABLE, status.DEADLINE_EXCEEDED].includes(err.code), `${err.code} ${err.details}`);
      } finally {
        c.close();
      }
    }
  });

  it("names the missing or unreadable file's flag", async () => {
    await assert.rejects(readTlsFiles({ serverKey: pki.serverKey }), /--grpc-server-cert must be specified when gRPC SSL is enabled/);
    await assert.rejects(readTlsFiles({ serverCert: pki.serverCert, serverKey: pki.serverKey, mutual: true }), /--grpc-root-cert must be specified/);
    await assert.rejects(readTlsFiles({ serverCert: path.join(pki.dir, "none.crt"), serverKey: pki.serverKey }), /--grpc-server-cert: cannot read/);
  });

  it("starts from tritonserver's flags (--grpc-use-ssl-mutual, --grpc-server-cert, ...) and drains on SIGTERM", async () => {
    const child = spawn(
      process.execPath,
      [
        path.join(ROOT, "dist", "src", "cli", "main.js"),
        "--model-repository", repo,
        "--http-port", "0", "--http-address", "127.0.0.1",
        "--allow-metrics", "false",
        "--grpc-port", "0", "--grpc-address", "127.0.0.1",
        "--grpc-use-ssl-mutual", "true",
        "--grpc-server-cert", pki.serverCert, "--grpc-server-key", pki.serverKey, "--grpc-root-cert", pki.ca,
        "--grpc-keepalive-time", "60000", "--grpc-keepalive-timeout", "5000",
        "--grpc-infer-allocation-pool-size", "16", "--grpc-http2-max-pings-without-data", "0",
      ],
      { stdio: ["ignore", "ignore", "pipe"] },
    );
    let stderr = "";
    child.stderr.on("data", (d: Buffer) => (stderr += d.toString()));
    const exited = new Promise<number | null>((resolve) => child.on("exit", (code) => resolve(code)));
    try {
      const port = await new Promise<string>((resolve, reject) => {
        const t = setTimeout(() => reject(new Error(`no gRPC start line:\n${stderr}`)), 20_000);
        child.stderr.on("data", () => {
          const m = /Started GRPCInferenceService at 127\.0\.0\.1:(\d+) \(TLS, client certificates required\)/.exec(stderr);
          if (m) {
            clearTimeout(t);
            resolve(m[1]!);
          }
        });
        void exited.then((code) => reject(new Error(`exited with ${code}:\n${stderr}`)));
      });
      assert.match(stderr, /--grpc-infer-allocation-pool-size is accepted for compatibility/);
      const c = new GrpcTestClient(`127.0.0.1:${port}`, credentials.createSsl(await read(pki.ca), await read(pki.clientKey), await read(pki.clientCert)));
      try {
        const res = await c.unary(S.modelInfer, { ...simple, id: "cli" });
        assert.equal(res.id, "cli");
      } finally {
        c.close();
      }
    } finally {
      child.kill("SIGTERM");
    }
    assert.equal(await exited, 0, stderr);
  });

  it("exits with a clear error when --grpc-use-ssl lacks its certificate", async () => {
    const res = await run(process.execPath, [
      path.join(ROOT, "dist", "src", "cli", "main.js"),
      "--model-repository", repo, "--allow-http", "false", "--allow-metrics", "false", "--grpc-port", "0", "--grpc-use-ssl",
    ]).then(
      () => ({ code: 0, stderr: "" }),
      (e: { code: number; stderr: string }) => e,
    );
    assert.equal(res.code, 1);
    assert.match(res.stderr, /--grpc-server-cert must be specified when gRPC SSL is enabled/);
  });
});
