/**
 * tritonserver's command-line flags, with the same names and meanings.
 * `--flag=value` and `--flag value` are both accepted; booleans take
 * true/false/1/0 (a bare `--flag` means true); repeatable flags collect.
 */
export interface FlagSpec {
  name: string;
  kind: "string" | "int" | "bool" | "list";
  default?: string | number | boolean | string[];
  help: string;
  /** Accepted for compatibility; parsed but has no effect yet. */
  inert?: boolean;
}

export const FLAGS: FlagSpec[] = [
  { name: "model-repository", kind: "list", help: "Path to a model repository; repeat for several. Alias: --model-store." },
  { name: "model-store", kind: "list", help: "Alias of --model-repository." },
  { name: "model-control-mode", kind: "string", default: "none", help: "none | poll | explicit." },
  { name: "load-model", kind: "list", help: "In explicit mode, a model to load at start-up; '*' loads all. Repeatable." },
  { name: "repository-poll-secs", kind: "int", default: 15, help: "In poll mode, seconds between repository scans." },
  { name: "model-load-on-demand", kind: "bool", default: false, help: "Tritium: in explicit mode, a request for a model that is not loaded loads it first." },
  { name: "model-memory-budget", kind: "int", default: 0, help: "Tritium: bytes of loaded models to keep; least recently used models are unloaded past it (0: no budget)." },
  { name: "rate-limit", kind: "string", default: "off", help: "off | execution_count: instances run only when the resources their rate_limiter declares are free." },
  { name: "rate-limit-resource", kind: "list", help: "<name>:<count>[:<device>] total of a rate limiter resource. Repeatable." },
  { name: "cache-config", kind: "list", help: "<cache>,<key>=<value>; 'local,size=<bytes>' enables the response cache. Repeatable." },
  { name: "response-cache-byte-size", kind: "int", default: 0, help: "Deprecated: same as --cache-config local,size=<bytes>." },
  { name: "model-load-thread-count", kind: "int", default: 4, help: "Models loaded in parallel at start-up." },
  { name: "strict-readiness", kind: "bool", default: true, help: "Ready only when every model that should load is READY." },
  { name: "strict-model-config", kind: "bool", default: false, help: "Deprecated: true disables auto-complete of model configurations." },
  { name: "disable-auto-complete-config", kind: "bool", default: false, help: "Do not complete model configurations from the model files." },
  { name: "exit-timeout-secs", kind: "int", default: 30, help: "On shutdown, seconds to wait for in-flight requests." },
  { name: "bls-max-depth", kind: "int", default: 16, help: "Tritium: how deeply BLS calls (a model calling a model that calls ...) may nest before they fail." },
  { name: "exit-on-error", kind: "bool", default: false, help: "Exit if a model fails to load at start-up (Tritium's default keeps serving the others)." },
  { name: "id", kind: "string", default: "triton", help: "Server identifier reported as 'name' in server metadata." },
  { name: "allow-client-shm", kind: "bool", default: false, help: "Let clients register and use system shared memory regions (/v2/systemsharedmemory, SystemSharedMemory* RPCs); off by default, as in Triton." },
  { name: "client-shm-key-prefix", kind: "string", help: "Tritium: clients may register only shared memory keys that start with this (e.g. /tritium_client_); default: any key." },
  { name: "backend-config", kind: "list", help: "<backend>,<key>=<value> backend setting, e.g. onnxruntime,default-max-batch-size=8. Repeatable." },
  { name: "allow-http", kind: "bool", default: true, help: "Serve HTTP/REST." },
  { name: "http-address", kind: "string", default: "0.0.0.0", help: "HTTP listen address." },
  { name: "http-restricted-api", kind: "list", help: "<api>,<api>,...:<key>=<value>: these API groups answer only requests with header <key>: <value> (health, metadata, inference, shared-memory, model-config, model-repository, statistics, trace, logging). Repeatable." },
  { name: "http-ssl", kind: "bool", default: false, help: "Tritium: serve HTTPS on the HTTP port (needs --http-ssl-cert and --http-ssl-key)." },
  { name: "http-ssl-cert", kind: "string", help: "Tritium: PEM file with the HTTPS server certificate." },
  { name: "http-ssl-key", kind: "string", help: "Tritium: PEM file with the HTTPS server private key." },
  { name: "http-ssl-root-cert", kind: "string", help: "Tritium: PEM file with the CA certificates HTTPS client certificates are verified against." },
  { name: "http-ssl-mutual", kind: "bool", default: false, help: "Tritium: require HTTPS clients to present a certificate signed by --http-ssl-root-cert. Implies --http-ssl." },
  { name: "http-request-timeout-secs", kind: "int", default: 300, help: "Tritium: seconds a client has to send a whole request (headers and body) before it gets 408 and its connection closes." },
  { name: "api-key-file", kind: "string", help: "Tritium: file of accepted API keys, one SHA-256 hex digest per line (e.g. printf %s \"$KEY\" | sha256sum); clients send 'Authorization: Bearer <key>' or 'X-API-Key: <key>' (gRPC: the same metadata)." },
  { name: "api-key-apis", kind: "string", default: "metadata,inference,shared-memory,model-config,model-repository,statistics,trace,logging", help: "Tritium: the API groups that need a key when --api-key-file is given ('all' includes health)." },
  { name: "http-port", kind: "int", default: 8000, help: "HTTP port." },
  { name: "http-max-input-size", kind: "int", default: 64 * 1024 * 1024, help: "Largest HTTP request body accepted, in bytes, after decompression." },
  { name: "http-thread-count", kind: "int", default: 8, help: "Accepted for compatibility (Node serves HTTP on its event loop).", inert: true },
  { name: "allow-grpc", kind: "bool", default: true, help: "Serve gRPC (KServe v2 GRPCInferenceService and grpc.health.v1)." },
  { name: "grpc-address", kind: "string", default: "0.0.0.0", help: "gRPC listen address." },
  { name: "grpc-port", kind: "int", default: 8001, help: "gRPC port." },
  { name: "grpc-restricted-protocol", kind: "list", help: "<protocol>,<protocol>,...:<key>=<value>: these RPC groups answer only calls with metadata triton-grpc-protocol-<key>: <value>. Repeatable." },
  { name: "grpc-use-ssl", kind: "bool", default: false, help: "Serve gRPC over TLS (needs --grpc-server-cert and --grpc-server-key)." },
  { name: "grpc-use-ssl-mutual", kind: "bool", default: false, help: "Serve gRPC over mutual TLS: clients must present a certificate signed by --grpc-root-cert. Implies --grpc-use-ssl." },
  { name: "grpc-server-cert", kind: "string", help: "PEM file with the gRPC server certificate." },
  { name: "grpc-server-key", kind: "string", help: "PEM file with the gRPC server private key." },
  { name: "grpc-root-cert", kind: "string", help: "PEM file with the CA certificates client certificates are verified against." },
  { name: "grpc-max-message-size", kind: "int", default: 2 ** 31 - 1, help: "Largest gRPC message accepted or sent, in bytes (Tritium's flag; Triton's fixed limit is INT32_MAX)." },
  { name: "grpc-keepalive-time", kind: "int", default: 7200000, help: "Milliseconds between keepalive pings the server sends." },
  { name: "grpc-keepalive-timeout", kind: "int", default: 20000, help: "Milliseconds to wait for a keepalive ping's acknowledgement." },
  { name: "grpc-keepalive-permit-without-calls", kind: "bool", default: false, help: "Accepted for compatibility (client pings are always accepted).", inert: true },
  { name: "grpc-http2-max-pings-without-data", kind: "int", default: 2, help: "Accepted for compatibility (client pings are always accepted).", inert: true },
  { name: "grpc-http2-min-recv-ping-interval-without-data", kind: "int", default: 300000, help: "Accepted for compatibility (client pings are always accepted).", inert: true },
  { name: "grpc-http2-max-ping-strikes", kind: "int", default: 2, help: "Accepted for compatibility (client pings are always accepted).", inert: true },
  { name: "grpc-max-connection-age", kind: "int", default: 0, help: "Milliseconds after which a gRPC connection is gracefully closed; 0 = never." },
  { name: "grpc-max-connection-age-grace", kind: "int", default: 0, help: "Milliseconds granted to in-flight calls after the maximum connection age; 0 = unlimited." },
  { name: "grpc-infer-allocation-pool-size", kind: "int", default: 8, help: "Accepted for compatibility (no response-object pool is needed in Node).", inert: true },
  { name: "grpc-max-response-pool-size", kind: "int", help: "Accepted for compatibility (no response-object pool is needed in Node).", inert: true },
  { name: "grpc-infer-thread-count", kind: "int", default: 2, help: "Accepted for compatibility (Node serves gRPC on its event loop).", inert: true },
  { name: "grpc-infer-response-compression-level", kind: "string", default: "none", help: "Accepted for compatibility; responses are sent uncompressed (requests may be gzip or deflate).", inert: true },
  { name: "allow-metrics", kind: "bool", default: true, help: "Serve Prometheus metrics at /metrics on --metrics-port." },
  { name: "metrics-address", kind: "string", default: "0.0.0.0", help: "Metrics listen address." },
  { name: "metrics-port", kind: "int", default: 8002, help: "Metrics port." },
  { name: "metrics-interval-ms", kind: "int", default: 2000, help: "Milliseconds between refreshes of per-interval metrics (CPU)." },
  { name: "metrics-config", kind: "list", help: "<key>=<value> metrics setting: counter_latencies, summary_latencies, histogram_latencies (true|false), summary_quantiles=<q>:<err>,... Repeatable." },
  { name: "allow-cpu-metrics", kind: "bool", default: true, help: "Report nv_cpu_utilization and nv_cpu_memory_*_bytes from /proc (Linux)." },
  { name: "allow-gpu-metrics", kind: "bool", default: true, help: "GPU metrics (nv_gpu_*, nv_energy_consumption) for each GPU nvidia-smi lists; none without GPUs." },
  { name: "log-verbose", kind: "int", default: 0, help: "Verbose logging level (0 off)." },
  { name: "log-info", kind: "bool", default: true, help: "Log info messages." },
  { name: "log-warning", kind: "bool", default: true, help: "Log warnings." },
  { name: "log-error", kind: "bool", default: true, help: "Log errors." },
  { name: "log-format", kind: "string", default: "default", help: "default | ISO8601 | json (Tritium: one JSON object per line)." },
  { name: "log-file", kind: "string", default: "", help: "Append log lines to this file instead of stderr (cannot be changed at run time)." },
  { name: "trace-config", kind: "list", help: "[<mode>,]<setting>=<value>: global level (OFF|TIMESTAMPS|TENSORS, repeatable), rate, count, mode (triton|opentelemetry); triton,file=<path> / triton,log-frequency=<n>; opentelemetry,url=<url> / resource=<k>=<v> / bsp_max_queue_size / bsp_schedule_delay / bsp_max_export_batch_size. Repeatable." },
  { name: "trace-file", kind: "string", help: "Deprecated: same as --trace-config triton,file=<path>." },
  { name: "trace-level", kind: "list", help: "Deprecated: same as --trace-config level=<level>. Repeatable." },
  { name: "trace-rate", kind: "int", help: "Deprecated: same as --trace-config rate=<n>." },
  { name: "trace-count", kind: "int", help: "Deprecated: same as --trace-config count=<n>." },
  { name: "trace-log-frequency", kind: "int", help: "Deprecated: same as --trace-config triton,log-frequency=<n>." },
  { name: "help", kind: "bool", default: false, help: "Print this list and exit." },
];

export type FlagValues = Record<string, string | number | boolean | string[]>;

/** Parses argv (without node and script). Throws an Error with a usage message on bad input. */
export function parseFlags(argv: readonly string[]): FlagValues {
  const byName = new Map(FLAGS.map((f) => [f.name, f]));
  const values: FlagValues = {};
  for (const f of FLAGS) if (f.default !== undefined) values[f.name] = Array.isArray(f.default) ? [...f.default] : f.default;
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i]!;
    if (!arg.startsWith("--")) throw new Error(`unexpected argument '${arg}'; flags start with --`);
    const eq = arg.indexOf("=");
    const name = arg.slice(2, eq < 0 ? undefined : eq);
    const spec = byName.get(name);
    if (!spec) throw new Error(`unrecognized flag '--${name}' (see --help)`);
    let raw: string | undefined = eq < 0 ? undefined : arg.slice(eq + 1);
    if (raw === undefined && spec.kind !== "bool") {
      raw = argv[++i];
      if (raw === undefined) throw new Error(`flag '--${name}' needs a value`);
    }
    if (raw === undefined && spec.kind === "bool" && argv[i + 1] !== undefined && /^(true|false|0|1)$/i.test(argv[i + 1]!)) raw = argv[++i];
    switch (spec.kind) {
      case "bool": {
        const v = (raw ?? "true").toLowerCase();
        if (!/^(true|false|0|1|on|off)$/.test(v)) throw new Error(`flag '--${name}' expects true or false, got '${raw}'`);
        values[name] = v === "true" || v === "1" || v === "on";
        break;
      }
      case "int": {
        const n = Number(raw);
        if (!Number.isInteger(n)) throw new Error(`flag '--${name}' expects an integer, got '${raw}'`);
        values[name] = n;
        break;
      }
      case "list":
        values[name] = [...((values[name] as string[] | undefined) ?? []), raw!];
        break;
      case "string":
        values[name] = raw!;
    }
  }
  return values;
}

/** The `--help` text. */
export function usage(): string {
  const lines = FLAGS.map((f) => {
    const def = f.default === undefined ? "" : ` (default: ${Array.isArray(f.default) ? "" : String(f.default)})`;
    return `  --${f.name}${f.kind === "bool" ? "[=<bool>]" : " <value>"}\n      ${f.help}${def}`;
  });
  return `Usage: tritium [options]\n\nOptions (tritonserver's names and meanings):\n${lines.join("\n")}\n`;
}

/** `--backend-config=<backend>,<key>=<value>` → { backend: { key: value } }. A config without a backend applies to all ("*"). */
export function parseBackendConfig(entries: readonly string[]): Record<string, Record<string, string>> {
  const out: Record<string, Record<string, string>> = {};
  for (const e of entries) {
    const comma = e.indexOf(",");
    const [backend, setting] = comma < 0 ? ["*", e] : [e.slice(0, comma), e.slice(comma + 1)];
    const eq = setting.indexOf("=");
    if (eq <= 0) throw new Error(`--backend-config expects <backend>,<key>=<value>, got '${e}'`);
    (out[backend] ??= {})[setting.slice(0, eq)] = setting.slice(eq + 1);
  }
  return out;
}
