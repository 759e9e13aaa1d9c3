import { DEFAULT_QUANTILES } from "./families.js";

/** What `--metrics-config <key>=<value>` (repeatable) selects; names follow tritonserver. */
export interface MetricsConfig {
  /** `counter_latencies` (default true): the cumulative `*_duration_us` counters. */
  counterLatencies: boolean;
  /** `summary_latencies` (default false): the `*_summary_us` summaries. */
  summaryLatencies: boolean;
  /** `histogram_latencies` (default false): the first-response and per-phase histograms. */
  histogramLatencies: boolean;
  /**
   * `summary_quantiles="0.5:0.05,0.9:0.01,…"`. prom-client computes exact
   * quantiles over its window, so the error half of each pair is accepted
   * and not used.
   */
  summaryQuantiles: number[];
}

export const DEFAULT_METRICS_CONFIG: Readonly<MetricsConfig> = {
  counterLatencies: true,
  summaryLatencies: false,
  histogramLatencies: false,
  summaryQuantiles: DEFAULT_QUANTILES,
};

/**
 * Parses `--metrics-config` entries. A `<group>,` prefix on the key (Triton's
 * per-group form) is accepted and ignored, as Triton has only the global group.
 * Throws an Error naming the bad entry; `warn` hears about unknown keys.
 */
export function parseMetricsConfig(entries: readonly string[], warn: (msg: string) => void = () => {}): MetricsConfig {
  const config: MetricsConfig = { ...DEFAULT_METRICS_CONFIG, summaryQuantiles: [...DEFAULT_METRICS_CONFIG.summaryQuantiles] };
  for (const entry of entries) {
    const eq = entry.indexOf("=");
    if (eq <= 0) throw new Error(`--metrics-config expects <key>=<value>, got '${entry}'`);
    const rawKey = entry.slice(0, eq);
    const key = rawKey.slice(rawKey.lastIndexOf(",") + 1);
    const value = entry.slice(eq + 1).replace(/^"(.*)"$/, "$1");
    switch (key) {
      case "counter_latencies":
        config.counterLatencies = parseBool(key, value);
        break;
      case "summary_latencies":
        config.summaryLatencies = parseBool(key, value);
        break;
      case "histogram_latencies":
        config.histogramLatencies = parseBool(key, value);
        break;
      case "summary_quantiles":
        config.summaryQuantiles = parseQuantiles(value);
        break;
      default:
        warn(`--metrics-config: unknown setting '${key}' is ignored`);
    }
  }
  return config;
}

function parseBool(key: string, value: string): boolean {
  if (value === "true") return true;
  if (value === "false") return false;
  throw new Error(`--metrics-config ${key} expects true or false, got '${value}'`);
}

/** `"0.5:0.05,0.9:0.01"` → [0.5, 0.9]. */
function parseQuantiles(value: string): number[] {
  const out: number[] = [];
  for (const pair of value.split(",")) {
    const q = Number(pair.split(":")[0]);
    if (!pair.includes(":") || !(q > 0 && q < 1)) {
      throw new Error(`--metrics-config summary_quantiles expects <quantile>:<error>,… with quantiles in (0, 1), got '${pair}'`);
    }
    out.push(q);
  }
  return out;
}
