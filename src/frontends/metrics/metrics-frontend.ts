import http, { type IncomingMessage, type ServerResponse } from "node:http";
import { Registry } from "prom-client";
import type { InferenceServer } from "../../core/server.js";
import { CpuMetrics } from "./cpu-metrics.js";
import { GpuMetrics } from "./gpu-metrics.js";
import { InferenceMetrics } from "./inference-metrics.js";
import { closeHttp, listenHttp } from "../http/listener.js";
import { DEFAULT_METRICS_CONFIG, type MetricsConfig } from "./metrics-config.js";

export interface MetricsFrontendOptions {
  /** `--metrics-address` (default 0.0.0.0). */
  address?: string;
  /** `--metrics-port` (default 8002; 0 picks a free port). */
  port?: number;
  /** `--allow-cpu-metrics` (default true): nv_cpu_* gauges from /proc. */
  allowCpuMetrics?: boolean;
  /** `--allow-gpu-metrics` (default true): nv_gpu_* and nv_energy_consumption per GPU nvidia-smi lists; none without GPUs. */
  allowGpuMetrics?: boolean;
  /** `--metrics-interval-ms` (default 2000): how often per-interval metrics (CPU) refresh. */
  intervalMs?: number;
  /** `--metrics-config` settings. */
  config?: Partial<MetricsConfig>;
}

/**
 * Triton's metrics endpoint: `GET /metrics` in Prometheus text format on its
 * own port, as tritonserver serves it on 8002. Like the other frontends it
 * holds no logic of its own: per-model numbers come from core (see
 * {@link InferenceMetrics}), host numbers from /proc (see {@link CpuMetrics}).
 *
 * @example
 * const metrics = new MetricsFrontend(server, { port: 8002, config: { summaryLatencies: true } });
 * await metrics.listen();
 * // curl localhost:8002/metrics
 * await metrics.close();
 */
export class MetricsFrontend {
  /** The families this frontend serves; a private registry, so several servers can share a process. */
  readonly registry = new Registry();
  private readonly inference: InferenceMetrics;
  private readonly server: http.Server;
  private cpu: CpuMetrics | undefined;
  private gpu: GpuMetrics | undefined;

  constructor(private readonly core: InferenceServer, private readonly options: MetricsFrontendOptions = {}) {
    this.inference = new InferenceMetrics(core, this.registry, { ...DEFAULT_METRICS_CONFIG, ...options.config });
    this.server = http.createServer((req, res) => void this.handle(req, res));
  }

  /** Starts CPU polling (when allowed) and listening; resolves with the bound port. */
  async listen(): Promise<number> {
    if (this.options.allowCpuMetrics ?? true) {
      try {
        this.cpu = await CpuMetrics.start(this.registry, this.options.intervalMs ?? 2000);
        this.core.logger.info("metrics.ts", "Collecting CPU metrics");
      } catch (e) {
        this.core.logger.warn("metrics.ts", `CPU metrics are not available: ${(e as Error).message}`);
      }
    }
    // The server has already asked nvidia-smi at start: without GPUs there is nothing to poll.
    if ((this.options.allowGpuMetrics ?? true) && this.core.gpus.length > 0) {
      this.gpu = await GpuMetrics.start(this.registry, this.options.intervalMs ?? 2000);
      for (const g of this.gpu?.gpus ?? []) this.core.logger.info("metrics.ts", `Collecting metrics for GPU ${g.index}: ${g.name}`);
    }
    const address = this.options.address ?? "0.0.0.0";
    const port = await listenHttp(this.server, this.options.port ?? 8002, address);
    this.core.logger.info("http_server.ts", `Started Metrics Service at ${address}:${port}`);
    return port;
  }

  /** The current exposition text, as `GET /metrics` returns it. */
  async metrics(): Promise<string> {
    this.inference.refresh();
    return this.registry.metrics();
  }

  /** Stops polling and observing, and stops listening. */
  async close(): Promise<void> {
    this.cpu?.stop();
    this.gpu?.stop();
    this.inference.close();
    await closeHttp(this.server);
  }

  /** Ends every remaining connection. */
  closeAllConnections(): void {
    this.server.closeAllConnections();
  }

  /** Triton's metrics handler: GET only (405), the path `/metrics` or `/metrics/` only (400). */
  private async handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    if (req.method !== "GET") {
      res.writeHead(405, { "Content-Type": "application/json" }).end(JSON.stringify({ error: "Method Not Allowed" }));
      return;
    }
    const url = req.url ?? "/";
    const q = url.indexOf("?");
    const path = q < 0 ? url : url.slice(0, q);
    if (path !== "/metrics" && path !== "/metrics/") {
      res.writeHead(400, { "Content-Type": "text/plain; charset=utf-8" }).end();
      return;
    }
    try {
      const body = await this.metrics();
      res.writeHead(200, { "Content-Type": "text/plain; charset=utf-8" }).end(body);
    } catch (e) {
      this.core.logger.error("http_server.ts", `GET /metrics: ${(e as Error).message}`);
      if (!res.headersSent) res.writeHead(500, { "Content-Type": "application/json" }).end(JSON.stringify({ error: (e as Error).message }));
    }
  }
}
