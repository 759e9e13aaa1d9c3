/**
 * tritium-perf's command line: perf_analyzer's flag names for the options
 * it shares with it.
 */
import { parseArgs } from "node:util";

/** A sweep `start:end:step` (end and step optional, as perf_analyzer's). */
export interface Range {
  start: number;
  end: number;
  step: number;
}

/** Everything a run needs, parsed and checked. */
export interface PerfOptions {
  model: string;
  modelVersion?: string;
  protocol: "http" | "grpc";
  url: string;
  batchSize: number;
  /** Concurrency sweep, unless `requestRate` is set. */
  concurrency: Range;
  /** Request-rate sweep (requests per second); concurrency mode when undefined. */
  requestRate?: Range;
  /** `random`, `zero`, or a JSON file in perf_analyzer's `{"data": [...]}` form. */
  inputData: string;
  /** Shapes of variable dimensions by input name (without the batch dimension). */
  shapes: Map<string, number[]>;
  measurementIntervalMs: number;
  stabilityPercentage: number;
  maxTrials: number;
  /** `--percentile`: the latency percentile that must be stable; absent, the average latency (perf_analyzer's default). */
  percentile?: number;
  csvFile?: string;
}

export const USAGE = `Usage: tritium-perf -m <model> [options]

Measures a model on any KServe v2 server (Triton, Tritium, ...): throughput,
client latency percentiles and the server's own time per request.

  -m <model>                      model name (required)
  -x <version>                    model version (default: the server's choice)
  -u <host:port>                  server (default localhost:8000, or localhost:8001 with -i grpc)
  -i http|grpc                    protocol (default http)
  -b <n>                          batch size (default 1)
  --concurrency-range <s:e:st>    concurrency sweep (default 1:1:1)
  --request-rate-range <s:e:st>   request-rate sweep in requests/s (instead of concurrency)
  --input-data random|zero|<file> input values (default random); a file is perf_analyzer's JSON
  --shape <name>:<d1>,<d2>,...    dims of an input's variable dimensions (no batch dimension)
  -p, --measurement-interval <ms> window length (default 5000)
  -s, --stability-percentage <p>  allowed spread of the last 3 windows (default 10)
  -r, --max-trials <n>            windows per step at most (default 10)
  --percentile <p>                latency percentile that must be stable (default: the average latency)
  -f <file.csv>                   write perf_analyzer's CSV
  -h, --help                      this text
`;

/** A usage error: the message is for the user, with the usage text after it. */
export class UsageError extends Error {}

/** Parses `start[:end[:step]]`. */
export function parseRange(text: string, flag: string): Range {
  const parts = text.split(":").map(Number);
  const [start, end = start, step = 1] = parts;
  if (parts.length > 3 || [start, end, step].some((v) => v === undefined || !Number.isFinite(v) || v <= 0) || end! < start!) {
    throw new UsageError(`${flag} expects start:end:step with 0 < start <= end and step > 0, got '${text}'`);
  }
  return { start: start!, end: end!, step: step! };
}

/** The values a range sweeps, start to end inclusive. */
export function rangeValues(r: Range): number[] {
  const out: number[] = [];
  // A tolerance so that 0.1 steps reach their end despite binary fractions.
  for (let v = r.start; v <= r.end + 1e-9; v += r.step) out.push(Number(v.toPrecision(12)));
  return out;
}

function positive(value: string | undefined, flag: string, fallback: number): number {
  if (value === undefined) return fallback;
  const n = Number(value);
  if (!Number.isFinite(n) || n <= 0) throw new UsageError(`${flag} expects a positive number, got '${value}'`);
  return n;
}

/** Parses argv (without node and the script); throws {@link UsageError} on a mistake, returns undefined for --help. */
export function parsePerfArgs(argv: string[]): PerfOptions | undefined {
  const { values } = parseArgs({
    args: argv,
    strict: true,
    options: {
      "model-name": { type: "string", short: "m" },
      "model-version": { type: "string", short: "x" },
      url: { type: "string", short: "u" },
      protocol: { type: "string", short: "i" },
      "batch-size": { type: "string", short: "b" },
      "concurrency-range": { type: "string" },
      "request-rate-range": { type: "string" },
      "input-data": { type: "string" },
      shape: { type: "string", multiple: true },
      "measurement-interval": { type: "string", short: "p" },
      "stability-percentage": { type: "string", short: "s" },
      "max-trials": { type: "string", short: "r" },
      percentile: { type: "string" },
      "latency-report-file": { type: "string", short: "f" },
      help: { type: "boolean", short: "h" },
    },
  });
  if (values.help) return undefined;
  const model = values["model-name"];
  if (!model) throw new UsageError("-m <model> is required");
  const protocol = (values.protocol ?? "http").toLowerCase();
  if (protocol !== "http" && protocol !== "grpc") throw new UsageError(`-i expects http or grpc, got '${values.protocol}'`);
  const shapes = new Map<string, number[]>();
  for (const s of values.shape ?? []) {
    const at = s.lastIndexOf(":");
    const dims = s.slice(at + 1).split(",").map(Number);
    if (at <= 0 || dims.some((d) => !Number.isInteger(d) || d < 0)) throw new UsageError(`--shape expects <name>:<d1>,<d2>,..., got '${s}'`);
    shapes.set(s.slice(0, at), dims);
  }
  const batchSize = positive(values["batch-size"], "-b", 1);
  const percentile = values.percentile === undefined ? undefined : positive(values.percentile, "--percentile", 99);
  if (!Number.isInteger(batchSize)) throw new UsageError(`-b expects a whole number, got '${values["batch-size"]}'`);
  if (percentile !== undefined && percentile >= 100) throw new UsageError(`--percentile expects a number below 100, got '${values.percentile}'`);
  const concurrency = parseRange(values["concurrency-range"] ?? "1", "--concurrency-range");
  if (![concurrency.start, concurrency.end, concurrency.step].every(Number.isInteger)) throw new UsageError("--concurrency-range expects whole numbers");
  return {
    model,
    modelVersion: values["model-version"],
    protocol,
    url: values.url ?? (protocol === "grpc" ? "localhost:8001" : "localhost:8000"),
    batchSize,
    concurrency,
    requestRate: values["request-rate-range"] === undefined ? undefined : parseRange(values["request-rate-range"], "--request-rate-range"),
    inputData: values["input-data"] ?? "random",
    shapes,
    measurementIntervalMs: positive(values["measurement-interval"], "--measurement-interval", 5000),
    stabilityPercentage: positive(values["stability-percentage"], "--stability-percentage", 10),
    maxTrials: Math.max(3, Math.floor(positive(values["max-trials"], "--max-trials", 10))),
    percentile,
    csvFile: values["latency-report-file"],
  };
}
