import fs from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { createServer, type CreateServerOptions } from "../src/index.js";
import type { InferenceServer } from "../src/core/server.js";
import { HttpFrontend } from "../src/frontends/http/http-server.js";

/** Repository root (tests run from dist/test). */
export const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..", "..");
export const EXAMPLES = path.join(ROOT, "examples", "model_repository");
export const FIXTURES = path.join(ROOT, "test", "fixtures", "model_repository");

/** A real server (core + HTTP frontend) on an ephemeral loopback port. */
export interface TestServer {
  core: InferenceServer;
  url: string;
  close(): Promise<void>;
}

export async function startServer(options: Partial<CreateServerOptions> & { modelRepository: string | string[] }): Promise<TestServer> {
  const core = await createServer({ quiet: true, ...options });
  const http = new HttpFrontend(core, { address: "127.0.0.1", port: 0 });
  const port = await http.listen();
  return {
    core,
    url: `http://127.0.0.1:${port}`,
    async close() {
      const closing = http.close();
      await core.stop();
      http.closeAllConnections();
      await closing;
    },
  };
}

/** Copies models from a repository into a fresh temporary repository. */
export async function tempRepository(models: Record<string, string>): Promise<string> {
  const dir = await fs.mkdtemp(path.join(os.tmpdir(), "tritium-repo-"));
  for (const [name, from] of Object.entries(models)) {
    await fs.cp(from, path.join(dir, name), { recursive: true });
  }
  return dir;
}

export async function postJson(url: string, body: unknown, headers: Record<string, string> = {}): Promise<{ status: number; json: any; headers: Headers }> {
  const res = await fetch(url, { method: "POST", body: typeof body === "string" ? body : JSON.stringify(body), headers: { "Content-Type": "application/json", ...headers } });
  const text = await res.text();
  return { status: res.status, json: text ? JSON.parse(text) : undefined, headers: res.headers };
}

export async function getJson(url: string): Promise<{ status: number; json: any; text: string }> {
  const res = await fetch(url);
  const text = await res.text();
  let json: any;
  try {
    json = text ? JSON.parse(text) : undefined;
  } catch {
    json = undefined;
  }
  return { status: res.status, json, text };
}

// ---------------------------------------------------------------------------
// Raw HTTP helpers (node:http, so nothing is decompressed or re-encoded
// behind the test's back as fetch does with Accept-Encoding).
// ---------------------------------------------------------------------------

import http from "node:http";
import type { HttpFrontendOptions } from "../src/frontends/http/http-server.js";

/** A response as it came off the wire. */
export interface RawResponse {
  status: number;
  headers: http.IncomingHttpHeaders;
  body: Buffer;
  /** The body parsed as JSON, when it is JSON. */
  json: any;
}

/** Sends one request with node:http and returns the undecoded response. */
export function httpRequest(
  url: string,
  options: { method?: string; headers?: Record<string, string | number>; body?: Uint8Array | string; agent?: http.Agent | false } = {},
): Promise<RawResponse> {
  return new Promise((resolve, reject) => {
    const req = http.request(url, { method: options.method ?? "GET", headers: options.headers, agent: options.agent }, (res) => {
      const chunks: Buffer[] = [];
      res.on("data", (c: Buffer) => chunks.push(c));
      res.on("error", reject);
      res.on("end", () => {
        const body = Buffer.concat(chunks);
        let json: any;
        const type = String(res.headers["content-type"] ?? "");
        if (type.startsWith("application/json") && !res.headers["content-encoding"] && body.byteLength) {
          try {
            json = JSON.parse(body.toString("utf8"));
          } catch {
            json = undefined;
          }
        }
        resolve({ status: res.statusCode ?? 0, headers: res.headers, body, json });
      });
    });
    req.on("error", reject);
    if (options.body !== undefined) req.end(options.body);
    else req.end();
  });
}

/** Starts core + HTTP frontend with frontend options (e.g. maxInputSize). */
export async function startServerWithHttp(
  options: Partial<CreateServerOptions> & { modelRepository: string | string[] },
  httpOptions: Omit<HttpFrontendOptions, "address" | "port">,
): Promise<TestServer> {
  const core = await createServer({ quiet: true, ...options });
  const front = new HttpFrontend(core, { ...httpOptions, address: "127.0.0.1", port: 0 });
  const port = await front.listen();
  return {
    core,
    url: `http://127.0.0.1:${port}`,
    async close() {
      const closing = front.close();
      await core.stop();
      front.closeAllConnections();
      await closing;
    },
  };
}

/** A binary-tensor-extension request body: JSON header then the tensors' bytes. */
export function binaryBody(header: unknown, tensors: readonly Uint8Array[]): { body: Buffer; headerLength: number } {
  const head = Buffer.from(JSON.stringify(header), "utf8");
  return { body: Buffer.concat([head, ...tensors]), headerLength: head.byteLength };
}

/** Posts a binary-tensor-extension request. */
export function postBinary(url: string, header: unknown, tensors: readonly Uint8Array[], headers: Record<string, string | number> = {}): Promise<RawResponse> {
  const { body, headerLength } = binaryBody(header, tensors);
  return httpRequest(url, {
    method: "POST",
    headers: { "Content-Type": "application/octet-stream", "Inference-Header-Content-Length": headerLength, ...headers },
    body,
  });
}

/**
 * Splits a response body by its Inference-Header-Content-Length: the JSON
 * header and, in output order, the raw bytes of each binary output.
 */
export function splitBinaryResponse(res: RawResponse): { header: any; binary: Map<string, Buffer> } {
  const hl = res.headers["inference-header-content-length"];
  const length = hl === undefined ? res.body.byteLength : Number(hl);
  const header = JSON.parse(res.body.toString("utf8", 0, length));
  const binary = new Map<string, Buffer>();
  let offset = length;
  for (const o of header.outputs ?? []) {
    const size = o.parameters?.binary_data_size;
    if (size === undefined) continue;
    binary.set(o.name, res.body.subarray(offset, offset + size));
    offset += size;
  }
  if (offset !== res.body.byteLength) throw new Error(`binary response has ${res.body.byteLength - offset} unclaimed bytes`);
  return { header, binary };
}

/** Serializes BYTES elements as the binary extension does: 4-byte LE length + bytes each. */
export function bytesElements(values: readonly (string | Uint8Array)[]): Buffer {
  return Buffer.concat(
    values.flatMap((v) => {
      const b = typeof v === "string" ? Buffer.from(v, "utf8") : Buffer.from(v);
      const len = Buffer.alloc(4);
      len.writeUInt32LE(b.byteLength);
      return [len, b];
    }),
  );
}

/** The bytes of a typed array (a view, no copy). */
export function bytesOf(v: ArrayBufferView): Buffer {
  return Buffer.from(v.buffer, v.byteOffset, v.byteLength);
}

// ---------------------------------------------------------------------------
// gRPC helpers: a @grpc/grpc-js client built from the generated descriptors,
// through the same service definition the server uses.
// ---------------------------------------------------------------------------

import * as grpcjs from "@grpc/grpc-js";
import type { DescMethodBiDiStreaming, DescMethodUnary, DescMessage, MessageInitShape, MessageShape } from "@bufbuild/protobuf";
import { GrpcFrontend, type GrpcFrontendOptions } from "../src/frontends/grpc/grpc-server.js";
import { serviceDefinition } from "../src/frontends/grpc/service-definition.js";

/** Core + HTTP + gRPC on ephemeral loopback ports. */
export interface GrpcTestServer extends TestServer {
  /** `127.0.0.1:<port>` of the gRPC frontend. */
  grpcAddress: string;
  grpc: GrpcFrontend;
}

export async function startGrpcServer(
  options: Partial<CreateServerOptions> & { modelRepository: string | string[] },
  grpcOptions: Omit<GrpcFrontendOptions, "address" | "port"> = {},
  httpOptions: Omit<HttpFrontendOptions, "address" | "port"> = {},
): Promise<GrpcTestServer> {
  const core = await createServer({ quiet: true, ...options });
  const http = new HttpFrontend(core, { ...httpOptions, address: "127.0.0.1", port: 0 });
  const grpc = new GrpcFrontend(core, { ...grpcOptions, address: "127.0.0.1", port: 0 });
  const [httpPort, grpcPort] = await Promise.all([http.listen(), grpc.listen()]);
  return {
    core,
    grpc,
    url: `http://127.0.0.1:${httpPort}`,
    grpcAddress: `127.0.0.1:${grpcPort}`,
    async close() {
      const closing = [http.close(), grpc.close()];
      await core.stop();
      http.closeAllConnections();
      grpc.closeAllConnections();
      await Promise.all(closing);
    },
  };
}

/** A gRPC error as @grpc/grpc-js reports it. */
export type GrpcError = grpcjs.ServiceError;

/** Calls any generated RPC by its descriptor, e.g. `client.unary(GRPCInferenceService.method.modelInfer, {...})`. */
export class GrpcTestClient {
  readonly client: grpcjs.Client;

  constructor(address: string, credentials: grpcjs.ChannelCredentials = grpcjs.credentials.createInsecure(), options: grpcjs.ChannelOptions = {}) {
    this.client = new grpcjs.Client(address, credentials, {
      "grpc.max_receive_message_length": -1,
      "grpc.max_send_message_length": -1,
      ...options,
    });
  }

  /** Starts a unary call; `call.cancel()` cancels it. */
  start<I extends DescMessage, O extends DescMessage>(
    method: DescMethodUnary<I, O>,
    request: MessageInitShape<I>,
    options: { metadata?: grpcjs.Metadata; deadline?: grpcjs.Deadline } = {},
  ): { call: grpcjs.ClientUnaryCall; response: Promise<MessageShape<O>> } {
    const def = serviceDefinition(method.parent)[method.name]!;
    let call!: grpcjs.ClientUnaryCall;
    const response = new Promise<MessageShape<O>>((resolve, reject) => {
      call = this.client.makeUnaryRequest(
        def.path,
        def.requestSerialize,
        def.responseDeserialize as (b: Buffer) => MessageShape<O>,
        request,
        options.metadata ?? new grpcjs.Metadata(),
        { deadline: options.deadline },
        (err, res) => (err ? reject(err) : resolve(res!)),
      );
    });
    return { call, response };
  }

  unary<I extends DescMessage, O extends DescMessage>(
    method: DescMethodUnary<I, O>,
    request: MessageInitShape<I>,
    options: { metadata?: grpcjs.Metadata; deadline?: grpcjs.Deadline } = {},
  ): Promise<MessageShape<O>> {
    return this.start(method, request, options).response;
  }

  /** Opens a bidirectional stream; write init objects or messages, read messages. */
  stream<I extends DescMessage, O extends DescMessage>(
    method: DescMethodBiDiStreaming<I, O>,
    options: { metadata?: grpcjs.Metadata; deadline?: grpcjs.Deadline } = {},
  ): grpcjs.ClientDuplexStream<MessageInitShape<I>, MessageShape<O>> {
    const def = serviceDefinition(method.parent)[method.name]!;
    return this.client.makeBidiStreamRequest(
      def.path,
      def.requestSerialize,
      def.responseDeserialize as (b: Buffer) => MessageShape<O>,
      options.metadata ?? new grpcjs.Metadata(),
      { deadline: options.deadline },
    );
  }

  close(): void {
    this.client.close();
  }
}

/** Every response of a bidirectional stream, once the server has ended it (rejects on a stream error). */
export function collectResponses<I, T>(stream: grpcjs.ClientDuplexStream<I, T>): Promise<T[]> {
  const responses: T[] = [];
  return new Promise((resolve, reject) => {
    stream.on("data", (r: T) => responses.push(r));
    stream.on("end", () => resolve(responses));
    stream.on("error", reject);
  });
}

/** Resolves with the error a promise rejects with; fails if it resolves. */
export async function grpcError(p: Promise<unknown>): Promise<GrpcError> {
  try {
    await p;
  } catch (e) {
    return e as GrpcError;
  }
  throw new Error("expected the call to fail");
}

/**
 * One test vector per datatype for the `identity_<type>` fixture models
 * (input INPUT0, output OUTPUT0, dims [-1], max_batch_size 8): the values as
 * HTTP JSON `data`, as raw little-endian bytes, and as the gRPC typed
 * `contents` field that carries them (none for FP16, which travels raw only).
 */
export interface DatatypeCase {
  model: string;
  datatype: string;
  json: unknown[];
  raw: Buffer;
  contents?: Record<string, unknown[]>;
}

export const DATATYPE_CASES: DatatypeCase[] = [
  { model: "identity_bool", datatype: "BOOL", json: [true, false, true], raw: Buffer.from([1, 0, 1]), contents: { boolContents: [true, false, true] } },
  { model: "identity_uint8", datatype: "UINT8", json: [0, 1, 255], raw: Buffer.from([0, 1, 255]), contents: { uintContents: [0, 1, 255] } },
  { model: "identity_uint16", datatype: "UINT16", json: [0, 65535, 1234], raw: bytesOf(new Uint16Array([0, 65535, 1234])), contents: { uintContents: [0, 65535, 1234] } },
  { model: "identity_uint32", datatype: "UINT32", json: [0, 4294967295, 7], raw: bytesOf(new Uint32Array([0, 4294967295, 7])), contents: { uintContents: [0, 4294967295, 7] } },
  {
    model: "identity_uint64", datatype: "UINT64", json: [0, 9007199254740991, 42],
    raw: bytesOf(new BigUint64Array([0n, 9007199254740991n, 42n])), contents: { uint64Contents: [0n, 9007199254740991n, 42n] },
  },
  { model: "identity_int8", datatype: "INT8", json: [-128, 127, 0], raw: bytesOf(new Int8Array([-128, 127, 0])), contents: { intContents: [-128, 127, 0] } },
  { model: "identity_int16", datatype: "INT16", json: [-32768, 32767, -1], raw: bytesOf(new Int16Array([-32768, 32767, -1])), contents: { intContents: [-32768, 32767, -1] } },
  {
    model: "identity_int32", datatype: "INT32", json: [-2147483648, 2147483647, 5],
    raw: bytesOf(new Int32Array([-2147483648, 2147483647, 5])), contents: { intContents: [-2147483648, 2147483647, 5] },
  },
  {
    model: "identity_int64", datatype: "INT64", json: [-9007199254740991, 9007199254740991, -1],
    raw: bytesOf(new BigInt64Array([-9007199254740991n, 9007199254740991n, -1n])), contents: { int64Contents: [-9007199254740991n, 9007199254740991n, -1n] },
  },
  // 1.0, -2.0, 65504 (the largest half)
  { model: "identity_fp16", datatype: "FP16", json: [1, -2, 65504], raw: bytesOf(new Uint16Array([0x3c00, 0xc000, 0x7bff])) },
  { model: "identity_fp32", datatype: "FP32", json: [1.5, -0.25, 1024], raw: bytesOf(new Float32Array([1.5, -0.25, 1024])), contents: { fp32Contents: [1.5, -0.25, 1024] } },
  {
    model: "identity_fp64", datatype: "FP64", json: [Math.PI, -1e300, 5e-324],
    raw: bytesOf(new Float64Array([Math.PI, -1e300, 5e-324])), contents: { fp64Contents: [Math.PI, -1e300, 5e-324] },
  },
  {
    model: "identity_bytes", datatype: "BYTES", json: ["hello", "", "wörld"],
    raw: bytesElements(["hello", "", "wörld"]), contents: { bytesContents: [Buffer.from("hello"), Buffer.from(""), Buffer.from("wörld")] },
  },
];

// ---------------------------------------------------------------------------
// The real CLI as a child process
// ---------------------------------------------------------------------------

import { spawn, type ChildProcess } from "node:child_process";

/** `node dist/src/cli/main.js`, running. */
export interface CliServer {
  child: ChildProcess;
  port: number;
  url: string;
  /** Everything it has written to stdout and stderr so far. */
  output(): string;
  /** Resolves with the exit code. */
  exited: Promise<number | null>;
  /** SIGTERM, then the exit code (SIGKILL after `graceMs`). */
  stop(graceMs?: number): Promise<number | null>;
}

/**
 * Starts the CLI with `args` (add `--http-port 0` for an ephemeral port) and
 * resolves once it logs "Started HTTPService at <addr>:<port>". `nodeFlags`
 * go to Node.js itself, before the script.
 */
export function startCli(args: string[], timeoutMs = 30_000, nodeFlags: string[] = []): Promise<CliServer> {
  const cli = path.join(ROOT, "dist", "src", "cli", "main.js");
  const child = spawn(process.execPath, [...nodeFlags, cli, ...args], { stdio: ["ignore", "pipe", "pipe"] });
  let output = "";
  const exited = new Promise<number | null>((resolve) => child.once("exit", (code) => resolve(code)));
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      child.kill("SIGKILL");
      reject(new Error(`CLI did not start in ${timeoutMs} ms:\n${output}`));
    }, timeoutMs);
    let started = false;
    const onData = (chunk: Buffer) => {
      output += chunk.toString();
      const m = started ? null : /Started HTTPService at [^\s"]+:(\d+)/.exec(output);
      if (!m) return;
      started = true;
      clearTimeout(timer);
      const port = Number(m[1]);
      resolve({
        child,
        port,
        url: `http://127.0.0.1:${port}`,
        output: () => output,
        exited,
        async stop(graceMs = 20_000) {
          if (child.exitCode !== null || child.signalCode !== null) return child.exitCode;
          child.kill("SIGTERM");
          const kill = setTimeout(() => child.kill("SIGKILL"), graceMs);
          const code = await exited;
          clearTimeout(kill);
          return code;
        },
      });
    };
    child.stdout!.on("data", onData);
    child.stderr!.on("data", onData);
    void exited.then((code) => {
      clearTimeout(timer);
      if (!started) reject(new Error(`CLI exited with ${code} before serving:\n${output}`));
    });
  });
}

/** Opens a fresh TCP connection (no keep-alive reuse); resolves with the error code, or "connected (<status>)". */
export function tryConnect(port: number): Promise<string> {
  return new Promise((resolve) => {
    const req = http.request({ host: "127.0.0.1", port, path: "/v2/health/live", agent: false }, (res) => {
      res.resume();
      resolve(`connected (${res.statusCode})`);
    });
    req.on("error", (e: NodeJS.ErrnoException) => resolve(e.code ?? e.message));
    req.end();
  });
}

/** Runs a Node.js script to its end, collecting what it prints. */
export function runNode(script: string, args: string[] = []): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [script, ...args], { stdio: ["ignore", "pipe", "pipe"] });
    let stdout = "";
    let stderr = "";
    child.stdout!.on("data", (c: Buffer) => (stdout += c.toString()));
    child.stderr!.on("data", (c: Buffer) => (stderr += c.toString()));
    child.on("error", reject);
    child.on("close", (code) => resolve({ code, stdout, stderr }));
  });
}

/** Resolves once `cond` holds, checking every 100 ms; fails after `timeoutMs`. */
export async function waitFor(cond: () => Promise<boolean>, timeoutMs = 15_000): Promise<void> {
  const end = Date.now() + timeoutMs;
  while (Date.now() < end) {
    if (await cond()) return;
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error("condition not met in time");
}
