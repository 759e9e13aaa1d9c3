import assert from "node:assert/strict";
import fs from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { after, before, describe, it } from "node:test";
import { status } from "@grpc/grpc-js";
import { GRPCInferenceService } from "../src/gen/inference/grpc_service_pb.js";
import type { TraceOptions } from "../src/core/settings/trace-settings.js";
import { parseTraceConfig } from "../src/core/settings/trace-config.js";
import { formatFloat } from "../src/core/observability/trace-record.js";
import {
  EXAMPLES,
  GrpcTestClient,
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

/** A request for `simple`: INPUT0 = 0..15, INPUT1 = 1. */
function simpleBody(id?: string): unknown {
  return {
    ...(id ? { id } : {}),
    inputs: [
      { name: "INPUT0", shape: [1, 16], datatype: "INT32", data: Array.from({ length: 16 }, (_, i) => i) },
      { name: "INPUT1", shape: [1, 16], datatype: "INT32", data: new Array(16).fill(1) },
    ],
  };
}

async function infer(s: TestServer, n: number, model = "simple"): Promise<void> {
  for (let i = 0; i < n; i++) {
    const res = await postJson(`${s.url}/v2/models/${model}/infer`, simpleBody(`req-${i}`));
    assert.equal(res.status, 200, JSON.stringify(res.json));
  }
}

/** A repository with `simple` only (fast to load). */
const simpleRepo = () => tempRepository({ simple: path.join(EXAMPLES, "simple") });

async function tempTraceFile(): Promise<string> {
  return path.join(await fs.mkdtemp(path.join(os.tmpdir(), "tritium-trace-")), "trace.json");
}

/** The traces of a trace file, grouped by id: the header object and the other entries. */
function byTrace(entries: any[]): Map<number, { head: any; timestamps: string[]; ns: bigint[]; tensors: any[] }> {
  const traces = new Map<number, { head: any; timestamps: string[]; ns: bigint[]; tensors: any[] }>();
  for (const e of entries) {
    let t = traces.get(e.id);
    if (!t) traces.set(e.id, (t = { head: undefined, timestamps: [], ns: [], tensors: [] }));
    if ("model_name" in e) t.head = e;
    else if ("timestamps" in e) {
      for (const ts of e.timestamps) {
        t.timestamps.push(ts.name);
        t.ns.push(BigInt(ts.ns));
      }
    } else if ("activity" in e) t.tensors.push(e);
  }
  return traces;
}

const TIMELINE = ["REQUEST_START", "QUEUE_START", "COMPUTE_START", "COMPUTE_INPUT_END", "COMPUTE_OUTPUT_START", "COMPUTE_END", "REQUEST_END"];

describe("trace extension settings over HTTP", () => {
  let s: TestServer;
  let file: string;
  before(async () => {
    file = await tempTraceFile();
    s = await startServer({ modelRepository: await simpleRepo(), trace: { file } });
  });
  after(async () => {
    await s.close();
  });

  it("reports the global setting with Triton's keys, order and string values", async () => {
    const res = await getJson(`${s.url}/v2/trace/setting`);
    assert.equal(res.status, 200);
    assert.deepEqual(Object.keys(res.json), ["trace_level", "trace_rate", "trace_count", "log_frequency", "trace_file", "trace_mode"]);
    assert.deepEqual(res.json, { trace_level: ["OFF"], trace_rate: "1000", trace_count: "-1", log_frequency: "0", trace_file: file, trace_mode: "TRITON" });
  });

  it("updates only the settings given and answers with the whole setting", async () => {
    let res = await postJson(`${s.url}/v2/trace/setting`, { trace_level: ["TIMESTAMPS"], trace_rate: "5" });
    assert.equal(res.status, 200);
    assert.deepEqual(res.json, { trace_level: ["TIMESTAMPS"], trace_rate: "5", trace_count: "-1", log_frequency: "0", trace_file: file, trace_mode: "TRITON" });
    res = await postJson(`${s.url}/v2/trace/setting`, { log_frequency: "3" });
    assert.deepEqual([res.json.trace_level, res.json.trace_rate, res.json.log_frequency], [["TIMESTAMPS"], "5", "3"]);
    // null resets a global setting to its start-up value.
    res = await postJson(`${s.url}/v2/trace/setting`, { trace_rate: null, log_frequency: null, trace_level: ["OFF"] });
    assert.deepEqual(res.json, { trace_level: ["OFF"], trace_rate: "1000", trace_count: "-1", log_frequency: "0", trace_file: file, trace_mode: "TRITON" });
  });

  it("refuses bad values with Triton's messages and changes nothing", async () => {
    const cases: [unknown, number, string][] = [
      [{ trace_file: "/tmp/elsewhere.json" }, 501, "trace file location can not be updated through network protocol"],
      [{ trace_rate: "abc" }, 400, "Unable to parse 'trace_rate', got: abc"],
      [{ trace_rate: "4294967296" }, 400, "Unable to parse 'trace_rate', value is out of range [ 0, 4294967295 ], got: 4294967296"],
      [{ trace_count: "-5" }, 400, "Unable to parse 'trace_count'. Expecting value >= -1, got: -5"],
      [{ log_frequency: "x1" }, 400, "Unable to parse 'log_frequency', got: x1"],
      [{ trace_level: ["OFF", "TIMESTAMPS"] }, 400, "Expect only one trace level 'OFF' is specified"],
      [{ trace_level: "TIMESTAMPS" }, 400, "attempt to access JSON non-array as array"],
      [{ trace_rate: 5 }, 400, "attempt to access JSON non-string as string"],
      [{ trace_rate: "0", trace_level: ["TIMESTAMPS"] }, 400, "Attempting to set invalid trace setting :sample rate must be non-zero"],
    ];
    for (const [body, code, error] of cases) {
      const res = await postJson(`${s.url}/v2/trace/setting`, body);
      assert.deepEqual([res.status, res.json], [code, { error }], JSON.stringify(body));
    }
    assert.equal((await getJson(`${s.url}/v2/trace/setting`)).json.trace_rate, "1000");
  });

  it("keeps model settings that follow the global ones for the fields they do not set", async () => {
    let res: { status: number; json: any } = await postJson(`${s.url}/v2/models/simple/trace/setting`, { trace_rate: "7" });
    assert.equal(res.status, 200);
    assert.deepEqual([res.json.trace_level, res.json.trace_rate], [["OFF"], "7"]);
    // The global level changes: the model follows it; the global rate changes: the model keeps its own.
    await postJson(`${s.url}/v2/trace/setting`, { trace_level: ["TIMESTAMPS"], trace_rate: "9" });
    res = await getJson(`${s.url}/v2/models/simple/trace/setting`);
    assert.deepEqual([res.json.trace_level, res.json.trace_rate], [["TIMESTAMPS"], "7"]);
    // null resets the model's field to the global one; with nothing left of its own, the model uses the global setting.
    res = await postJson(`${s.url}/v2/models/simple/trace/setting`, { trace_rate: null });
    assert.deepEqual([res.json.trace_level, res.json.trace_rate], [["TIMESTAMPS"], "9"]);
    await postJson(`${s.url}/v2/trace/setting`, { trace_level: ["OFF"], trace_rate: null });
    assert.equal((await getJson(`${s.url}/v2/models/simple/trace/setting`)).json.trace_rate, "1000");
  });

  it("answers unknown models, version paths and other verbs as Triton does", async () => {
    let res = await postJson(`${s.url}/v2/models/nope/trace/setting`, { trace_rate: "1" });
    assert.deepEqual([res.status, res.json], [400, { error: "Request for unknown model : nope" }]);
    assert.equal((await getJson(`${s.url}/v2/models/nope/trace/setting`)).status, 400);
    assert.equal((await getJson(`${s.url}/v2/models/simple/versions/1/trace/setting`)).status, 404);
    assert.equal((await httpRequest(`${s.url}/v2/trace/setting`, { method: "PUT" })).status, 405);
    assert.equal((await httpRequest(`${s.url}/v2/logging`, { method: "DELETE" })).status, 405);
  });

  it("lists trace and logging among the server's extensions", async () => {
    const ext: string[] = (await getJson(`${s.url}/v2`)).json.extensions;
    assert.ok(ext.includes("trace") && ext.includes("logging"), JSON.stringify(ext));
    assert.ok(ext.indexOf("statistics") < ext.indexOf("trace") && ext.indexOf("trace") < ext.indexOf("logging"));
  });

  it("refuses to turn tracing on without a trace file", async () => {
    const t = await startServer({ modelRepository: await simpleRepo() });
    try {
      const res = await postJson(`${t.url}/v2/trace/setting`, { trace_level: ["TIMESTAMPS"] });
      assert.deepEqual([res.status, res.json], [400, { error: "Attempting to set invalid trace setting :trace file name is not given" }]);
    } finally {
      await t.close();
    }
  });
});

describe("trace files", () => {
  async function traced(trace: TraceOptions, run: (s: TestServer) => Promise<void>): Promise<void> {
    const s = await startServer({ modelRepository: await simpleRepo(), trace });
    try {
      await run(s);
    } finally {
      await s.close();
    }
  }

  it("writes Triton's trace JSON with every timestamp of each request at shutdown (log_frequency 0)", async () => {
    const file = await tempTraceFile();
    await traced({ file, level: ["TIMESTAMPS"], rate: 1 }, async (s) => {
      await infer(s, 3);
    });
    const entries = JSON.parse(await fs.readFile(file, "utf8"));
    assert.ok(Array.isArray(entries));
    const traces = byTrace(entries);
    assert.equal(traces.size, 3);
    for (const [id, t] of traces) {
      assert.deepEqual(t.head, { id, model_name: "simple", model_version: 1, request_id: `req-${id - 1}` });
      assert.deepEqual(t.timestamps, TIMELINE);
      for (let i = 1; i < t.ns.length; i++) assert.ok(t.ns[i]! >= t.ns[i - 1]!, `${t.timestamps[i]} before ${t.timestamps[i - 1]}`);
      assert.ok(t.ns[0]! > 0n);
      assert.deepEqual(t.tensors, []);
    }
    // Each timestamp is an object of its own, as Triton writes them.
    assert.deepEqual(Object.keys(entries[1]), ["id", "timestamps"]);
    assert.equal(entries[1].timestamps.length, 1);
  });

  it("traces every trace_rate-th request until trace_count traces are taken, then writes them to <file>.0", async () => {
    const file = await tempTraceFile();
    await traced({ file, level: ["TIMESTAMPS"], rate: 2, count: 2 }, async (s) => {
      await infer(s, 7);
      assert.equal((await getJson(`${s.url}/v2/trace/setting`)).json.trace_count, "0");
      await s.core.flushTraces();
      const traces = byTrace(JSON.parse(await fs.readFile(`${file}.0`, "utf8")));
      // Requests 2 and 4 (ids in sampling order).
      assert.deepEqual([...traces.values()].map((t) => t.head.request_id), ["req-1", "req-3"]);
    });
    await assert.rejects(fs.access(file), "nothing is left for the trace file itself");
  });

  it("writes every log_frequency traces to the next indexed file while serving", async () => {
    const file = await tempTraceFile();
    await traced({ file, level: ["TIMESTAMPS"], rate: 1, logFrequency: 2 }, async (s) => {
      await infer(s, 5);
      await s.core.flushTraces();
      const first = byTrace(JSON.parse(await fs.readFile(`${file}.0`, "utf8")));
      const second = byTrace(JSON.parse(await fs.readFile(`${file}.1`, "utf8")));
      assert.deepEqual([...first.keys()], [1, 2]);
      assert.deepEqual([...second.keys()], [3, 4]);
      await assert.rejects(fs.access(`${file}.2`));
    });
    // The fifth is written at shutdown, to the next index.
    assert.deepEqual([...byTrace(JSON.parse(await fs.readFile(`${file}.2`, "utf8"))).keys()], [5]);
  });

  it("appends traces to the trace file while serving when log_frequency is 0, instead of holding them until shutdown", async () => {
    const file = await tempTraceFile();
    await traced({ file, level: ["TIMESTAMPS"], rate: 1 }, async (s) => {
      await infer(s, 300);
      await s.core.flushTraces();
      const written = byTrace(JSON.parse(await fs.readFile(file, "utf8")));
      assert.ok(written.size >= 256 && written.size < 300, `${written.size} traces written while serving`);
    });
    assert.equal(byTrace(JSON.parse(await fs.readFile(file, "utf8"))).size, 300);
  });

  it("writes held traces when a setting changes, and keeps the trace file a valid JSON array", async () => {
    const file = await tempTraceFile();
    await traced({ file, level: ["TIMESTAMPS"], rate: 1 }, async (s) => {
      await infer(s, 2);
      await postJson(`${s.url}/v2/trace/setting`, { trace_rate: "1" });
      await s.core.flushTraces();
      assert.equal(byTrace(JSON.parse(await fs.readFile(file, "utf8"))).size, 2);
      await infer(s, 1);
    });
    assert.deepEqual([...byTrace(JSON.parse(await fs.readFile(file, "utf8"))).keys()], [1, 2, 3]);
  });

  it("traces a model by its own setting while the global setting is off", async () => {
    const file = await tempTraceFile();
    await traced({ file, level: [], rate: 1 }, async (s) => {
      await infer(s, 1);
      const res = await postJson(`${s.url}/v2/models/simple/trace/setting`, { trace_level: ["TIMESTAMPS"] });
      assert.deepEqual([res.json.trace_level, (await getJson(`${s.url}/v2/trace/setting`)).json.trace_level], [["TIMESTAMPS"], ["OFF"]]);
      await infer(s, 2);
    });
    assert.equal(byTrace(JSON.parse(await fs.readFile(file, "utf8"))).size, 2);
  });

  it("writes input and output tensors at the TENSORS level", async () => {
    const file = await tempTraceFile();
    await traced({ file, level: ["TIMESTAMPS", "TENSORS"], rate: 1 }, async (s) => {
      await infer(s, 1);
    });
    const entries = JSON.parse(await fs.readFile(file, "utf8"));
    const t = byTrace(entries).get(1)!;
    assert.deepEqual(t.timestamps, TIMELINE);
    const tensors = Object.fromEntries(t.tensors.map((e) => [`${e.activity} ${e.tensor.name}`, e.tensor]));
    assert.deepEqual(Object.keys(tensors), ["TENSOR_QUEUE_INPUT INPUT0", "TENSOR_QUEUE_INPUT INPUT1", "TENSOR_BACKEND_OUTPUT OUTPUT0", "TENSOR_BACKEND_OUTPUT OUTPUT1"]);
    assert.deepEqual(tensors["TENSOR_QUEUE_INPUT INPUT0"], { name: "INPUT0", data: Array.from({ length: 16 }, (_, i) => i).join(","), shape: "1,16", dtype: "INT32" });
    assert.equal(tensors["TENSOR_BACKEND_OUTPUT OUTPUT0"].data, Array.from({ length: 16 }, (_, i) => i + 1).join(","));
    assert.equal(tensors["TENSOR_BACKEND_OUTPUT OUTPUT1"].data, Array.from({ length: 16 }, (_, i) => i - 1).join(","));
    // Inputs follow QUEUE_START, outputs COMPUTE_END, where Triton reports them.
    const order = entries.map((e: any) => e.timestamps?.[0].name ?? e.activity ?? "HEAD");
    assert.ok(order.indexOf("TENSOR_QUEUE_INPUT") === order.indexOf("QUEUE_START") + 1);
    assert.ok(order.indexOf("TENSOR_BACKEND_OUTPUT") === order.indexOf("COMPUTE_END") + 1);
  });

  it("formats float tensor elements as C++ streams do", () => {
    assert.deepEqual(
      [0.1, 1.5, -0.25, 1024, 1e-7, 123456789, 1 / 3, 0, NaN, -Infinity].map(formatFloat),
      ["0.1", "1.5", "-0.25", "1024", "1e-07", "1.23457e+08", "0.333333", "0", "nan", "-inf"],
    );
  });
});

describe("trace flags", () => {
  it("parses --trace-config and the deprecated --trace-* flags as tritonserver does", () => {
    assert.deepEqual(parseTraceConfig(["triton,file=/tmp/t.json", "triton,log-frequency=50", "rate=100", "level=TIMESTAMPS", "level=TENSORS", "count=100"]), {
      file: "/tmp/t.json", logFrequency: 50, rate: 100, count: 100, level: ["TIMESTAMPS", "TENSORS"],
    });
    assert.deepEqual(parseTraceConfig(["mode=opentelemetry", "opentelemetry,url=http://h:4318/v1/traces", "opentelemetry,resource=service.name=x", "opentelemetry,bsp_schedule_delay=10"]), {
      mode: "opentelemetry", opentelemetry: { url: "http://h:4318/v1/traces", resource: { "service.name": "x" }, bspScheduleDelay: 10 },
    });
    // --trace-config wins over the deprecated flags.
    assert.deepEqual(parseTraceConfig(["rate=3"], { file: "/f", level: ["TIMESTAMPS"], rate: 10, count: 5, logFrequency: 2 }), {
      file: "/f", level: ["TIMESTAMPS"], rate: 3, count: 5, logFrequency: 2,
    });
    assert.deepEqual(parseTraceConfig(["level=TIMESTAMPS", "level=OFF"]), { level: [] });
    assert.throws(() => parseTraceConfig(["level=LOUD"]), /unknown trace level 'LOUD'/);
    assert.throws(() => parseTraceConfig(["jaeger,url=x"]), /unknown trace mode 'jaeger'/);
    assert.throws(() => parseTraceConfig(["count=-2"]), /trace count must be -1/);
    assert.throws(() => parseTraceConfig(["rate"]), /expected \[<mode>,\]<setting>=<value>/);
  });

  it("the CLI traces with --trace-config and writes the file when it stops", { timeout: 30_000 }, async () => {
    const repo = await simpleRepo();
    const file = await tempTraceFile();
    const cli = await startCli([
      "--model-repository", repo, "--http-address", "127.0.0.1", "--http-port", "0", "--allow-grpc", "false", "--allow-metrics", "false",
      "--trace-config", `triton,file=${file}`, "--trace-config", "level=TIMESTAMPS", "--trace-config", "rate=1", "--trace-rate", "50",
    ]);
    try {
      const setting = await getJson(`${cli.url}/v2/trace/setting`);
      assert.deepEqual([setting.json.trace_level, setting.json.trace_rate, setting.json.trace_file], [["TIMESTAMPS"], "1", file]);
      assert.match(cli.output(), /--trace-rate is deprecated; use --trace-config/);
      await infer({ url: cli.url } as TestServer, 2);
    } finally {
      assert.equal(await cli.stop(), 0);
    }
    assert.equal(byTrace(JSON.parse(await fs.readFile(file, "utf8"))).size, 2);
  });
});

describe("trace extension over gRPC", () => {
  let s: GrpcTestServer;
  let c: GrpcTestClient;
  let file: string;
  before(async () => {
    file = await tempTraceFile();
    s = await startGrpcServer({ modelRepository: await simpleRepo(), trace: { file } });
    c = new GrpcTestClient(s.grpcAddress);
  });
  after(async () => {
    c.close();
    await s.close();
  });

  it("TraceSetting reads and updates the same settings as HTTP, with Triton's errors", async () => {
    const value = (res: { settings: Record<string, { value: string[] }> }) => Object.fromEntries(Object.entries(res.settings).map(([k, v]) => [k, v.value]));
    assert.deepEqual(value(await c.unary(S.traceSetting, {})), {
      trace_level: ["OFF"], trace_rate: ["1000"], trace_count: ["-1"], log_frequency: ["0"], trace_file: [file], trace_mode: ["TRITON"],
    });
    const updated = value(await c.unary(S.traceSetting, { modelName: "simple", settings: { trace_level: { value: ["TIMESTAMPS"] }, trace_rate: { value: ["3"] } } }));
    assert.deepEqual([updated.trace_level, updated.trace_rate], [["TIMESTAMPS"], ["3"]]);
    assert.deepEqual((await getJson(`${s.url}/v2/models/simple/trace/setting`)).json.trace_rate, "3");
    // An empty list resets the setting (HTTP's null).
    const reset = value(await c.unary(S.traceSetting, { modelName: "simple", settings: { trace_rate: { value: [] } } }));
    assert.deepEqual([reset.trace_level, reset.trace_rate], [["TIMESTAMPS"], ["1000"]]);

    let err = await grpcError(c.unary(S.traceSetting, { settings: { trace_file: { value: ["/x"] } } }));
    assert.deepEqual([err.code, err.details], [status.UNIMPLEMENTED, "trace file location can not be updated through network protocol"]);
    err = await grpcError(c.unary(S.traceSetting, { settings: { trace_rate: { value: ["1", "2"] } } }));
    assert.deepEqual([err.code, err.details], [status.INVALID_ARGUMENT, "expect only 1 value for 'trace_rate'"]);
    err = await grpcError(c.unary(S.traceSetting, { modelName: "nope" }));
    assert.deepEqual([err.code, err.details], [status.INVALID_ARGUMENT, "Request for unknown model : nope"]);
  });
});
