/**
 * The machine's NVIDIA GPUs, read with `nvidia-smi` (the driver's own tool:
 * present wherever the driver is, and no native addon to build). Where it is
 * missing or fails, there are no GPUs: nothing here throws.
 */
import { execFile } from "node:child_process";

/** A GPU as placement and metrics need it. */
export interface Gpu {
  index: number;
  uuid: string;
  name: string;
}

/** One reading of a GPU's counters, in Triton's metric units. */
export interface GpuReading extends Gpu {
  /** Fraction in [0, 1]. */
  utilization: number;
  memoryTotalBytes: number;
  memoryUsedBytes: number;
  /** Watts. */
  powerUsage: number;
  powerLimit: number;
}

const QUERY = "index,uuid,name,utilization.gpu,memory.total,memory.used,power.draw,power.limit";

/** The `nvidia-smi` to run: `TRITIUM_NVIDIA_SMI` where set, else the one on PATH. */
const command = () => process.env.TRITIUM_NVIDIA_SMI ?? "nvidia-smi";

function run(args: string[]): Promise<string | undefined> {
  return new Promise((resolve) => {
    execFile(command(), args, { timeout: 5000 }, (err, stdout) => resolve(err ? undefined : stdout));
  });
}

/** Reads every GPU's counters; [] without GPUs or without nvidia-smi. */
export async function readGpus(): Promise<GpuReading[]> {
  const out = await run([`--query-gpu=${QUERY}`, "--format=csv,noheader,nounits"]);
  return out === undefined ? [] : parseGpuCsv(out);
}

/**
 * Parses `nvidia-smi --query-gpu=<QUERY> --format=csv,noheader,nounits`
 * (MiB, W, %); a field the GPU cannot report ("[N/A]", "[Not Supported]")
 * reads as 0.
 */
export function parseGpuCsv(text: string): GpuReading[] {
  const num = (s: string | undefined) => {
    const n = Number(s);
    return Number.isFinite(n) ? n : 0;
  };
  const gpus: GpuReading[] = [];
  for (const line of text.split(/\r?\n/)) {
    const f = line.split(",").map((s) => s.trim());
    if (f.length < 8 || !/^\d+$/.test(f[0]!)) continue;
    gpus.push({
      index: Number(f[0]),
      uuid: f[1]!,
      name: f[2]!,
      utilization: num(f[3]) / 100,
      memoryTotalBytes: num(f[4]) * 2 ** 20,
      memoryUsedBytes: num(f[5]) * 2 ** 20,
      powerUsage: num(f[6]),
      powerLimit: num(f[7]),
    });
  }
  return gpus;
}
