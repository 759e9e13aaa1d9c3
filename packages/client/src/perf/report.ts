/**
 * The results: a table for the terminal, and perf_analyzer's CSV (`-f`),
 * whose column names and arithmetic tools such as Model Analyzer read.
 */
import { round, type StepResult } from "./measure.js";

/** perf_analyzer's CSV columns after the first (`Concurrency` or `Request Rate`); times in microseconds. */
export const CSV_COLUMNS = [
  "Inferences/Second", "Client Send", "Network+Server Send/Recv", "Server Queue", "Server Compute Input",
  "Server Compute Infer", "Server Compute Output", "Client Recv", "p50 latency", "p90 latency", "p95 latency", "p99 latency",
];

function row(r: StepResult): string[] {
  return [
    round(r.load), round(r.throughput), String(r.clientSendUs), String(r.networkServerUs), String(r.serverQueueUs), String(r.serverComputeInputUs),
    String(r.serverComputeInferUs), String(r.serverComputeOutputUs), String(r.clientRecvUs),
    ...[50, 90, 95, 99].map((p) => String(r.percentiles.get(p) ?? 0)),
  ];
}

/**
 * perf_analyzer's CSV: a header, then one row per step, sorted by increasing
 * throughput as perf_analyzer sorts them.
 */
export function csv(results: StepResult[], requestRate: boolean): string {
  const lines = [[requestRate ? "Request Rate" : "Concurrency", ...CSV_COLUMNS].join(",")];
  for (const r of [...results].sort((a, b) => a.throughput - b.throughput)) lines.push(row(r).join(","));
  return lines.join("\n") + "\n";
}

/** The sweep as an aligned table (in sweep order), units in the header, unstable steps marked. */
export function table(results: StepResult[], requestRate: boolean): string {
  const header = [requestRate ? "Request Rate" : "Concurrency", "Inferences/Second", "Client Send", "Network+Server", "Server Queue", "Compute Input",
    "Compute Infer", "Compute Output", "Client Recv", "p50", "p90", "p95", "p99"];
  const units = [requestRate ? "(req/s)" : "", "", ...Array.from({ length: 11 }, () => "(usec)")];
  const rows = results.map((r) => {
    const cells = row(r);
    if (!r.stable) cells[0] += " *";
    return cells;
  });
  const all = [header, units, ...rows];
  const widths = header.map((_, i) => Math.max(...all.map((cells) => cells[i]!.length)));
  const line = (cells: string[]) => cells.map((c, i) => (i === 0 ? c.padEnd(widths[i]!) : c.padStart(widths[i]!))).join("  ").trimEnd();
  const rule = widths.map((w) => "-".repeat(w)).join("  ");
  const out = [line(header), line(units), rule, ...rows.map(line)];
  if (results.some((r) => !r.stable)) out.push("* not stable within the measurement windows allowed (-r); the last 3 windows are reported");
  return out.join("\n") + "\n";
}
