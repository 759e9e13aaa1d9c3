/**
 * ONNX Runtime on a GPU: a KIND_GPU instance asks for the CUDA execution
 * provider on its device (TensorRT first where the config's
 * `gpu_execution_accelerator` names it). onnxruntime-node's package holds
 * the binding for both, but their provider libraries come from its install
 * script's download, which this project skips: where they are missing, the
 * load fails saying how to get them.
 */
import fs from "node:fs";
import path from "node:path";
import { createRequire } from "node:module";
import { invalidArg } from "../../core/errors.js";
import type { ModelConfig } from "../../gen/inference/model_config_pb.js";

/** One entry of ONNX Runtime's `executionProviders`. */
export type ExecutionProvider = { name: "cuda" | "tensorrt"; deviceId: number } | "cpu";

/** Where onnxruntime-node keeps its native libraries for this platform. */
function nativeDir(): string | undefined {
  try {
    const root = path.dirname(createRequire(import.meta.url).resolve("onnxruntime-node/package.json"));
    const bin = path.join(root, "bin");
    for (const napi of fs.readdirSync(bin)) {
      const dir = path.join(bin, napi, process.platform, process.arch);
      if (fs.existsSync(dir)) return dir;
    }
  } catch {
    // No package: nothing can run anyway, and the CPU path reports it.
  }
  return undefined;
}

/** The provider library a GPU session needs that is not installed, or undefined when it is. */
export function missingCudaProvider(dir = nativeDir()): string | undefined {
  const lib = process.platform === "win32" ? "onnxruntime_providers_cuda.dll" : "libonnxruntime_providers_cuda.so";
  if (dir && fs.existsSync(path.join(dir, lib))) return undefined;
  return path.join(dir ?? "node_modules/onnxruntime-node/bin/<napi>/<platform>/<arch>", lib);
}

/** Whether ONNX Runtime instances can run on a GPU here. */
export const cudaAvailable = (): boolean => missingCudaProvider() === undefined;

/** The providers of a KIND_GPU instance on `deviceId`, or a load error that says how to install them. */
export function gpuProviders(config: ModelConfig, model: string, instance: string, deviceId: number): ExecutionProvider[] {
  const missing = missingCudaProvider();
  if (missing) {
    throw invalidArg(
      `model '${model}': instance '${instance}' has kind KIND_GPU but ONNX Runtime's CUDA execution provider is not installed (${missing} is missing). ` +
        "Install onnxruntime-node's GPU binaries on a Linux x64 machine with CUDA 12: allow its install script " +
        "(package.json \"allowScripts\": { \"onnxruntime-node\": true }) and run `npm rebuild onnxruntime-node --onnxruntime-node-install=cuda12`; or use KIND_CPU",
    );
  }
  const accelerators = config.optimization?.executionAccelerators?.gpuExecutionAccelerator ?? [];
  const tensorrt = accelerators.some((a) => a.name === "tensorrt");
  return [...(tensorrt ? [{ name: "tensorrt" as const, deviceId }] : []), { name: "cuda", deviceId }, "cpu"];
}
