/**
 * Triton's PyTorch backend (`backend: "pytorch"` or `platform:
 * "pytorch_libtorch"`, `<version>/model.pt`): a TorchScript file run with
 * `torch.jit.load` in a Python process per instance. It is the Python
 * backend's machinery (process-host/) running Tritium's own model,
 * `python/tritium_torch_model.py`, which follows Triton's naming rules for
 * inputs and outputs and reads its model parameters (`INFERENCE_MODE`,
 * `DISABLE_OPTIMIZED_EXECUTION`, `INTRA_OP_THREAD_COUNT`,
 * `INTER_OP_THREAD_COUNT`, `ENABLE_CACHE_CLEANING`).
 *
 * The interpreter must import torch (Debian's `python3-torch` by default;
 * see process-host/python-runtime.ts for choosing another).
 */
import path from "node:path";
import type { Backend, BackendModel, BackendModelContext } from "../../core/backend.js";
import { invalidArg } from "../../core/errors.js";
import type { ModelConfig } from "../../gen/inference/model_config_pb.js";
import { PYTHON_DIR, startHostedInstance } from "../process-host/hosted-instance.js";
import { pythonRuntime } from "../process-host/python-runtime.js";

const SOURCE = "pytorch-backend.ts";
const RUNNER = path.join(PYTHON_DIR, "tritium_torch_model.py");

export class PyTorchBackend implements Backend {
  readonly name = "pytorch";
  readonly platforms: readonly string[] = ["pytorch_libtorch"];
  readonly defaultModelFilename = "model.pt";
  /** TorchScript runs on `cuda:<device>` where PyTorch has CUDA (KIND_GPU fails its load where it does not). */
  readonly gpuCapable = true;

  async createModel(ctx: BackendModelContext): Promise<BackendModel> {
    const python = await pythonRuntime(this.name, ctx, ["numpy", "torch"]);
    return {
      // Auto-complete is where Triton tells a user that a TorchScript config cannot be completed; without it, core's check says it.
      autoCompleteConfig: (config: ModelConfig) => {
        requireTensors(ctx, config);
        return config;
      },
      createInstance: (config, spec) => {
        if (config.modelTransactionPolicy?.decoupled) throw invalidArg(`model '${ctx.name}': the PyTorch backend runs no decoupled models (as Triton's)`);
        return startHostedInstance(ctx, config, spec, { python, modelFile: RUNNER, extraArgs: { tritium_model_file: ctx.modelPath }, logSource: SOURCE });
      },
      release: async () => undefined,
    };
  }
}

/** A TorchScript file names no tensors and no datatypes: there is nothing to complete a configuration from. */
function requireTensors(ctx: BackendModelContext, config: ModelConfig): void {
  for (const field of ["input", "output"] as const) {
    if (config[field].length === 0) {
      throw invalidArg(
        `model '${ctx.name}': ${path.join(ctx.modelDir, "config.pbtxt")} must list '${field}': the PyTorch backend cannot auto-complete ` +
          `a configuration from a TorchScript file ('${ctx.modelPath}' names no tensors)`,
      );
    }
  }
}
