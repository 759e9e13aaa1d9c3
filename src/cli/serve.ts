/**
 * The server process of `tritium` (see main.ts): tritonserver's command line
 * over Tritium. Starts the core server on the model repositories, then the
 * frontends, and drains on SIGINT/SIGTERM.
 */
import { defaultBackends } from "../index.js";
import { Logger, type LogFormat } from "../core/observability/logger.js";
import { InferenceServer, type ModelControlMode } from "../core/server.js";
import { parseTraceConfig } from "../core/settings/trace-config.js";
import type { TraceOptions } from "../core/settings/trace-settings.js";
import { accessPolicies, httpTls } from "./security.js";
import { HttpFrontend } from "../frontends/http/http-server.js";
import { GrpcFrontend, readTlsFiles } from "../frontends/grpc/grpc-server.js";
import { MetricsFrontend } from "../frontends/metrics/metrics-frontend.js";
import { parseMetricsConfig } from "../frontends/metrics/metrics-config.js";
import { FLAGS, parseBackendConfig, parseFlags, usage, type FlagValues } from "./flags.js";

async function main(argv: string[]): Promise<number> {
  let flags: FlagValues;
  try {
    flags = parseFlags(argv);
  } catch (e) {
    process.stderr.write(`error: ${(e as Error).message}\n`);
    return 2;
  }
  if (flags.help) {
    process.stdout.write(usage());
    return 0;
  }
  const repos = [...((flags["model-repository"] as string[]) ?? []), ...((flags["model-store"] as string[]) ?? [])];
  if (repos.length === 0) {
    process.stderr.write("error: --model-repository must be specified\n");
    return 2;
  }
  const mode = String(flags["model-control-mode"]) as ModelControlMode;
  if (!["none", "poll", "explicit"].includes(mode)) {
    process.stderr.write(`error: unexpected model control mode '${mode}'; expected none, poll or explicit\n`);
    return 2;
  }
  const logFormat = String(flags["log-format"]);
  if (logFormat !== "default" && logFormat !== "ISO8601" && logFormat !== "json") {
    process.stderr.write(`error: invalid --log-format '${logFormat}'; expected default, ISO8601 or json\n`);
    return 2;
  }
  let trace: TraceOptions;
  try {
    trace = parseTraceConfig((flags["trace-config"] as string[] | undefined) ?? [], {
      file: flags["trace-file"] as string | undefined,
      level: flags["trace-level"] as string[] | undefined,
      rate: flags["trace-rate"] as number | undefined,
      count: flags["trace-count"] as number | undefined,
      logFrequency: flags["trace-log-frequency"] as number | undefined,
    });
  } catch (e) {
    process.stderr.write(`error: ${(e as Error).message}\n`);
    return 2;
  }
  let logger: Logger;
  try {
    logger = new Logger({
      info: flags["log-info"] as boolean,
      warning: flags["log-warning"] as boolean,
      error: flags["log-error"] as boolean,
      verbose: flags["log-verbose"] as number,
      format: logFormat as LogFormat,
      file: String(flags["log-file"]),
    });
  } catch (e) {
    process.stderr.write(`error: cannot open --log-file '${String(flags["log-file"])}': ${(e as Error).message}\n`);
    return 2;
  }
  for (const name of ["trace-file", "trace-level", "trace-rate", "trace-count", "trace-log-frequency"]) {
    if (flags[name] !== undefined) logger.warn("main.ts", `--${name} is deprecated; use --trace-config`);
  }
  for (const f of FLAGS) {
    if (f.inert && argv.some((a) => a === `--${f.name}` || a.startsWith(`--${f.name}=`))) {
      logger.warn("main.ts", `--${f.name} is accepted for compatibility and has no effect in Tritium`);
    }
  }
  let backendConfig;
  try {
    backendConfig = parseBackendConfig((flags["backend-config"] as string[]) ?? []);
  } catch (e) {
    process.stderr.write(`error: ${(e as Error).message}\n`);
    return 2;
  }
  // default-max-batch-size applies to every backend that auto-completes.
  for (const cfg of Object.values(backendConfig)) {
    if (cfg["default-max-batch-size"]) (backendConfig["*"] ??= {})["default-max-batch-size"] = cfg["default-max-batch-size"];
  }
  const rateLimit = String(flags["rate-limit"]);
  if (rateLimit !== "off" && rateLimit !== "execution_count") {
    process.stderr.write(`error: invalid --rate-limit '${rateLimit}'; expected off or execution_count\n`);
    return 2;
  }
  let cacheBytes = flags["response-cache-byte-size"] as number;
  for (const entry of (flags["cache-config"] as string[]) ?? []) {
    const m = /^local,size=(\d+)$/.exec(entry);
    if (!m) {
      process.stderr.write(`error: unsupported --cache-config '${entry}'; expected local,size=<bytes>\n`);
      return 2;
    }
    cacheBytes = Number(m[1]);
  }
  // A bug on one request's path must not take every other request down with it.
  process.on("unhandledRejection", (e) => logger.error("main.ts", `unhandled rejection: ${(e as Error)?.stack ?? String(e)}`));
  const core = new InferenceServer({
    modelRepositories: repos,
    backends: defaultBackends(),
    id: String(flags.id),
    strictReadiness: flags["strict-readiness"] as boolean,
    autoCompleteConfig: !(flags["disable-auto-complete-config"] as boolean) && !(flags["strict-model-config"] as boolean),
    backendConfig,
    modelControlMode: mode,
    startupModels: (flags["load-model"] as string[]) ?? [],
    modelLoadThreadCount: flags["model-load-thread-count"] as number,
    rateLimit,
    rateLimitResources: (flags["rate-limit-resource"] as string[]) ?? [],
    responseCacheBytes: cacheBytes,
    repositoryPollSecs: flags["repository-poll-secs"] as number,
    modelLoadOnDemand: flags["model-load-on-demand"] as boolean,
    modelMemoryBudget: flags["model-memory-budget"] as number,
    exitTimeoutSecs: flags["exit-timeout-secs"] as number,
    blsMaxDepth: flags["bls-max-depth"] as number,
    allowClientShm: flags["allow-client-shm"] as boolean,
    clientShmKeyPrefix: flags["client-shm-key-prefix"] as string | undefined,
    logger,
    trace,
  });
  // A signal while models load stops the server once they have (it must not kill it mid-load).
  let early: string | undefined;
  const remember = (signal: string) => () => {
    // A second signal while loading: out at once, as after start.
    if (early) process.exit(1);
    early = signal;
  };
  const earlyHandlers = [["SIGINT", remember("SIGINT")], ["SIGTERM", remember("SIGTERM")]] as const;
  for (const [s, h] of earlyHandlers) process.on(s, h);
  await core.start();
  if (flags["exit-on-error"] && !core.isReady()) {
    logger.error("main.ts", "failed to load all models; exiting (--exit-on-error=true)");
    await core.stop();
    return 1;
  }

  const closers: { close(): Promise<void>; closeAllConnections?(): void; failInFlight?(message: string): void }[] = [];
  try {
    const access = await accessPolicies(flags);
    if (flags["allow-http"]) {
      const http = new HttpFrontend(core, {
        address: String(flags["http-address"]),
        port: flags["http-port"] as number,
        maxInputSize: flags["http-max-input-size"] as number,
        access: access.http,
        tls: await httpTls(flags),
        requestTimeoutMs: (flags["http-request-timeout-secs"] as number) * 1000,
      });
      await http.listen();
      closers.push(http);
    }
    if (flags["allow-grpc"]) {
      const mutual = flags["grpc-use-ssl-mutual"] as boolean;
      const grpc = new GrpcFrontend(core, {
        address: String(flags["grpc-address"]),
        port: flags["grpc-port"] as number,
        maxMessageSize: flags["grpc-max-message-size"] as number,
        access: access.grpc,
        keepalive: {
          timeMs: flags["grpc-keepalive-time"] as number,
          timeoutMs: flags["grpc-keepalive-timeout"] as number,
          maxConnectionAgeMs: flags["grpc-max-connection-age"] as number,
          maxConnectionAgeGraceMs: flags["grpc-max-connection-age-grace"] as number,
        },
        tls: flags["grpc-use-ssl"] || mutual
          ? await readTlsFiles({ serverCert: flags["grpc-server-cert"] as string | undefined, serverKey: flags["grpc-server-key"] as string | undefined, rootCert: flags["grpc-root-cert"] as string | undefined, mutual })
          : undefined,
      });
      await grpc.listen();
      closers.push(grpc);
    }
    if (flags["allow-metrics"]) {
      const metrics = new MetricsFrontend(core, {
        address: String(flags["metrics-address"]),
        port: flags["metrics-port"] as number,
        allowCpuMetrics: flags["allow-cpu-metrics"] as boolean,
        allowGpuMetrics: flags["allow-gpu-metrics"] as boolean,
        intervalMs: flags["metrics-interval-ms"] as number,
        config: parseMetricsConfig((flags["metrics-config"] as string[] | undefined) ?? [], (m) => logger.warn("main.ts", m)),
      });
      await metrics.listen();
      closers.push(metrics);
    }
  } catch (e) {
    logger.error("main.ts", `failed to start a frontend: ${(e as Error).message}`);
    await core.stop();
    return 1;
  }

  return new Promise<number>((resolve) => {
    let signalled = false;
    const shutdown = async (signal: string) => {
      if (signalled) return;
      signalled = true;
      logger.info("main.ts", `Received ${signal}, stopping: draining in-flight requests (up to ${String(flags["exit-timeout-secs"])} s)`);
      const closing = closers.map((c) => c.close());
      // core.stop waits up to the exit timeout for in-flight requests; a batch that hangs past it must not hold the exit.
      const exitMs = (flags["exit-timeout-secs"] as number) * 1000;
      let timer: NodeJS.Timeout | undefined;
      const gaveUp = await Promise.race([
        core.stop().then(() => false),
        new Promise<boolean>((r) => (timer = setTimeout(() => r(true), exitMs + 500))),
      ]);
      clearTimeout(timer);
      if (gaveUp) {
        logger.warn("main.ts", `requests still in flight after --exit-timeout-secs=${String(flags["exit-timeout-secs"])}; they fail`);
        for (const c of closers) c.failInFlight?.(`the server is shutting down: the request did not finish within --exit-timeout-secs=${String(flags["exit-timeout-secs"])}`);
      }
      for (const c of closers) c.closeAllConnections?.();
      await Promise.allSettled(closing);
      logger.info("main.ts", "Server stopped");
      logger.close();
      resolve(0);
    };
    for (const [s, h] of earlyHandlers) process.off(s, h);
    process.once("SIGINT", () => void shutdown("SIGINT"));
    process.once("SIGTERM", () => void shutdown("SIGTERM"));
    if (early) void shutdown(early);
    // Started by main.ts's launcher: a launcher that is gone (killed outright) takes the server with it.
    const launcher = Number(process.env.TRITIUM_LAUNCHER_PID);
    if (launcher) setInterval(() => process.ppid !== launcher && void shutdown("the end of its launcher process"), 1000).unref();
  });
}

main(process.argv.slice(2)).then(
  (code) => process.exit(code),
  (e) => {
    process.stderr.write(`fatal: ${(e as Error).stack ?? String(e)}\n`);
    process.exit(1);
  },
);
