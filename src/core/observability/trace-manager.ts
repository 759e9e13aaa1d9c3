/**
 * The trace extension's engine (Triton's TraceManager): holds the global and
 * per-model trace settings, samples requests by observing
 * `tritium:inference:request` (it is not in the request path: STYLE point 4),
 * and hands each traced request to its destination:
 *
 * ```
 *   tritium:inference:request ──► owns? ──► scope (model's, else global) ──sample()──►
 *        triton mode:        tritonTraceJson ──► TraceScope buffer ──► TraceFile
 *        opentelemetry mode: OpenTelemetryExporter ──► OTLP/HTTP
 * ```
 *
 * It subscribes only while some scope traces, so a server with tracing off
 * pays nothing per request. The subscriber runs synchronously in the request
 * path and never throws.
 */
import diagnostics_channel from "node:diagnostics_channel";
import { invalidArg } from "../errors.js";
import type { Logger } from "./logger.js";
import {
  DEFAULT_TRACE_SETTING,
  OTEL_DEFAULT_QUEUE_SIZE,
  OTEL_DEFAULT_URL,
  applyOverlay,
  invalidReason,
  traceSettingJson,
  type TraceMode,
  type TraceOptions,
  type TraceOverlay,
  type TraceSetting,
  type TraceSettingJson,
  type TraceSettingUpdate,
} from "../settings/trace-settings.js";
import { REQUEST_CHANNEL, type InferenceRequestEvent } from "./events.js";
import type { OpenTelemetryExporter } from "./otel-exporter.js";
import { TraceFile } from "./trace-file.js";
import { traceRecord, tritonTraceJson, type TraceRecord } from "./trace-record.js";
import { TraceScope } from "./trace-scope.js";

/** How long close() waits for the OpenTelemetry exporter to send what it holds. */
const CLOSE_TIMEOUT_MS = 5000;

export interface TraceManagerDeps {
  /** Whether a request event's `source` belongs to this server. */
  owns(source: object): boolean;
  logger: Logger;
}

export class TraceManager {
  readonly mode: TraceMode;
  /** The start-up setting: what `null` resets the global setting to. */
  private readonly defaults: TraceSetting;
  private global: TraceScope;
  /** Models with settings of their own; the others use the global scope. */
  private readonly models = new Map<string, TraceScope>();
  private readonly file: TraceFile | undefined;
  private readonly otelOptions: NonNullable<TraceOptions["opentelemetry"]>;
  private otel: OpenTelemetryExporter | undefined;
  private otelLoading: Promise<void> | undefined;
  /** Traces taken while the OpenTelemetry SDK was still loading. */
  private pending: TraceRecord[] = [];
  /** The exporter could not start: traces are dropped instead of held for it. */
  private otelFailed = false;
  private nextId = 1;
  private subscribed = false;
  private closed = false;
  private readonly onRequest = (message: unknown) => this.observe(message as InferenceRequestEvent);

  constructor(options: TraceOptions, private readonly deps: TraceManagerDeps) {
    this.mode = options.mode ?? "triton";
    this.otelOptions = options.opentelemetry ?? {};
    const { mode: _mode, opentelemetry: _otel, ...given } = options;
    const defined = Object.fromEntries(Object.entries(given).filter(([, v]) => v !== undefined));
    this.defaults = { ...DEFAULT_TRACE_SETTING, ...defined };
    if (this.mode === "triton" && this.defaults.file !== "") {
      this.file = new TraceFile(this.defaults.file, (m) => this.deps.logger.error("tracer.ts", m));
    }
    this.global = this.scope(this.defaults, {});
    const reason = invalidReason(this.defaults, this.mode);
    if (this.defaults.level.length > 0 && reason) deps.logger.warn("tracer.ts", `no request will be traced: ${reason}`);
    if (this.mode === "opentelemetry") this.loadOpenTelemetry();
    this.refreshSubscription();
  }

  /** The setting in force for a model (its own, else the global one), or the global setting. */
  setting(model?: string): TraceSettingJson {
    const scope = (model ? this.models.get(model) : undefined) ?? this.global;
    return traceSettingJson(scope.setting, this.mode, this.modeSettings());
  }

  /**
   * Changes the global setting (no model) or a model's, as Triton does: the
   * fields given change, `null` resets a field to the fallback (the start-up
   * setting for global, the global setting for a model), and a model left
   * with no field of its own follows the global setting again. Returns the
   * setting now in force.
   */
  update(model: string | undefined, update: TraceSettingUpdate): TraceSettingJson {
    if (this.closed) return this.setting(model);
    if (!model) {
      const overlay = applyOverlay(this.global.overlay, update);
      const next = this.scope({ ...this.defaults, ...overlay }, overlay);
      this.check(next);
      this.global.close();
      this.global = next;
      // Models mirror the global fields they do not set themselves.
      for (const [name, old] of this.models) {
        old.close();
        this.models.set(name, this.scope({ ...this.global.setting, ...old.overlay }, old.overlay));
      }
    } else {
      const old = this.models.get(model);
      const overlay = applyOverlay(old?.overlay ?? {}, update);
      if (Object.keys(overlay).length === 0) {
        old?.close();
        this.models.delete(model);
      } else {
        const next = this.scope({ ...this.global.setting, ...overlay }, overlay);
        this.check(next);
        old?.close();
        this.models.set(model, next);
      }
    }
    this.refreshSubscription();
    return this.setting(model);
  }

  /** Resolves when traces written so far are on disk, or sent to the collector. */
  async flush(): Promise<void> {
    await this.file?.flushed();
    await this.otelLoading;
    await this.otel?.forceFlush();
  }

  /** Stops tracing; writes out every trace still held and sends what the exporter holds. */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    this.unsubscribe();
    this.global.close();
    for (const s of this.models.values()) s.close();
    await this.file?.close();
    await this.otelLoading;
    if (!this.otel) return;
    // A collector that does not answer must not hold up the server's exit for the exporter's 30 s.
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<void>((resolve) => {
      timer = setTimeout(() => {
        this.deps.logger.warn("tracer.ts", `OpenTelemetry spans not sent within ${CLOSE_TIMEOUT_MS} ms of shutdown were dropped`);
        resolve();
      }, CLOSE_TIMEOUT_MS);
      timer.unref();
    });
    const shutdown = this.otel.shutdown().catch((e: unknown) => this.deps.logger.error("tracer.ts", `OpenTelemetry exporter shutdown failed: ${(e as Error).message}`));
    await Promise.race([shutdown, timeout]);
    clearTimeout(timer);
  }

  private scope(setting: TraceSetting, overlay: TraceOverlay): TraceScope {
    return new TraceScope(setting, overlay, this.mode, this.file);
  }

  /** Triton refuses a setting that cannot trace unless it turns tracing off. */
  private check(next: TraceScope): void {
    const reason = invalidReason(next.setting, this.mode);
    if (reason && next.setting.level.length > 0) throw invalidArg(`Attempting to set invalid trace setting :${reason}`);
  }

  /** The settings of the mode, reported after `trace_mode` (Triton reports its config map). */
  private modeSettings(): Record<string, string> {
    if (this.mode !== "opentelemetry") return {};
    const o = this.otelOptions;
    const out: Record<string, string> = { url: o.url ?? OTEL_DEFAULT_URL };
    if (o.bspMaxQueueSize !== undefined) out.bsp_max_queue_size = String(o.bspMaxQueueSize);
    if (o.bspScheduleDelay !== undefined) out.bsp_schedule_delay = String(o.bspScheduleDelay);
    if (o.bspMaxExportBatchSize !== undefined) out.bsp_max_export_batch_size = String(o.bspMaxExportBatchSize);
    return out;
  }

  private observe(e: InferenceRequestEvent): void {
    try {
      const scope = this.models.get(e.model) ?? this.global;
      if (!scope.active || !this.deps.owns(e.source) || !scope.sample()) return;
      const record = traceRecord(this.nextId++, e, scope.setting.level);
      if (this.mode === "triton") scope.collect(tritonTraceJson(record));
      else if (this.otel) this.otel.export(record);
      // Held while the SDK loads, as many as the exporter's own queue would hold.
      else if (!this.otelFailed && this.pending.length < (this.otelOptions.bspMaxQueueSize ?? OTEL_DEFAULT_QUEUE_SIZE)) this.pending.push(record);
    } catch (err) {
      this.deps.logger.error("tracer.ts", `failed to trace a request for '${e.model}': ${(err as Error).message}`);
    }
  }

  private loadOpenTelemetry(): void {
    this.otelLoading = import("./otel-exporter.js")
      .then(({ OpenTelemetryExporter }) => {
        this.otel = new OpenTelemetryExporter(this.otelOptions);
        for (const r of this.pending.splice(0)) this.otel.export(r);
      })
      .catch((e: unknown) => {
        // No exporter will come: nothing may wait for it.
        this.otelFailed = true;
        this.pending = [];
        this.deps.logger.error("tracer.ts", `failed to start the OpenTelemetry exporter: ${(e as Error).message}`);
      });
  }

  private refreshSubscription(): void {
    const wanted = !this.closed && (this.global.active || [...this.models.values()].some((s) => s.active));
    if (wanted && !this.subscribed) {
      diagnostics_channel.subscribe(REQUEST_CHANNEL, this.onRequest);
      this.subscribed = true;
    } else if (!wanted) this.unsubscribe();
  }

  private unsubscribe(): void {
    if (!this.subscribed) return;
    diagnostics_channel.unsubscribe(REQUEST_CHANNEL, this.onRequest);
    this.subscribed = false;
  }
}
