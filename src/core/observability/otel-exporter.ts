/**
 * OpenTelemetry mode (`--trace-config mode=opentelemetry`): each traced
 * request becomes spans exported through the OpenTelemetry JS SDK to an
 * OTLP/HTTP endpoint (`--trace-config opentelemetry,url=...`), with the
 * spans, names and attributes of Triton's OpenTelemetry tracer:
 *
 * ```
 *   InferRequest (root, kind SERVER)
 *   └── <model name>   triton.model_name, triton.model_version, triton.trace_id,
 *       │              triton.trace_parent_id; events REQUEST_START, QUEUE_START, REQUEST_END
 *       └── compute    events COMPUTE_START, COMPUTE_INPUT_END, COMPUTE_OUTPUT_START, COMPUTE_END
 * ```
 *
 * Spans go through a batch span processor (Triton's `bsp_*` settings).
 * Loaded only in OpenTelemetry mode, so other servers never load the SDK.
 */
import { ROOT_CONTEXT, SpanKind, SpanStatusCode, trace, type Attributes, type HrTime, type Span, type Tracer } from "@opentelemetry/api";
import { OTLPTraceExporter } from "@opentelemetry/exporter-trace-otlp-http";
import { defaultResource, resourceFromAttributes } from "@opentelemetry/resources";
import { BasicTracerProvider, BatchSpanProcessor } from "@opentelemetry/sdk-trace-base";
import { OTEL_DEFAULT_QUEUE_SIZE, OTEL_DEFAULT_URL, type OpenTelemetryOptions } from "../settings/trace-settings.js";
import type { TraceRecord, TraceTimestamp } from "./trace-record.js";

export class OpenTelemetryExporter {
  private readonly provider: BasicTracerProvider;
  private readonly tracer: Tracer;
  /** Wall-clock nanoseconds minus hrtime nanoseconds, fixed at start: OTLP wants epoch times. */
  private readonly epochOffsetNs: bigint;

  constructor(options: OpenTelemetryOptions) {
    const exporter = new OTLPTraceExporter({ url: options.url ?? OTEL_DEFAULT_URL });
    const processor = new BatchSpanProcessor(exporter, {
      maxQueueSize: options.bspMaxQueueSize ?? OTEL_DEFAULT_QUEUE_SIZE,
      scheduledDelayMillis: options.bspScheduleDelay ?? 5000,
      maxExportBatchSize: options.bspMaxExportBatchSize ?? 512,
    });
    const resource = defaultResource().merge(
      resourceFromAttributes({ "service.name": "triton-inference-server", ...(options.resource ?? {}) }),
    );
    this.provider = new BasicTracerProvider({ resource, spanProcessors: [processor] });
    this.tracer = this.provider.getTracer("triton-server");
    const wallNs = BigInt(Math.round((performance.timeOrigin + performance.now()) * 1e6));
    this.epochOffsetNs = wallNs - process.hrtime.bigint();
  }

  /** Exports one traced request's spans (ended at once: the request is over). */
  export(r: TraceRecord): void {
    const at = (name: TraceTimestamp["name"]) => r.timestamps.find((t) => t.name === name);
    const start = at("REQUEST_START");
    const end = at("REQUEST_END");
    if (!start || !end) return; // OpenTelemetry mode traces timestamps only
    const root = this.tracer.startSpan("InferRequest", { kind: SpanKind.SERVER, startTime: this.time(start.ns) });
    const attributes: Attributes = {
      "triton.model_name": r.model,
      "triton.model_version": r.version,
      "triton.trace_id": r.id,
      "triton.trace_parent_id": r.parentId,
    };
    if (r.requestId !== "") attributes["triton.request_id"] = r.requestId;
    const model = this.child(r.model, root, start.ns, attributes);
    for (const t of r.timestamps) {
      if (t.name === "REQUEST_START" || t.name === "QUEUE_START" || t.name === "REQUEST_END") model.addEvent(t.name, this.time(t.ns));
    }
    const computeStart = at("COMPUTE_START");
    const computeEnd = at("COMPUTE_END");
    if (computeStart && computeEnd) {
      const compute = this.child("compute", model, computeStart.ns, {});
      for (const t of r.timestamps) {
        if (t.name.startsWith("COMPUTE_")) compute.addEvent(t.name, this.time(t.ns));
      }
      compute.end(this.time(computeEnd.ns));
    }
    if (!r.success) model.setStatus({ code: SpanStatusCode.ERROR });
    model.end(this.time(end.ns));
    root.end(this.time(end.ns));
  }

  /** Sends the spans the batch processor holds. */
  async forceFlush(): Promise<void> {
    await this.provider.forceFlush();
  }

  /** Sends what is held, then stops. */
  async shutdown(): Promise<void> {
    await this.provider.shutdown();
  }

  private child(name: string, parent: Span, startNs: bigint, attributes: Attributes): Span {
    const ctx = trace.setSpan(ROOT_CONTEXT, parent);
    return this.tracer.startSpan(name, { kind: SpanKind.SERVER, startTime: this.time(startNs), attributes }, ctx);
  }

  private time(hrtimeNs: bigint): HrTime {
    const ns = hrtimeNs + this.epochOffsetNs;
    return [Number(ns / 1_000_000_000n), Number(ns % 1_000_000_000n)];
  }
}
