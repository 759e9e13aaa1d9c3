import assert from "node:assert/strict";
import http from "node:http";
import type { AddressInfo } from "node:net";
import path from "node:path";
import { after, before, describe, it } from "node:test";
import { Logger } from "../src/core/observability/logger.js";
import { EXAMPLES, getJson, postJson, startCli, startServer, tempRepository, type TestServer } from "./helpers.js";

/** An OTLP span as the OTLP/HTTP JSON encoding carries it. */
interface OtlpSpan {
  traceId: string;
  spanId: string;
  parentSpanId?: string;
  name: string;
  kind: number;
  startTimeUnixNano: string;
  endTimeUnixNano: string;
  attributes?: { key: string; value: Record<string, unknown> }[];
  events?: { name: string; timeUnixNano: string }[];
}

/**
 * A stand-in for an OpenTelemetry collector: an OTLP/HTTP receiver on
 * loopback that keeps every span it is sent (JSON encoding).
 */
class Collector {
  readonly spans: OtlpSpan[] = [];
  readonly resources: Record<string, unknown>[] = [];
  readonly contentTypes: string[] = [];
  private readonly server = http.createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on("data", (c: Buffer) => chunks.push(c));
    req.on("end", () => {
      this.contentTypes.push(String(req.headers["content-type"]));
      if (req.url === "/v1/traces" && req.method === "POST") {
        const body = JSON.parse(Buffer.concat(chunks).toString("utf8"));
        for (const rs of body.resourceSpans ?? []) {
          this.resources.push(attributes(rs.resource?.attributes));
          for (const ss of rs.scopeSpans ?? []) this.spans.push(...(ss.spans ?? []));
        }
      }
      res.writeHead(200, { "Content-Type": "application/json" });
      res.end("{}");
    });
  });

  async listen(): Promise<string> {
    await new Promise<void>((resolve) => this.server.listen(0, "127.0.0.1", resolve));
    return `http://127.0.0.1:${(this.server.address() as AddressInfo).port}/v1/traces`;
  }

  async waitForSpans(n: number, timeoutMs = 10_000): Promise<void> {
    const end = Date.now() + timeoutMs;
    while (this.spans.length < n) {
      if (Date.now() > end) throw new Error(`collector received ${this.spans.length} spans, expected ${n}`);
      await new Promise((r) => setTimeout(r, 20));
    }
  }

  close(): Promise<void> {
    this.server.closeAllConnections();
    return new Promise((resolve) => this.server.close(() => resolve()));
  }
}

function attributes(list: { key: string; value: Record<string, unknown> }[] | undefined): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const a of list ?? []) {
    const v = a.value;
    out[a.key] = v.stringValue ?? (v.intValue !== undefined ? Number(v.intValue) : v.boolValue ?? v.doubleValue);
  }
  return out;
}

function simpleBody(id: string): unknown {
  return {
    id,
    inputs: [
      { name: "INPUT0", shape: [1, 16], datatype: "INT32", data: new Array(16).fill(2) },
      { name: "INPUT1", shape: [1, 16], datatype: "INT32", data: new Array(16).fill(1) },
    ],
  };
}

/** The spans of each traced request: root InferRequest, model span, compute span. */
function requests(spans: OtlpSpan[]): { root: OtlpSpan; model: OtlpSpan; compute: OtlpSpan }[] {
  return spans
    .filter((s) => s.name === "InferRequest")
    .map((root) => {
      const model = spans.find((s) => s.parentSpanId === root.spanId)!;
      const compute = spans.find((s) => s.parentSpanId === model?.spanId)!;
      return { root, model, compute };
    });
}

describe("OpenTelemetry trace export", () => {
  let collector: Collector;
  let url: string;
  let s: TestServer;
  before(async () => {
    collector = new Collector();
    url = await collector.listen();
    s = await startServer({
      modelRepository: await tempRepository({ simple: path.join(EXAMPLES, "simple") }),
      trace: { mode: "opentelemetry", level: ["TIMESTAMPS"], rate: 1, opentelemetry: { url, bspScheduleDelay: 50 } },
    });
  });
  after(async () => {
    await s.close();
    await collector.close();
  });

  it("reports OpenTelemetry mode and its settings instead of the trace file", async () => {
    const res = await getJson(`${s.url}/v2/trace/setting`);
    assert.deepEqual(res.json, { trace_level: ["TIMESTAMPS"], trace_rate: "1", trace_count: "-1", trace_mode: "OPENTELEMETRY", url, bsp_schedule_delay: "50" });
  });

  it("exports a span tree per request to the OTLP/HTTP endpoint, with Triton's names, attributes and events", async () => {
    const before = BigInt(Date.now()) * 1_000_000n;
    for (const id of ["a", "b"]) assert.equal((await postJson(`${s.url}/v2/models/simple/infer`, simpleBody(id))).status, 200);
    const afterNs = BigInt(Date.now()) * 1_000_000n;
    await s.core.flushTraces();
    await collector.waitForSpans(6);
    assert.match(collector.contentTypes[0]!, /^application\/json/);
    assert.equal(collector.resources[0]!["service.name"], "triton-inference-server");

    const traced = requests(collector.spans);
    assert.equal(traced.length, 2);
    for (const [i, { root, model, compute }] of traced.entries()) {
      assert.ok(model && compute, "model and compute spans are children of the root span");
      assert.equal(model.name, "simple");
      assert.equal(compute.name, "compute");
      assert.equal(new Set([root.traceId, model.traceId, compute.traceId]).size, 1);
      assert.equal(root.kind, 2, "SPAN_KIND_SERVER");
      const attrs = attributes(model.attributes);
      assert.deepEqual(
        [attrs["triton.model_name"], attrs["triton.model_version"], attrs["triton.trace_parent_id"], attrs["triton.request_id"]],
        ["simple", 1, 0, ["a", "b"][i]],
      );
      assert.equal(typeof attrs["triton.trace_id"], "number");
      assert.deepEqual(model.events!.map((e) => e.name), ["REQUEST_START", "QUEUE_START", "REQUEST_END"]);
      assert.deepEqual(compute.events!.map((e) => e.name), ["COMPUTE_START", "COMPUTE_INPUT_END", "COMPUTE_OUTPUT_START", "COMPUTE_END"]);
      // Wall-clock times, nested: root ⊇ model ⊇ compute, all within the test's window.
      const t = (v: string) => BigInt(v);
      assert.ok(t(root.startTimeUnixNano) >= before - 5_000_000n && t(root.endTimeUnixNano) <= afterNs + 5_000_000n, "times are wall-clock");
      assert.ok(t(model.startTimeUnixNano) >= t(root.startTimeUnixNano) && t(model.endTimeUnixNano) <= t(root.endTimeUnixNano));
      assert.ok(t(compute.startTimeUnixNano) >= t(model.startTimeUnixNano) && t(compute.endTimeUnixNano) <= t(model.endTimeUnixNano));
    }
  });
});

describe("OpenTelemetry export from the CLI", () => {
  it("--trace-config mode=opentelemetry exports the spans it holds when the server stops", { timeout: 30_000 }, async () => {
    const collector = new Collector();
    const url = await collector.listen();
    try {
      const repo = await tempRepository({ simple: path.join(EXAMPLES, "simple") });
      const cli = await startCli([
        "--model-repository", repo, "--http-address", "127.0.0.1", "--http-port", "0", "--allow-grpc", "false", "--allow-metrics", "false",
        "--trace-config", "mode=opentelemetry", "--trace-config", `opentelemetry,url=${url}`,
        "--trace-config", "level=TIMESTAMPS", "--trace-config", "rate=2",
      ]);
      try {
        for (const id of ["1", "2", "3", "4"]) assert.equal((await postJson(`${cli.url}/v2/models/simple/infer`, simpleBody(id))).status, 200);
      } finally {
        // The default batch delay is 5 s: the spans go out at shutdown.
        assert.equal(await cli.stop(), 0);
      }
      await collector.waitForSpans(6, 5000);
      const traced = requests(collector.spans);
      assert.deepEqual(traced.map((r) => attributes(r.model.attributes)["triton.request_id"]), ["2", "4"]);
    } finally {
      await collector.close();
    }
  });
});

describe("OpenTelemetry exporter that cannot start", () => {
  it("serves, logs why, holds no traces for it and stops cleanly", async () => {
    const lines: string[] = [];
    const logger = new Logger({ info: false, warning: false, error: true }, (line) => lines.push(line));
    const s = await startServer({
      modelRepository: await tempRepository({ simple: path.join(EXAMPLES, "simple") }),
      trace: { mode: "opentelemetry", level: ["TIMESTAMPS"], rate: 1, opentelemetry: { url: "not a url" } },
      logger,
    });
    try {
      for (let i = 0; i < 20; i++) assert.equal((await postJson(`${s.url}/v2/models/simple/infer`, simpleBody(String(i)))).status, 200);
      await s.core.flushTraces();
    } finally {
      await s.close();
    }
    assert.ok(lines.some((l) => l.includes("failed to start the OpenTelemetry exporter") && l.includes("not a url")), lines.join("\n"));
  });
});
