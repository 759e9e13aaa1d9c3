import fs from "node:fs/promises";
import { Gauge, type Registry } from "prom-client";
import { CPU_GAUGES } from "./families.js";

/** Aggregate CPU time from the first line of /proc/stat, in clock ticks. */
export interface CpuTimes {
  busy: number;
  total: number;
}

/**
 * Parses the `cpu ` line of /proc/stat. Idle time is idle + iowait; guest
 * time is already part of user time, so it is not added twice (as Triton).
 */
export function parseProcStat(text: string): CpuTimes {
  const line = text.split("\n", 1)[0] ?? "";
  if (!line.startsWith("cpu ")) throw new Error("/proc/stat does not start with the aggregate cpu line");
  const [user = 0, nice = 0, system = 0, idle = 0, iowait = 0, irq = 0, softirq = 0, steal = 0] = line.trim().split(/\s+/).slice(1).map(Number);
  const total = user + nice + system + idle + iowait + irq + softirq + steal;
  return { busy: total - idle - iowait, total };
}

/** Total and used (total − available) memory in bytes from /proc/meminfo. */
export function parseMemInfo(text: string): { total: number; used: number } {
  const kb = (name: string) => {
    const m = new RegExp(`^${name}:\\s+(\\d+)`, "m").exec(text);
    if (!m) throw new Error(`/proc/meminfo has no ${name}`);
    return Number(m[1]) * 1024;
  };
  const total = kb("MemTotal");
  const available = kb("MemAvailable");
  return { total, used: Math.max(0, total - available) };
}

/**
 * Host CPU and memory gauges, refreshed every `--metrics-interval-ms` from
 * /proc (Linux only, as Triton). Utilization is the busy share of CPU time
 * since the previous poll, so it reads 0 until the second poll.
 */
export class CpuMetrics {
  private readonly utilization: Gauge;
  private readonly memoryTotal: Gauge;
  private readonly memoryUsed: Gauge;
  private timer: NodeJS.Timeout | undefined;
  private previous: CpuTimes | undefined;

  private constructor(registry: Registry) {
    const gauge = (spec: { name: string; help: string }) => new Gauge({ name: spec.name, help: spec.help, registers: [registry] });
    this.utilization = gauge(CPU_GAUGES.utilization);
    this.memoryTotal = gauge(CPU_GAUGES.memoryTotal);
    this.memoryUsed = gauge(CPU_GAUGES.memoryUsed);
  }

  /**
   * Registers the gauges and starts polling, or rejects (registering nothing)
   * where /proc cannot be read.
   */
  static async start(registry: Registry, intervalMs: number): Promise<CpuMetrics> {
    await Promise.all([fs.readFile("/proc/stat", "utf8").then(parseProcStat), fs.readFile("/proc/meminfo", "utf8").then(parseMemInfo)]);
    const m = new CpuMetrics(registry);
    await m.poll();
    // The poll timer must not keep the process alive on its own.
    m.timer = setInterval(() => void m.poll().catch(() => undefined), Math.max(1, intervalMs));
    m.timer.unref();
    return m;
  }

  /** Reads /proc once and updates the gauges. */
  async poll(): Promise<void> {
    const [stat, mem] = await Promise.all([fs.readFile("/proc/stat", "utf8"), fs.readFile("/proc/meminfo", "utf8")]);
    const now = parseProcStat(stat);
    if (this.previous) {
      const total = now.total - this.previous.total;
      this.utilization.set(total > 0 ? Math.min(1, Math.max(0, (now.busy - this.previous.busy) / total)) : 0);
    }
    this.previous = now;
    const { total, used } = parseMemInfo(mem);
    this.memoryTotal.set(total);
    this.memoryUsed.set(used);
  }

  stop(): void {
    if (this.timer) clearInterval(this.timer);
    this.timer = undefined;
  }
}
