import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import fs from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { after, before, describe, it } from "node:test";
import { status } from "@grpc/grpc-js";
import { Logger } from "../src/core/observability/logger.js";
import { GRPCInferenceService } from "../src/gen/inference/grpc_service_pb.js";
import {
  EXAMPLES,
  GrpcTestClient,
  ROOT,
  getJson,
  grpcError,
  httpRequest,
  postJson,
  startCli,
  startGrpcServer,
  startServer,
  tempRepository,
  type GrpcTestServer,
  type TestServer,
} from "./helpers.js";

const S = GRPCInferenceService.method;

function simpleBody(id?: string): unknown {
  return {
    ...(id ? { id } : {}),
    inputs: [
      { name: "INPUT0", shape: [1, 16], datatype: "INT32", data: new Array(16).fill(2) },
      { name: "INPUT1", shape: [1, 16], datatype: "INT32", data: new Array(16).fill(1) },
    ],
  };
}

const simpleRepo = () => tempRepository({ simple: path.join(EXAMPLES, "simple") });

const DEFAULTS = { log_file: "", log_info: true, log_warning: true, log_error: true, log_verbose_level: 0, log_format: "default" };
const { log_file: _file, ...DEFAULTS_WITHOUT_FILE } = DEFAULTS;

describe("logging extension over HTTP", () => {
  let s: TestServer;
  const lines: string[] = [];
  const verboseLines = () => lines.filter((l) => l.startsWith("V"));
  before(async () => {
    s = await startServer({ modelRepository: await simpleRepo(), logger: new Logger({}, (l) => lines.push(l)) });
  });
  after(async () => {
    await s.close();
  });

  it("reports the logger's settings with Triton's keys, order and types", async () => {
    const res = await getJson(`${s.url}/v2/logging`);
    assert.equal(res.status, 200);
    assert.deepEqual(Object.keys(res.json), Object.keys(DEFAULTS));
    assert.deepEqual(res.json, DEFAULTS);
  });

  it("turns verbose request logging on and off at run time", async () => {
    lines.length = 0;
    await postJson(`${s.url}/v2/models/simple/infer`, simpleBody("quiet"));
    assert.deepEqual(verboseLines(), []);

    const res = await postJson(`${s.url}/v2/logging`, { log_verbose_level: 1 });
    assert.deepEqual([res.status, res.json], [200, { ...DEFAULTS, log_verbose_level: 1 }]);
    assert.equal((await postJson(`${s.url}/v2/models/simple/infer`, simpleBody("loud"))).status, 200);
    const v = verboseLines();
    assert.equal(v.length, 1, lines.join(""));
    assert.match(v[0]!, /^V\d{4} \d\d:\d\d:\d\d\.\d{6} \d+ infer_request\.ts\] "inference request for 'simple' version 1 \(id 'loud'\): succeeded in \d+ us \(queue \d+ us, compute input \d+ us, infer \d+ us, output \d+ us\)"\n$/);

    await postJson(`${s.url}/v2/logging`, { log_verbose_level: 0 });
    await postJson(`${s.url}/v2/models/simple/infer`, simpleBody("quiet again"));
    assert.equal(verboseLines().length, 1);
  });

  it("switches info, warning and error lines and the line format at once", async () => {
    lines.length = 0;
    let res = await postJson(`${s.url}/v2/logging`, { log_info: false, log_warning: false, log_format: "ISO8601" });
    assert.deepEqual(res.json, { ...DEFAULTS, log_info: false, log_warning: false, log_format: "ISO8601" });
    s.core.logger.info("test.ts", "hidden");
    s.core.logger.warn("test.ts", "hidden too");
    s.core.logger.error("test.ts", "shown");
    assert.equal(lines.length, 1);
    assert.match(lines[0]!, /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ E \d+ test\.ts\] "shown"\n$/);

    // Tritium's JSON lines.
    res = await postJson(`${s.url}/v2/logging`, { log_info: true, log_warning: true, log_format: "json", log_verbose_level: 1 });
    assert.equal(res.json.log_format, "json");
    lines.length = 0;
    await postJson(`${s.url}/v2/models/simple/infer`, simpleBody());
    s.core.logger.info("test.ts", "as json");
    const parsed = lines.map((l) => JSON.parse(l));
    assert.deepEqual(parsed.map((p) => [p.level, p.file]), [["VERBOSE", "infer_request.ts"], ["INFO", "test.ts"]]);
    assert.deepEqual(Object.keys(parsed[1]), ["time", "level", "pid", "file", "message"]);
    assert.equal(parsed[1].message, "as json");
    assert.ok(!Number.isNaN(Date.parse(parsed[1].time)));
    await postJson(`${s.url}/v2/logging`, DEFAULTS_WITHOUT_FILE);
  });

  it("refuses bad values with Triton's messages and changes nothing", async () => {
    const cases: [unknown, number, string][] = [
      [{ log_file: "/tmp/other.log" }, 501, "log file location can not be updated through network protocol"],
      [{ log_info: "yes" }, 400, "attempt to access JSON non-boolean as boolean"],
      [{ log_verbose_level: -1 }, 400, "attempt to access JSON non-unsigned-integer as unsigned-integer"],
      [{ log_verbose_level: 1.5 }, 400, "attempt to access JSON non-unsigned-integer as unsigned-integer"],
      [{ log_format: 8601 }, 400, "attempt to access JSON non-string as string"],
      [{ log_warning: false, log_format: "xml" }, 400, "invalid argument for log_format, got: xml"],
    ];
    for (const [body, code, error] of cases) {
      const res = await postJson(`${s.url}/v2/logging`, body);
      assert.deepEqual([res.status, res.json], [code, { error }], JSON.stringify(body));
    }
    const bad = await httpRequest(`${s.url}/v2/logging`, { method: "POST", body: "not json" });
    assert.equal(bad.status, 400);
    assert.match(bad.json.error, /^failed to parse the request JSON buffer: /);
    assert.deepEqual((await getJson(`${s.url}/v2/logging`)).json, DEFAULTS);
    // null leaves a setting as it is; unknown keys are ignored.
    const res = await postJson(`${s.url}/v2/logging`, { log_file: null, log_info: null, colour: "blue" });
    assert.deepEqual([res.status, res.json], [200, DEFAULTS]);
    assert.equal((await httpRequest(`${s.url}/v2/logging`, { method: "PUT" })).status, 405);
  });
});

describe("logging extension over gRPC", () => {
  let s: GrpcTestServer;
  let c: GrpcTestClient;
  before(async () => {
    s = await startGrpcServer({ modelRepository: await simpleRepo(), logger: new Logger({}, () => undefined) });
    c = new GrpcTestClient(s.grpcAddress);
  });
  after(async () => {
    c.close();
    await s.close();
  });

  it("LogSettings reads and updates the same settings as HTTP, each in its oneof case", async () => {
    const plain = (res: { settings: Record<string, { parameterChoice: { case?: string; value?: unknown } }> }) =>
      Object.fromEntries(Object.entries(res.settings).map(([k, v]) => [k, [v.parameterChoice.case, v.parameterChoice.value]]));
    assert.deepEqual(plain(await c.unary(S.logSettings, {})), {
      log_file: ["stringParam", ""], log_info: ["boolParam", true], log_warning: ["boolParam", true], log_error: ["boolParam", true],
      log_verbose_level: ["uint32Param", 0], log_format: ["stringParam", "default"],
    });
    const updated = plain(await c.unary(S.logSettings, {
      settings: { log_verbose_level: { parameterChoice: { case: "uint32Param", value: 2 } }, log_error: { parameterChoice: { case: "boolParam", value: false } } },
    }));
    assert.deepEqual([updated.log_verbose_level, updated.log_error], [["uint32Param", 2], ["boolParam", false]]);
    assert.deepEqual((await getJson(`${s.url}/v2/logging`)).json, { ...DEFAULTS, log_verbose_level: 2, log_error: false });

    let err = await grpcError(c.unary(S.logSettings, { settings: { log_verbose_level: { parameterChoice: { case: "boolParam", value: true } } } }));
    assert.deepEqual([err.code, err.details], [status.INVALID_ARGUMENT, "expect int32 for 'log_verbose_level'"]);
    err = await grpcError(c.unary(S.logSettings, { settings: { log_info: { parameterChoice: { case: "stringParam", value: "true" } } } }));
    assert.deepEqual([err.code, err.details], [status.INVALID_ARGUMENT, "expect boolean for 'log_info'"]);
    err = await grpcError(c.unary(S.logSettings, { settings: { log_format: { parameterChoice: { case: "stringParam", value: "xml" } } } }));
    assert.deepEqual([err.code, err.details], [status.INVALID_ARGUMENT, "invalid argument for log_format, got: xml"]);
    err = await grpcError(c.unary(S.logSettings, { settings: { log_file: { parameterChoice: { case: "stringParam", value: "/x" } } } }));
    assert.deepEqual([err.code, err.details], [status.UNIMPLEMENTED, "log file location can not be updated through network protocol"]);
  });
});

describe("logging flags", () => {
  it("--log-format=json writes JSON lines, and --log-verbose=1 a line per request", { timeout: 30_000 }, async () => {
    const cli = await startCli([
      "--model-repository", await simpleRepo(), "--http-address", "127.0.0.1", "--http-port", "0", "--allow-grpc", "false", "--allow-metrics", "false",
      "--log-format=json", "--log-verbose=1",
    ]);
    try {
      assert.deepEqual((await getJson(`${cli.url}/v2/logging`)).json, { ...DEFAULTS, log_verbose_level: 1, log_format: "json" });
      assert.equal((await postJson(`${cli.url}/v2/models/simple/infer`, simpleBody("cli"))).status, 200);
    } finally {
      assert.equal(await cli.stop(), 0);
    }
    const records = cli.output().split("\n").filter((l) => l.trim() !== "").map((l) => JSON.parse(l));
    assert.ok(records.some((r) => r.level === "INFO" && /^Started HTTPService at 127\.0\.0\.1:\d+$/.test(r.message)));
    assert.ok(records.some((r) => r.level === "VERBOSE" && r.message.startsWith("inference request for 'simple' version 1 (id 'cli'): succeeded")));
  });

  it("--log-file sends every line to the file, which the API reports and cannot change", { timeout: 30_000 }, async () => {
    const dir = await fs.mkdtemp(path.join(os.tmpdir(), "tritium-log-"));
    const file = path.join(dir, "server.log");
    const child = spawn(process.execPath, [
      path.join(ROOT, "dist", "src", "cli", "main.js"),
      "--model-repository", await simpleRepo(), "--http-address", "127.0.0.1", "--http-port", "0", "--allow-grpc", "false", "--allow-metrics", "false",
      "--log-file", file, "--log-verbose", "1",
    ], { stdio: ["ignore", "pipe", "pipe"] });
    let stderr = "";
    child.stderr!.on("data", (c: Buffer) => (stderr += c.toString()));
    const exited = new Promise<number | null>((resolve) => child.once("exit", (code) => resolve(code)));
    try {
      let port: number | undefined;
      for (const end = Date.now() + 20_000; port === undefined && Date.now() < end; ) {
        const m = /Started HTTPService at [^\s"]+:(\d+)/.exec(await fs.readFile(file, "utf8").catch(() => ""));
        if (m) port = Number(m[1]);
        else await new Promise((r) => setTimeout(r, 50));
      }
      assert.ok(port, `the CLI did not log its port to ${file}`);
      const url = `http://127.0.0.1:${port}`;
      assert.equal((await getJson(`${url}/v2/logging`)).json.log_file, file);
      assert.equal((await postJson(`${url}/v2/logging`, { log_file: path.join(dir, "other.log") })).status, 501);
      assert.equal((await postJson(`${url}/v2/models/simple/infer`, simpleBody("to-file"))).status, 200);
    } finally {
      child.kill("SIGTERM");
      assert.equal(await exited, 0);
    }
    const log = await fs.readFile(file, "utf8");
    assert.match(log, /^I\d{4} .* server\.ts\]\n\+---/m, "start-up tables");
    assert.match(log, /^V\d{4} .* infer_request\.ts\] "inference request for 'simple' version 1 \(id 'to-file'\): succeeded/m);
    assert.match(log, /"Server stopped"\n$/);
    assert.equal(stderr, "", "nothing goes to stderr");
  });
});
