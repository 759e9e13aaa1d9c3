import diagnostics_channel from "node:diagnostics_channel";
import { Counter, Gauge, Histogram, Summary, type Registry } from "prom-client";
import type { ModelVersion } from "../../core/repository/model-version.js";
import { FAILURE_REASONS, REQUEST_CHANNEL, type InferenceRequestEvent } from "../../core/observability/events.js";
import type { InferenceServer } from "../../core/server.js";
import {
  COUNTERS,
  FIRST_RESPONSE_HISTOGRAM,
  LATENCY_COUNTERS,
  LATENCY_HISTOGRAMS,
  LATENCY_SUMMARIES,
  PENDING,
  PHASES,
  type Phase,
} from "./families.js";
import type { MetricsConfig } from "./metrics-config.js";

const LABELS = ["model", "version"] as const;
type Labels = { model: string; version: string };

/** Per loaded model version: its label set and the version object that owns it. */
interface Series {
  labels: Labels;
  owner: ModelVersion;
}

/**
 * Triton's per-model inference metrics over one {@link InferenceServer}.
 *
 * Two sources, chosen so the request path pays nothing for counters:
 * - Counters and the pending gauge are read at scrape time from core's
 *   {@link ModelStatistics} and schedulers — the same numbers the statistics
 *   extension reports, so `/metrics` and `/v2/models/stats` always agree.
 * - Summaries and histograms need every observation: they subscribe to
 *   `tritium:inference:request` (core/observability/events.ts), and only when
 *   `--metrics-config` turns them on.
 *
 * As in Triton, a version's series exist while it is loaded (zero before its
 * first request), disappear when it unloads, and restart from zero when it is
 * reloaded (a new ModelVersion, new statistics).
 */
export class InferenceMetrics {
  private readonly success: Counter<"model" | "version">;
  private readonly failure: Counter<"model" | "reason" | "version">;
  private readonly inferenceCount: Counter<"model" | "version">;
  private readonly executionCount: Counter<"model" | "version">;
  private readonly latencyCounters = new Map<Phase, Counter<"model" | "version">>();
  private readonly pending: Gauge<"model" | "version">;
  private readonly summaries = new Map<Phase, Summary<"model" | "version">>();
  private readonly histograms = new Map<Phase, Histogram<"model" | "version">>();
  private firstResponse: Histogram<"model" | "version"> | undefined;
  /** Loaded versions of this server, by `model\0version`. */
  private readonly series = new Map<string, Series>();
  /** Versions that published events but do not belong to this server (another server in the process, or retired). */
  private readonly foreign = new WeakSet<object>();
  private readonly onRequest = (message: unknown) => this.observe(message as InferenceRequestEvent);
  private subscribed = false;

  constructor(
    private readonly core: InferenceServer,
    registry: Registry,
    config: MetricsConfig,
  ) {
    const counter = <L extends string>(spec: { name: string; help: string }, labelNames: readonly L[]) =>
      new Counter<L>({ name: spec.name, help: spec.help, labelNames, registers: [registry] });
    this.success = counter(COUNTERS.success, LABELS);
    this.failure = counter(COUNTERS.failure, ["model", "reason", "version"] as const);
    this.inferenceCount = counter(COUNTERS.inferenceCount, LABELS);
    this.executionCount = counter(COUNTERS.executionCount, LABELS);
    if (config.counterLatencies) {
      for (const p of PHASES) this.latencyCounters.set(p, counter(LATENCY_COUNTERS[p], LABELS));
    }
    this.pending = new Gauge({ name: PENDING.name, help: PENDING.help, labelNames: LABELS, registers: [registry] });
    if (config.summaryLatencies) {
      for (const p of PHASES) {
        const spec = LATENCY_SUMMARIES[p];
        // Triton's summaries (prometheus-cpp defaults): a 60 s window in 5 buckets.
        this.summaries.set(
          p,
          new Summary({ name: spec.name, help: spec.help, labelNames: LABELS, percentiles: config.summaryQuantiles, maxAgeSeconds: 60, ageBuckets: 5, registers: [registry] }),
        );
      }
    }
    if (config.histogramLatencies) {
      const f = FIRST_RESPONSE_HISTOGRAM;
      this.firstResponse = new Histogram({ name: f.name, help: f.help, labelNames: LABELS, buckets: f.buckets, registers: [registry] });
      for (const p of PHASES) {
        const spec = LATENCY_HISTOGRAMS[p];
        this.histograms.set(p, new Histogram({ name: spec.name, help: spec.help, labelNames: LABELS, buckets: spec.buckets, registers: [registry] }));
      }
    }
    if (this.summaries.size > 0 || this.firstResponse) {
      diagnostics_channel.subscribe(REQUEST_CHANNEL, this.onRequest);
      this.subscribed = true;
    }
  }

  /** Brings every family up to date with the server; call before serializing the registry. */
  refresh(): void {
    const loaded = new Map<string, ModelVersion>();
    for (const mv of this.core.modelVersions()) loaded.set(key(mv.name, String(mv.version)), mv);
    for (const [k, s] of this.series) if (loaded.get(k) !== s.owner) this.retire(k);
    for (const [k, mv] of loaded) if (!this.series.has(k)) this.claim(k, mv);

    for (const c of [this.success, this.failure, this.inferenceCount, this.executionCount, ...this.latencyCounters.values()]) c.reset();
    this.pending.reset();
    for (const { labels, owner } of this.series.values()) {
      const s = owner.stats;
      this.success.inc(labels, s.success.count);
      for (const reason of FAILURE_REASONS) {
        this.failure.inc({ model: labels.model, reason, version: labels.version }, s.failuresByReason.get(reason) ?? 0);
      }
      this.inferenceCount.inc(labels, s.inferenceCount);
      this.executionCount.inc(labels, s.executionCount);
      const ns: Record<Phase, number> = {
        request: s.success.ns,
        queue: s.queue.ns,
        computeInput: s.computeInput.ns,
        computeInfer: s.computeInfer.ns,
        computeOutput: s.computeOutput.ns,
      };
      for (const [p, c] of this.latencyCounters) c.inc(labels, Math.floor(ns[p] / 1000));
      this.pending.set(labels, owner.pendingRequests);
    }
  }

  /** Stops observing requests. */
  close(): void {
    if (this.subscribed) diagnostics_channel.unsubscribe(REQUEST_CHANNEL, this.onRequest);
    this.subscribed = false;
  }

  /**
   * One finished request. Triton's summaries observe successful requests
   * only (InferenceStatsAggregator::UpdateSuccess); the histograms follow them.
   */
  private observe(e: InferenceRequestEvent): void {
    if (!e.success) return;
    const labels = this.labelsFor(e);
    if (!labels) return;
    const us: Record<Phase, number> = {
      request: Math.floor(e.totalNs / 1000),
      queue: Math.floor(e.queueNs / 1000),
      computeInput: Math.floor(e.computeInputNs / 1000),
      computeInfer: Math.floor(e.computeInferNs / 1000),
      computeOutput: Math.floor(e.computeOutputNs / 1000),
    };
    for (const [p, s] of this.summaries) s.observe(labels, us[p]);
    for (const [p, h] of this.histograms) h.observe(labels, us[p]);
    // A non-decoupled model answers once: its first response is its answer.
    this.firstResponse?.observe(labels, e.totalNs / 1e6);
  }

  /** The label set of an event's version if it belongs to this server, else undefined. */
  private labelsFor(e: InferenceRequestEvent): Labels | undefined {
    const k = key(e.model, e.version);
    const s = this.series.get(k);
    if (s?.owner === e.source) return s.labels;
    if (this.foreign.has(e.source)) return undefined;
    // First event of a version loaded since the last scrape: is it ours?
    const mv = this.core.modelVersions().find((v) => v === e.source);
    if (!mv) {
      this.foreign.add(e.source);
      return undefined;
    }
    if (s) this.retire(k);
    return this.claim(k, mv).labels;
  }

  private claim(k: string, mv: ModelVersion): Series {
    const s: Series = { labels: { model: mv.name, version: String(mv.version) }, owner: mv };
    this.series.set(k, s);
    for (const h of this.histograms.values()) h.zero(s.labels);
    this.firstResponse?.zero(s.labels);
    return s;
  }

  /** Drops a version's series: it was unloaded, or replaced by a reload. */
  private retire(k: string): void {
    const s = this.series.get(k);
    if (!s) return;
    this.series.delete(k);
    this.foreign.add(s.owner);
    for (const m of [...this.summaries.values(), ...this.histograms.values()]) m.remove(s.labels);
    this.firstResponse?.remove(s.labels);
  }
}

function key(model: string, version: string): string {
  return `${model}\0${version}`;
}
