/**
 * The trace extension's settings, with Triton's semantics (TraceManager in
 * Triton's `src/tracer.cc`):
 *
 * ```
 *   start-up default ──(null resets to)──► global ──(null resets to)──► per-model overlay
 *        --trace-config                    POST /v2/trace/setting        POST /v2/models/{m}/trace/setting
 * ```
 *
 * A model without an overlay uses the global setting itself (and shares its
 * sampling counter). A model overlay holds only the fields set for that
 * model; the others follow the global setting as it changes. Resetting every
 * field of an overlay (`null`) removes it. The trace file cannot be changed
 * at run time, as in current Triton releases.
 *
 * Values travel as strings (`"trace_rate": "10"`) and `trace_level` as an
 * array of strings, on HTTP and gRPC alike.
 */
import { invalidArg, unsupported } from "../errors.js";

export type TraceLevel = "TIMESTAMPS" | "TENSORS";
export type TraceMode = "triton" | "opentelemetry";

/** One effective trace setting. */
export interface TraceSetting {
  /** Empty: OFF. */
  level: readonly TraceLevel[];
  /** Every `rate`-th request is traced. */
  rate: number;
  /** Traces still to collect; -1: no limit. */
  count: number;
  /** Write the file every `logFrequency` traces (to `<file>.<n>`); 0: at shutdown or on a setting change. */
  logFrequency: number;
  /** Triton mode: where traces are written. */
  file: string;
}

/** OpenTelemetry mode's settings (`--trace-config opentelemetry,<key>=<value>`). */
export interface OpenTelemetryOptions {
  /** OTLP/HTTP traces endpoint (Triton's default: http://localhost:4318/v1/traces). */
  url?: string;
  /** Resource attributes (`resource=<key>=<value>`); service.name defaults to triton-inference-server. */
  resource?: Record<string, string>;
  /** Batch span processor: `bsp_max_queue_size` (2048). */
  bspMaxQueueSize?: number;
  /** `bsp_schedule_delay` in ms (5000). */
  bspScheduleDelay?: number;
  /** `bsp_max_export_batch_size` (512). */
  bspMaxExportBatchSize?: number;
}

/** Start-up trace configuration (`--trace-config`, or the deprecated `--trace-*` flags). */
export interface TraceOptions extends Partial<TraceSetting> {
  /** `triton` (trace JSON files, the default) or `opentelemetry` (OTLP/HTTP export). */
  mode?: TraceMode;
  opentelemetry?: OpenTelemetryOptions;
}

export const OTEL_DEFAULT_URL = "http://localhost:4318/v1/traces";
/** The batch span processor's queue when `bsp_max_queue_size` is not given (the OpenTelemetry SDK's default). */
export const OTEL_DEFAULT_QUEUE_SIZE = 2048;

/** Triton's defaults: OFF, every 1000th request, no count limit, no log frequency, no file. */
export const DEFAULT_TRACE_SETTING: TraceSetting = { level: [], rate: 1000, count: -1, logFrequency: 0, file: "" };

/** The fields a client may change: a value sets it, `null` resets it to the fallback. */
export interface TraceSettingUpdate {
  level?: readonly TraceLevel[] | null;
  rate?: number | null;
  count?: number | null;
  logFrequency?: number | null;
}

/** The fields set on one scope (global or one model). */
export type TraceOverlay = Partial<Pick<TraceSetting, "level" | "rate" | "count" | "logFrequency">>;

/** Applies an update to an overlay (a new object; the old one is not changed). */
export function applyOverlay(overlay: TraceOverlay, update: TraceSettingUpdate): TraceOverlay {
  const out: Record<string, unknown> = { ...overlay };
  for (const [k, v] of Object.entries(update)) {
    if (v === undefined) continue;
    if (v === null) delete out[k];
    else out[k] = v;
  }
  return out as TraceOverlay;
}

/** Why a setting traces nothing, or undefined if it traces. As Triton words it. */
export function invalidReason(s: TraceSetting, mode: TraceMode): string | undefined {
  if (s.level.length === 0) return "tracing is disabled";
  if (s.rate === 0) return "sample rate must be non-zero";
  if (mode === "triton" && s.file === "") return "trace file name is not given";
  return undefined;
}

const LEVELS: readonly TraceLevel[] = ["TIMESTAMPS", "TENSORS"];
const U32_MAX = 0xffffffff;
const I32_MAX = 0x7fffffff;

/**
 * Parses the settings of a trace request, each as a list of strings (gRPC's
 * form; HTTP's scalar strings arrive as one-element lists). `null` (HTTP) or
 * an empty list (gRPC) resets a setting. Unknown settings are ignored, as in
 * Triton; messages are Triton's.
 */
export function parseTraceSettingUpdate(settings: Record<string, readonly string[] | null>): TraceSettingUpdate {
  if ("trace_file" in settings) throw unsupported("trace file location can not be updated through network protocol");
  const update: TraceSettingUpdate = {};
  const level = settings.trace_level;
  if (level !== undefined) {
    if (level === null) update.level = null;
    else if (level.length > 0) {
      if (level.includes("OFF")) {
        if (level.length !== 1) throw invalidArg("Expect only one trace level 'OFF' is specified");
        update.level = [];
      } else {
        // Triton ignores level names it does not know; a typo silently
        // leaving tracing unchanged helps nobody, so we refuse them.
        const bad = level.find((l) => !LEVELS.includes(l as TraceLevel));
        if (bad !== undefined) throw invalidArg(`Unable to parse 'trace_level', got: ${bad}; expected OFF, TIMESTAMPS or TENSORS`);
        update.level = LEVELS.filter((l) => level.includes(l));
      }
    }
  }
  const scalar = (name: string, min: number, max: number, minMessage?: string): number | null | undefined => {
    const v = settings[name];
    if (v === undefined) return undefined;
    if (v === null || v.length === 0) return null;
    if (v.length !== 1) throw invalidArg(`expect only 1 value for '${name}'`);
    const text = v[0]!;
    if (!/^\s*[-+]?\d+\s*$/.test(text)) throw invalidArg(`Unable to parse '${name}', got: ${text}`);
    const n = Number(text);
    if (minMessage && n < min && n >= -I32_MAX - 1) throw invalidArg(`Unable to parse '${name}'. ${minMessage}, got: ${text}`);
    if (n < min || n > max) throw invalidArg(`Unable to parse '${name}', value is out of range [ ${min}, ${max} ], got: ${text}`);
    return n;
  };
  const rate = scalar("trace_rate", 0, U32_MAX);
  if (rate !== undefined) update.rate = rate;
  const count = scalar("trace_count", -1, I32_MAX, "Expecting value >= -1");
  if (count !== undefined) update.count = count;
  const logFrequency = scalar("log_frequency", 0, U32_MAX);
  if (logFrequency !== undefined) update.logFrequency = logFrequency;
  return update;
}

/**
 * The HTTP body of `POST [/v2/models/{m}]/v2/trace/setting`: `trace_level`
 * an array of strings, the others strings, `null` to reset. Wrong JSON
 * types get TritonJson's messages (400 here; Triton answers 500).
 */
export function traceSettingUpdateFromJson(body: Record<string, unknown>): TraceSettingUpdate {
  const settings: Record<string, readonly string[] | null> = {};
  for (const [key, v] of Object.entries(body)) {
    if (key === "trace_file") settings[key] = [];
    else if (v === null) settings[key] = null;
    else if (key === "trace_level") {
      if (!Array.isArray(v)) throw invalidArg("attempt to access JSON non-array as array");
      if (v.some((e) => typeof e !== "string")) throw invalidArg("attempt to access JSON non-string as string");
      settings[key] = v as string[];
    } else if (key === "trace_rate" || key === "trace_count" || key === "log_frequency") {
      if (typeof v !== "string") throw invalidArg("attempt to access JSON non-string as string");
      settings[key] = [v];
    }
  }
  return parseTraceSettingUpdate(settings);
}

/** Trace settings as the extension reports them: strings, and `trace_level` as a list. */
export type TraceSettingJson = Record<string, string | string[]>;

/** Renders a setting in Triton's key order; `extra` are mode-specific settings (OpenTelemetry's url, ...). */
export function traceSettingJson(s: TraceSetting, mode: TraceMode, extra: Record<string, string> = {}): TraceSettingJson {
  const out: TraceSettingJson = {
    trace_level: s.level.length === 0 ? ["OFF"] : [...s.level],
    trace_rate: String(s.rate),
    trace_count: String(s.count),
  };
  if (mode === "triton") {
    out.log_frequency = String(s.logFrequency);
    out.trace_file = s.file;
  }
  out.trace_mode = mode === "triton" ? "TRITON" : "OPENTELEMETRY";
  return { ...out, ...extra };
}
