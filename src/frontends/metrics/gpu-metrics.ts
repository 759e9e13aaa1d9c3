/**
 * Triton's GPU metrics, labelled `gpu_uuid`, refreshed every
 * `--metrics-interval-ms` from nvidia-smi (Triton reads DCGM; nvidia-smi
 * reads the same driver counters and needs no native addon). Energy is the
 * power readings integrated over time since the server started, as
 * nvidia-smi has no energy counter on every GPU.
 */
import { Counter, Gauge, type Registry } from "prom-client";
import { readGpus, type GpuReading } from "../../core/devices/nvidia-smi.js";
import { GPU_ENERGY, GPU_GAUGES } from "./families.js";

export class GpuMetrics {
  private readonly gauges: Record<keyof typeof GPU_GAUGES, Gauge>;
  private readonly energy: Counter;
  private timer: NodeJS.Timeout | undefined;
  /** Per GPU: the last power reading and when it was taken. */
  private readonly lastPower = new Map<string, { watts: number; at: number }>();

  private constructor(registry: Registry, readonly gpus: readonly GpuReading[]) {
    const gauge = (spec: { name: string; help: string }) => new Gauge({ name: spec.name, help: spec.help, labelNames: ["gpu_uuid"], registers: [registry] });
    this.gauges = {
      utilization: gauge(GPU_GAUGES.utilization),
      memoryTotal: gauge(GPU_GAUGES.memoryTotal),
      memoryUsed: gauge(GPU_GAUGES.memoryUsed),
      powerUsage: gauge(GPU_GAUGES.powerUsage),
      powerLimit: gauge(GPU_GAUGES.powerLimit),
    };
    this.energy = new Counter({ name: GPU_ENERGY.name, help: GPU_ENERGY.help, labelNames: ["gpu_uuid"], registers: [registry] });
  }

  /** Registers the families and starts polling; undefined (registering nothing) where there is no GPU. */
  static async start(registry: Registry, intervalMs: number): Promise<GpuMetrics | undefined> {
    const gpus = await readGpus();
    if (gpus.length === 0) return undefined;
    const m = GpuMetrics.register(registry, gpus);
    m.timer = setInterval(() => void readGpus().then((g) => m.update(g)), Math.max(1, intervalMs));
    m.timer.unref();
    return m;
  }

  /** Registers the families for `gpus`, set from that first reading (start() then polls). */
  static register(registry: Registry, gpus: readonly GpuReading[], now = Date.now()): GpuMetrics {
    const m = new GpuMetrics(registry, gpus);
    m.update(gpus, now);
    return m;
  }

  /** Sets the gauges from one reading, and adds the energy used since the one before. */
  update(readings: readonly GpuReading[], now = Date.now()): void {
    for (const g of readings) {
      const labels = { gpu_uuid: g.uuid };
      this.gauges.utilization.set(labels, g.utilization);
      this.gauges.memoryTotal.set(labels, g.memoryTotalBytes);
      this.gauges.memoryUsed.set(labels, g.memoryUsedBytes);
      this.gauges.powerUsage.set(labels, g.powerUsage);
      this.gauges.powerLimit.set(labels, g.powerLimit);
      const last = this.lastPower.get(g.uuid);
      // Trapezoids between readings: watts × seconds = joules.
      if (last) this.energy.inc(labels, ((last.watts + g.powerUsage) / 2) * ((now - last.at) / 1000));
      else this.energy.inc(labels, 0);
      this.lastPower.set(g.uuid, { watts: g.powerUsage, at: now });
    }
  }

  stop(): void {
    if (this.timer) clearInterval(this.timer);
    this.timer = undefined;
  }
}
