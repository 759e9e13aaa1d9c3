/**
 * Triton's metric families: names, HELP texts and units exactly as
 * `core/src/metrics.cc` registers them, so that dashboards and alerts written
 * for Triton read Tritium unchanged. These strings are facts to match; do not
 * reword them.
 */

export interface FamilySpec {
  name: string;
  help: string;
}

/** Per-model counters (labels `model`, `version`; failures add `reason`). */
export const COUNTERS = {
  success: { name: "nv_inference_request_success", help: "Number of successful inference requests, all batch sizes" },
  failure: { name: "nv_inference_request_failure", help: "Number of failed inference requests, all batch sizes" },
  inferenceCount: { name: "nv_inference_count", help: "Number of inferences performed (does not include cached requests)" },
  executionCount: { name: "nv_inference_exec_count", help: "Number of model executions performed (does not include cached requests)" },
} satisfies Record<string, FamilySpec>;

/** The latency phases a request goes through, in Triton's order. */
export type Phase = "request" | "queue" | "computeInput" | "computeInfer" | "computeOutput";
export const PHASES: readonly Phase[] = ["request", "queue", "computeInput", "computeInfer", "computeOutput"];

/** Cumulative latency counters, dropped by `--metrics-config counter_latencies=false`. */
export const LATENCY_COUNTERS: Record<Phase, FamilySpec> = {
  request: { name: "nv_inference_request_duration_us", help: "Cumulative inference request duration in microseconds (includes cached requests)" },
  queue: { name: "nv_inference_queue_duration_us", help: "Cumulative inference queuing duration in microseconds (includes cached requests)" },
  computeInput: { name: "nv_inference_compute_input_duration_us", help: "Cumulative compute input duration in microseconds (does not include cached requests)" },
  computeInfer: { name: "nv_inference_compute_infer_duration_us", help: "Cumulative compute inference duration in microseconds (does not include cached requests)" },
  computeOutput: {
    name: "nv_inference_compute_output_duration_us",
    help: "Cumulative inference compute output duration in microseconds (does not include cached requests)",
  },
};

export const PENDING: FamilySpec = {
  name: "nv_inference_pending_request_count",
  help: "Instantaneous number of pending requests awaiting execution per-model.",
};

/**
 * Latency summaries behind `summary_latencies=true`. Triton reuses the
 * counters' HELP for the three compute summaries; so do we.
 */
export const LATENCY_SUMMARIES: Record<Phase, FamilySpec> = {
  request: { name: "nv_inference_request_summary_us", help: "Summary of inference request duration in microseconds (includes cached requests)" },
  queue: { name: "nv_inference_queue_summary_us", help: "Summary of inference queuing duration in microseconds (includes cached requests)" },
  computeInput: { name: "nv_inference_compute_input_summary_us", help: "Cumulative compute input duration in microseconds (does not include cached requests)" },
  computeInfer: { name: "nv_inference_compute_infer_summary_us", help: "Cumulative compute inference duration in microseconds (does not include cached requests)" },
  computeOutput: {
    name: "nv_inference_compute_output_summary_us",
    help: "Cumulative inference compute output duration in microseconds (does not include cached requests)",
  },
};

/** Triton's default summary quantiles (`summary_quantiles` overrides them). */
export const DEFAULT_QUANTILES = [0.5, 0.9, 0.95, 0.99, 0.999];

/** Triton's time-to-first-response histogram (milliseconds), behind `histogram_latencies=true`. */
export const FIRST_RESPONSE_HISTOGRAM = {
  name: "nv_inference_first_response_histogram_ms",
  help: "Duration from request to first response in milliseconds",
  buckets: [100, 500, 2000, 5000],
};

/**
 * Histograms of every phase, beyond Triton 2.71: the names and default
 * buckets (microseconds) of the open Triton core PR #474, so that dashboards
 * keep working if Triton adopts it. HELP texts are ours, worded as Triton's.
 */
export const LATENCY_HISTOGRAMS: Record<Phase, FamilySpec & { buckets: number[] }> = {
  request: {
    name: "nv_inference_request_duration_histogram_us",
    help: "Histogram of inference request duration in microseconds (includes cached requests)",
    buckets: [1000, 5000, 25000, 50000, 100000],
  },
  queue: {
    name: "nv_inference_queue_duration_histogram_us",
    help: "Histogram of inference queuing duration in microseconds (includes cached requests)",
    buckets: [100, 1000, 5000, 10000, 50000],
  },
  computeInput: {
    name: "nv_inference_compute_input_duration_histogram_us",
    help: "Histogram of compute input duration in microseconds (does not include cached requests)",
    buckets: [100, 500, 1000, 5000, 10000],
  },
  computeInfer: {
    name: "nv_inference_compute_infer_duration_histogram_us",
    help: "Histogram of compute inference duration in microseconds (does not include cached requests)",
    buckets: [1000, 5000, 25000, 50000, 100000],
  },
  computeOutput: {
    name: "nv_inference_compute_output_duration_histogram_us",
    help: "Histogram of inference compute output duration in microseconds (does not include cached requests)",
    buckets: [100, 500, 1000, 5000, 10000],
  },
};

/** Host metrics, read from /proc (Linux only), behind `--allow-cpu-metrics`. */
export const CPU_GAUGES = {
  utilization: { name: "nv_cpu_utilization", help: "CPU utilization rate [0.0 - 1.0]" },
  memoryTotal: { name: "nv_cpu_memory_total_bytes", help: "CPU total memory (RAM), in bytes" },
  memoryUsed: { name: "nv_cpu_memory_used_bytes", help: "CPU used memory (RAM), in bytes" },
} satisfies Record<string, FamilySpec>;

/** GPU metrics (`gpu_uuid` label), behind `--allow-gpu-metrics`, where nvidia-smi lists GPUs. */
export const GPU_GAUGES = {
  utilization: { name: "nv_gpu_utilization", help: "GPU utilization rate [0.0 - 1.0)" },
  memoryTotal: { name: "nv_gpu_memory_total_bytes", help: "GPU total memory, in bytes" },
  memoryUsed: { name: "nv_gpu_memory_used_bytes", help: "GPU used memory, in bytes" },
  powerUsage: { name: "nv_gpu_power_usage", help: "GPU power usage in watts" },
  powerLimit: { name: "nv_gpu_power_limit", help: "GPU power management limit in watts" },
} satisfies Record<string, FamilySpec>;

export const GPU_ENERGY = { name: "nv_energy_consumption", help: "GPU energy consumption in joules since the Triton Server started" } satisfies FamilySpec;
