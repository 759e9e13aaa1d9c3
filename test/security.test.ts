/**
 * Access control on both protocols: Triton's restricted API groups (HTTP
 * 403 / gRPC UNAVAILABLE with Triton's text, the gRPC header prefixed
 * `triton-grpc-protocol-`), Tritium's API keys (401 / UNAUTHENTICATED, the
 * key as a bearer token or X-API-Key, health open by default), and the
 * command line's HTTPS with a key file, end to end.
 */
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { createHash } from "node:crypto";
import fs from "node:fs/promises";
import https from "node:https";
import path from "node:path";
import { after, before, describe, it } from "node:test";
import { Metadata, status } from "@grpc/grpc-js";
import { AccessPolicy, ApiKeys, parseGroups, parseRestrictions } from "../src/frontends/access.js";
import { S, i32 } from "./grpc-simple.js";
import { EXAMPLES, GrpcTestClient, ROOT, collectResponses, grpcError, postJson, startGrpcServer, type GrpcTestServer } from "./helpers.js";
import { makePki, type Pki } from "./pki.js";


const SIMPLE_BODY = {
  inputs: [
    { name: "INPUT0", datatype: "INT32", shape: [1, 16], data: Array.from({ length: 16 }, (_, i) => i) },
    { name: "INPUT1", datatype: "INT32", shape: [1, 16], data: Array.from({ length: 16 }, () => 1) },
  ],
};
const simpleGrpc = () => ({
  modelName: "simple",
  inputs: [
    { name: "INPUT0", datatype: "INT32", shape: [1n, 16n] },
    { name: "INPUT1", datatype: "INT32", shape: [1n, 16n] },
  ],
  rawInputContents: [i32(Array.from({ length: 16 }, (_, i) => i)), i32(Array.from({ length: 16 }, () => 1))],
});
const meta = (entries: Record<string, string>) => {
  const m = new Metadata();
  for (const [k, v] of Object.entries(entries)) m.set(k, v);
  return m;
};

describe("restricted API groups", () => {
  let s: GrpcTestServer;
  let client: GrpcTestClient;
  before(async () => {
    s = await startGrpcServer(
      { modelRepository: EXAMPLES },
      { access: new AccessPolicy(parseRestrictions(["model-repository,statistics:admin-key=open sesame", "inference:infer-key=go"], "grpc-restricted-protocol", "triton-grpc-protocol-")) },
      { access: new AccessPolicy(parseRestrictions(["model-repository,statistics:admin-key=open sesame", "inference:infer-key=go"], "http-restricted-api")) },
    );
    client = new GrpcTestClient(s.grpcAddress);
  });
  after(async () => {
    client?.close();
    await s?.close();
  });

  it("answers HTTP 403 with Triton's message without the header, and serves the request with it", async () => {
    const denied = await fetch(`${s.url}/v2/models/stats`);
    assert.equal(denied.status, 403);
    assert.deepEqual(await denied.json(), { error: "This API is restricted, expecting header 'admin-key'" });
    assert.equal((await fetch(`${s.url}/v2/models/stats`, { headers: { "admin-key": "wrong" } })).status, 403);
    assert.equal((await fetch(`${s.url}/v2/models/stats`, { headers: { "Admin-Key": "open sesame" } })).status, 200);
    const infer = await postJson(`${s.url}/v2/models/simple/infer`, SIMPLE_BODY);
    assert.equal(infer.status, 403);
    assert.equal(infer.json.error, "This API is restricted, expecting header 'infer-key'");
    assert.equal((await postJson(`${s.url}/v2/models/simple/infer`, SIMPLE_BODY, { "infer-key": "go" })).status, 200);
    // Unrestricted groups need nothing.
    assert.equal((await fetch(`${s.url}/v2/health/ready`)).status, 200);
    assert.equal((await fetch(`${s.url}/v2/models/simple`)).status, 200);
  });

  it("answers gRPC UNAVAILABLE with Triton's message and prefixed header, unary and streaming", async () => {
    const e = await grpcError(client.unary(S.modelStatistics, { name: "simple" }));
    assert.equal(e.code, status.UNAVAILABLE);
    assert.equal(e.details, "This protocol is restricted, expecting header 'triton-grpc-protocol-admin-key'");
    const stats = await client.unary(S.modelStatistics, { name: "simple" }, { metadata: meta({ "triton-grpc-protocol-admin-key": "open sesame" }) });
    assert.equal(stats.modelStats[0]!.name, "simple");
    const stream = client.stream(S.modelStreamInfer);
    stream.write(simpleGrpc());
    stream.end();
    const se = await collectResponses(stream).then(() => assert.fail("the stream should fail"), (err: { code: number; details: string }) => err);
    assert.equal(se.code, status.UNAVAILABLE);
    assert.equal(se.details, "This protocol is restricted, expecting header 'triton-grpc-protocol-infer-key'");
    const ok = await client.unary(S.modelInfer, simpleGrpc(), { metadata: meta({ "triton-grpc-protocol-infer-key": "go" }) });
    assert.equal(ok.modelName, "simple");
    assert.equal((await client.unary(S.serverLive, {})).live, true);
  });

  it("refuses a group named twice or unknown, naming the flag", () => {
    assert.throws(() => parseRestrictions(["health:a=b", "health,trace:c=d"], "http-restricted-api"), /--http-restricted-api: API 'health' is restricted more than once/);
    assert.throws(() => parseRestrictions(["everything:a=b"], "http-restricted-api"), /unknown API 'everything'/);
    assert.throws(() => parseRestrictions(["health"], "http-restricted-api"), /must be <api>,<api>,...:<key>=<value>/);
  });
});

describe("API keys", () => {
  let s: GrpcTestServer;
  let client: GrpcTestClient;
  before(async () => {
    const access = new AccessPolicy(new Map(), ApiKeys.of(["k-123", "k-456"]), parseGroups("metadata,inference,model-repository,statistics", "api-key-apis"));
    s = await startGrpcServer({ modelRepository: EXAMPLES }, { access }, { access });
    client = new GrpcTestClient(s.grpcAddress);
  });
  after(async () => {
    client?.close();
    await s?.close();
  });

  it("answers 401 without a key or with a wrong one, and serves a bearer token or X-API-Key", async () => {
    const none = await postJson(`${s.url}/v2/models/simple/infer`, SIMPLE_BODY);
    assert.equal(none.status, 401);
    assert.match(none.json.error, /a valid API key is required/);
    assert.equal(none.headers.get("www-authenticate"), "Bearer");
    assert.equal((await postJson(`${s.url}/v2/models/simple/infer`, SIMPLE_BODY, { authorization: "Bearer k-999" })).status, 401);
    assert.equal((await postJson(`${s.url}/v2/models/simple/infer`, SIMPLE_BODY, { authorization: "Bearer k-123" })).status, 200);
    assert.equal((await postJson(`${s.url}/v2/models/simple/infer`, SIMPLE_BODY, { "x-api-key": "k-456" })).status, 200);
    // Health stays open for probes; groups not listed need no key.
    assert.equal((await fetch(`${s.url}/v2/health/live`)).status, 200);
    assert.equal((await fetch(`${s.url}/v2/logging`)).status, 200);
  });

  it("answers gRPC UNAUTHENTICATED without a key and serves one in the metadata", async () => {
    const e = await grpcError(client.unary(S.modelInfer, simpleGrpc()));
    assert.equal(e.code, status.UNAUTHENTICATED);
    const ok = await client.unary(S.modelInfer, simpleGrpc(), { metadata: meta({ authorization: "Bearer k-456" }) });
    assert.equal(ok.outputs.length, 2);
    assert.equal((await client.unary(S.serverReady, {})).ready, true);
  });

  it("reads a key file of SHA-256 digests and refuses a line that is not one", async () => {
    const dir = await fs.mkdtemp(path.join(ROOT, "dist", "keys-"));
    try {
      const file = path.join(dir, "keys");
      await fs.writeFile(file, `# team A\n${createHash("sha256").update("alpha").digest("hex")}\n\n`);
      const keys = await ApiKeys.fromFile(file);
      assert.equal(keys.accepts("alpha"), true);
      assert.equal(keys.accepts("alph"), false);
      assert.equal(keys.accepts(undefined), false);
      await fs.writeFile(file, "alpha\n");
      await assert.rejects(ApiKeys.fromFile(file), /line 1 is not a SHA-256 digest/);
    } finally {
      await fs.rm(dir, { recursive: true, force: true });
    }
  });
});

describe("tritium command line: HTTPS with API keys", () => {
  let pki: Pki;
  before(async () => {
    pki = await makePki();
  });
  after(async () => {
    await fs.rm(pki.dir, { recursive: true, force: true });
  });

  it("serves HTTPS, refuses inference without the key, and keeps the key out of its log", async () => {
    const keyFile = path.join(pki.dir, "keys");
    await fs.writeFile(keyFile, `${createHash("sha256").update("s3cret-key").digest("hex")}\n`);
    const child = spawn(process.execPath, [
      path.join(ROOT, "dist", "src", "cli", "main.js"), "--model-repository", EXAMPLES, "--model-control-mode=explicit", "--load-model=simple",
      "--http-port=0", "--allow-grpc=false", "--allow-metrics=false", "--log-verbose=1",
      "--http-ssl", `--http-ssl-cert=${pki.serverCert}`, `--http-ssl-key=${pki.serverKey}`, `--api-key-file=${keyFile}`,
    ], { stdio: ["ignore", "pipe", "pipe"] });
    let log = "";
    child.stdout.on("data", (c: Buffer) => (log += c.toString()));
    child.stderr.on("data", (c: Buffer) => (log += c.toString()));
    try {
      const port = await new Promise<number>((resolve, reject) => {
        const timer = setTimeout(() => reject(new Error(`no HTTPS service within 30 s:\n${log}`)), 30_000);
        const look = () => {
          const m = /Started HTTPService at [^:]+:(\d+) \(HTTPS\)/.exec(log);
          if (m) {
            clearTimeout(timer);
            resolve(Number(m[1]));
          }
        };
        child.stdout.on("data", look);
        child.stderr.on("data", look);
      });
      const ca = await fs.readFile(pki.ca);
      const call = (headers: Record<string, string>) =>
        new Promise<{ status: number; body: string }>((resolve, reject) => {
          const body = JSON.stringify(SIMPLE_BODY);
          const req = https.request({ host: "127.0.0.1", port, path: "/v2/models/simple/infer", method: "POST", ca, servername: "localhost", headers: { "content-type": "application/json", ...headers } }, (res) => {
            let text = "";
            res.on("data", (c: Buffer) => (text += c.toString()));
            res.on("end", () => resolve({ status: res.statusCode!, body: text }));
          });
          req.on("error", reject);
          req.end(body);
        });
      assert.equal((await call({})).status, 401);
      const ok = await call({ authorization: "Bearer s3cret-key" });
      assert.equal(ok.status, 200, ok.body);
      assert.deepEqual(JSON.parse(ok.body).outputs[0].data, Array.from({ length: 16 }, (_, i) => i + 1));
      // Plain HTTP on the HTTPS port gets no answer.
      await assert.rejects(fetch(`http://127.0.0.1:${port}/v2/health/live`));
    } finally {
      child.kill("SIGTERM");
      await new Promise((r) => child.once("exit", r));
    }
    assert.ok(!log.includes("s3cret-key"), "the key appears in the server's log");
  });
});
