/**
 * tritonserver's trace flags → {@link TraceOptions}:
 *
 * - `--trace-config <key>=<value>`: global `level` (repeatable; OFF clears),
 *   `rate`, `count`, `mode` (triton | opentelemetry);
 * - `--trace-config triton,<key>=<value>`: `file`, `log-frequency`;
 * - `--trace-config opentelemetry,<key>=<value>`: `url`,
 *   `resource=<name>=<value>` (repeatable), `bsp_max_queue_size`,
 *   `bsp_schedule_delay`, `bsp_max_export_batch_size`;
 * - the deprecated `--trace-file`, `--trace-level` (repeatable),
 *   `--trace-rate`, `--trace-count`, `--trace-log-frequency`, which
 *   `--trace-config` overrides.
 *
 * @example
 * parseTraceConfig(["triton,file=/tmp/trace.json", "level=TIMESTAMPS", "rate=1"]);
 * // { file: "/tmp/trace.json", level: ["TIMESTAMPS"], rate: 1 }
 */
import type { TraceLevel, TraceMode, TraceOptions } from "./trace-settings.js";

/** The deprecated single-purpose flags, as parsed. */
export interface DeprecatedTraceFlags {
  file?: string;
  level?: readonly string[];
  rate?: number;
  count?: number;
  logFrequency?: number;
}

/** Parses the trace flags; throws an Error whose message names the bad entry. */
export function parseTraceConfig(entries: readonly string[], deprecated: DeprecatedTraceFlags = {}): TraceOptions {
  const out: TraceOptions = {};
  let levels: TraceLevel[] | undefined;
  const addLevel = (value: string, what: string) => {
    const v = value.toUpperCase();
    if (v === "OFF") levels = [];
    else if (v === "TIMESTAMPS" || v === "TENSORS") levels = [...new Set([...(levels ?? []), v as TraceLevel])];
    else throw new Error(`${what}: unknown trace level '${value}'; expected OFF, TIMESTAMPS or TENSORS`);
  };
  if (deprecated.file !== undefined) out.file = deprecated.file;
  for (const l of deprecated.level ?? []) addLevel(l, "--trace-level");
  if (deprecated.rate !== undefined) out.rate = nonNegative(deprecated.rate, "--trace-rate");
  if (deprecated.count !== undefined) out.count = count(String(deprecated.count), "--trace-count");
  if (deprecated.logFrequency !== undefined) out.logFrequency = nonNegative(deprecated.logFrequency, "--trace-log-frequency");

  for (const entry of entries) {
    const what = `--trace-config '${entry}'`;
    let scope = "";
    let setting = entry;
    const comma = entry.indexOf(",");
    if (comma >= 0 && !entry.slice(0, comma).includes("=")) {
      scope = entry.slice(0, comma);
      setting = entry.slice(comma + 1);
      if (scope !== "triton" && scope !== "opentelemetry") throw new Error(`${what}: unknown trace mode '${scope}'; expected triton or opentelemetry`);
    }
    const eq = setting.indexOf("=");
    if (eq <= 0) throw new Error(`${what}: expected [<mode>,]<setting>=<value>`);
    const key = setting.slice(0, eq);
    const value = setting.slice(eq + 1);
    const int = () => integer(value, what);
    if (scope === "opentelemetry") {
      const otel = (out.opentelemetry ??= {});
      switch (key) {
        case "url":
          otel.url = value;
          break;
        case "resource": {
          const i = value.indexOf("=");
          if (i <= 0) throw new Error(`${what}: expected resource=<name>=<value>`);
          (otel.resource ??= {})[value.slice(0, i)] = value.slice(i + 1);
          break;
        }
        case "bsp_max_queue_size":
          otel.bspMaxQueueSize = nonNegative(int(), what);
          break;
        case "bsp_schedule_delay":
          otel.bspScheduleDelay = nonNegative(int(), what);
          break;
        case "bsp_max_export_batch_size":
          otel.bspMaxExportBatchSize = nonNegative(int(), what);
          break;
        default:
          throw new Error(`${what}: unknown opentelemetry setting '${key}'`);
      }
      continue;
    }
    switch (key) {
      case "file":
        out.file = value;
        break;
      case "log-frequency":
        out.logFrequency = nonNegative(int(), what);
        break;
      case "level":
        if (scope) throw new Error(`${what}: 'level' is a global setting (--trace-config level=<level>)`);
        addLevel(value, what);
        break;
      case "rate":
        out.rate = nonNegative(int(), what);
        break;
      case "count":
        out.count = count(value, what);
        break;
      case "mode":
        if (value !== "triton" && value !== "opentelemetry") throw new Error(`${what}: unknown trace mode '${value}'; expected triton or opentelemetry`);
        out.mode = value as TraceMode;
        break;
      default:
        throw new Error(`${what}: unknown trace setting '${key}'`);
    }
  }
  if (levels !== undefined) out.level = levels;
  if (out.mode === "opentelemetry" && out.level?.includes("TENSORS")) {
    // As in Triton, OpenTelemetry mode traces timestamps only.
    out.level = out.level.filter((l) => l !== "TENSORS");
  }
  return out;
}

function integer(value: string, what: string): number {
  if (!/^[-+]?\d+$/.test(value)) throw new Error(`${what}: expected an integer, got '${value}'`);
  return Number(value);
}

function nonNegative(n: number, what: string): number {
  if (!Number.isInteger(n) || n < 0 || n > 0xffffffff) throw new Error(`${what}: expected an integer in [0, 4294967295], got ${n}`);
  return n;
}

function count(value: string, what: string): number {
  const n = integer(value, what);
  if (n < -1 || n > 0x7fffffff) throw new Error(`${what}: the trace count must be -1 (no limit) or a non-negative integer, got ${n}`);
  return n;
}
