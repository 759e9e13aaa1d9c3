/**
 * Triton's Python backend (`backend: "python"`, `<version>/model.py` with
 * `class TritonPythonModel`): each instance is a Python child process running
 * `python/tritium_host.py`, which imports the model next to Tritium's
 * `triton_python_backend_utils` (see process-host/hosted-instance.ts for the
 * server's side). The interpreter: see process-host/python-runtime.ts.
 */
import { readFileSync } from "node:fs";
import type { Backend, BackendModel, BackendModelContext } from "../../core/backend.js";
import { modelConfigFromJson, modelConfigToJson } from "../../core/repository/model-config.js";
import type { ModelConfig } from "../../gen/inference/model_config_pb.js";
import { executeTimeout, initializeArgs } from "../instance-life.js";
import { autoCompleteInProcess, startHostedInstance } from "../process-host/hosted-instance.js";
import { pythonRuntime } from "../process-host/python-runtime.js";

const SOURCE = "python-backend.ts";

export class PythonBackend implements Backend {
  readonly name = "python";
  readonly platforms: readonly string[] = [];
  readonly defaultModelFilename = "model.py";

  async createModel(ctx: BackendModelContext): Promise<BackendModel> {
    const python = await pythonRuntime(this.name, ctx.name, ctx.modelDir, ctx.config, ctx.backendConfig, ["numpy"]);
    // Triton runs auto_complete_config before the configuration is checked; its result is what the loader completes.
    const completed = hasAutoComplete(ctx.modelPath)
      ? modelConfigFromJson(JSON.stringify(await autoCompleteInProcess(python, ctx.modelPath, modelConfigToJson(ctx.config), `model '${ctx.name}'`, SOURCE, ctx)), `model '${ctx.name}' auto_complete_config`)
      : undefined;
    return {
      autoCompleteConfig: completed ? (config: ModelConfig) => mergeCompleted(config, completed) : undefined,
      createInstance: (config, spec) =>
        startHostedInstance({
          ctx,
          spec,
          python,
          modelFile: ctx.modelPath,
          args: initializeArgs(ctx, config, spec, spec.kind === "KIND_GPU" ? "GPU" : "CPU"),
          decoupled: config.modelTransactionPolicy?.decoupled ?? false,
          timeoutMs: executeTimeout(config, ctx.name),
          logSource: SOURCE,
        }),
      release: async () => undefined,
    };
  }
}

/** Whether model.py defines `auto_complete_config` (read, not run: most models do not, and a process costs a second). */
function hasAutoComplete(modelPath: string): boolean {
  try {
    return /def\s+auto_complete_config\s*\(/.test(readFileSync(modelPath, "utf8"));
  } catch {
    return false;
  }
}

/** The loader's config (instance groups and defaults it has filled) with what the model's auto_complete_config set. */
function mergeCompleted(config: ModelConfig, completed: ModelConfig): ModelConfig {
  config.maxBatchSize = completed.maxBatchSize;
  config.input = completed.input;
  config.output = completed.output;
  if (completed.schedulingChoice.case) config.schedulingChoice = completed.schedulingChoice;
  if (completed.modelTransactionPolicy) config.modelTransactionPolicy = completed.modelTransactionPolicy;
  return config;
}
