/**
 * GPUs, on a machine that may have none: instance placement as Triton does
 * it (count per listed GPU, every GPU when none is listed, KIND_GPU refused
 * without a GPU), nvidia-smi's output read into Triton's GPU metrics with the
 * gpu_uuid label, and no GPU metric and no error where there is no GPU.
 * scripts/gpu-check.sh exercises the real thing on a GPU machine.
 */
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { Registry } from "prom-client";
import { ModelInstanceGroup_Kind } from "../src/gen/inference/model_config_pb.js";
import { parseGpuCsv, readGpus } from "../src/core/devices/nvidia-smi.js";
import { placeInstances } from "../src/core/repository/model-loader.js";
import { GpuMetrics } from "../src/frontends/metrics/gpu-metrics.js";
import { MetricsFrontend } from "../src/frontends/metrics/metrics-frontend.js";
import { EXAMPLES, startServer } from "./helpers.js";

/** What `nvidia-smi --query-gpu=index,uuid,name,utilization.gpu,memory.total,memory.used,power.draw,power.limit --format=csv,noheader,nounits` prints for two GPUs. */
const SMI = `0, GPU-5e2a1c3b-0000-4000-8000-000000000001, NVIDIA H100 80GB HBM3, 37, 81559, 1234, 71.53, 700.00
1, GPU-5e2a1c3b-0000-4000-8000-000000000002, NVIDIA H100 80GB HBM3, 0, 81559, 4, [N/A], [N/A]
`;
const TWO = parseGpuCsv(SMI);

describe("GPUs", () => {
  it("reads nvidia-smi's CSV in Triton's units, an unreported field as 0", () => {
    assert.deepEqual(TWO[0], {
      index: 0, uuid: "GPU-5e2a1c3b-0000-4000-8000-000000000001", name: "NVIDIA H100 80GB HBM3",
      utilization: 0.37, memoryTotalBytes: 81559 * 2 ** 20, memoryUsedBytes: 1234 * 2 ** 20, powerUsage: 71.53, powerLimit: 700,
    });
    assert.equal(TWO[1]!.powerUsage, 0);
    assert.deepEqual(parseGpuCsv("No devices were found\n"), []);
  });

  it("places count instances on each listed GPU, on every GPU when none is listed, count on the CPU", () => {
    const gpu = (gpus: number[]) => ({ name: "m", kind: ModelInstanceGroup_Kind.GPU, count: 2, gpus });
    assert.deepEqual(placeInstances("m", 0, gpu([1, 0]), TWO).map((s) => [s.name, s.kind, s.deviceId]), [
      ["m_0_0", "KIND_GPU", 1], ["m_0_1", "KIND_GPU", 1], ["m_0_2", "KIND_GPU", 0], ["m_0_3", "KIND_GPU", 0],
    ]);
    assert.deepEqual(placeInstances("m", 1, gpu([]), TWO).map((s) => s.deviceId), [0, 0, 1, 1]);
    assert.deepEqual(placeInstances("m", 0, { name: "m", kind: ModelInstanceGroup_Kind.CPU, count: 3, gpus: [] }, TWO).map((s) => [s.kind, s.deviceId]), [
      ["KIND_CPU", 0], ["KIND_CPU", 0], ["KIND_CPU", 0],
    ]);
  });

  it("refuses KIND_GPU without a GPU, and a GPU the machine does not have, naming the group", () => {
    assert.throws(() => placeInstances("m", 2, { name: "m", kind: ModelInstanceGroup_Kind.GPU, count: 1, gpus: [] }, []),
      /model 'm': instance_group\[2\] has kind KIND_GPU but this machine has no usable GPU/);
    assert.throws(() => placeInstances("m", 0, { name: "m", kind: ModelInstanceGroup_Kind.GPU, count: 1, gpus: [3] }, TWO),
      /instance_group\[0\] names GPU 3, but this machine has GPUs 0, 1/);
  });

  it("exposes Triton's GPU families per gpu_uuid, energy as power integrated over time", async () => {
    const registry = new Registry();
    const m = GpuMetrics.register(registry, TWO, 0);
    m.update(parseGpuCsv(SMI.replace("71.53", "128.47")), 2000);
    const text = await registry.metrics();
    const uuid = TWO[0]!.uuid;
    assert.match(text, new RegExp(`nv_gpu_utilization\\{gpu_uuid="${uuid}"\\} 0\\.37`));
    assert.match(text, new RegExp(`nv_gpu_memory_total_bytes\\{gpu_uuid="${uuid}"\\} ${81559 * 2 ** 20}`));
    assert.match(text, new RegExp(`nv_gpu_power_usage\\{gpu_uuid="${uuid}"\\} 128\\.47`));
    assert.match(text, new RegExp(`nv_gpu_power_limit\\{gpu_uuid="${uuid}"\\} 700`));
    // (71.53 W + 128.47 W) / 2 over 2 s = 200 J.
    assert.match(text, new RegExp(`nv_energy_consumption\\{gpu_uuid="${uuid}"\\} 200\\b`));
    assert.match(text, /# TYPE nv_energy_consumption counter/);
    m.stop();
  });

  it("reports no GPU metric, and no error, where nvidia-smi finds no GPU", async () => {
    const saved = process.env.TRITIUM_NVIDIA_SMI;
    process.env.TRITIUM_NVIDIA_SMI = "/nonexistent/nvidia-smi";
    const s = await startServer({ modelRepository: EXAMPLES, modelControlMode: "explicit" });
    const metrics = new MetricsFrontend(s.core, { address: "127.0.0.1", port: 0 });
    try {
      assert.deepEqual(await readGpus(), []);
      await metrics.listen();
      const text = await metrics.metrics();
      assert.doesNotMatch(text, /nv_gpu_|nv_energy_consumption/);
      assert.match(text, /nv_cpu_utilization/);
    } finally {
      await metrics.close();
      await s.close();
      if (saved === undefined) delete process.env.TRITIUM_NVIDIA_SMI;
      else process.env.TRITIUM_NVIDIA_SMI = saved;
    }
  });
});
