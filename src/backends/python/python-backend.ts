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
import { autoCompleteInProcess, startHostedInstance } from "../process-host/hosted-instance.js";
import { pythonRuntime } from "../process-host/python-runtime.js";

const SOURCE = "python-backend.ts";

export class PythonBackend implements Backend {
  readonly name = "python";
  readonly platforms: readonly string[] = [];
  readonly defaultModelFilename = "model.py";

  async createModel(ctx: BackendModelContext): Promise<BackendModel> {
    const source = readSource(ctx.modelPath);
    // A model that imports torch needs an interpreter that has it (Debian's python3 with python3-torch, say).
    const modules = /^\s*(import|from)\s+torch\b/m.test(source) ? ["numpy", "torch"] : ["numpy"];
    const python = await pythonRuntime(this.name, ctx, modules);
    // Triton runs auto_complete_config before the configuration is checked; its result is what the loader completes.
    // (Looked for in the source, not run: most models have none, and a process costs a second.)
    const completed = /def\s+auto_complete_config\s*\(/.test(source)
      ? modelConfigFromJson(JSON.stringify(await autoCompleteInProcess(ctx, python, modelConfigToJson(ctx.config), SOURCE)), `model '${ctx.name}' auto_complete_config`)
      : undefined;
    return {
      autoCompleteConfig: completed ? (config: ModelConfig) => mergeCompleted(config, completed) : undefined,
      createInstance: (config, spec) => startHostedInstance(ctx, config, spec, { python, logSource: SOURCE }),
      release: async () => undefined,
    };
  }
}

function readSource(modelPath: string): string {
  try {
    return readFileSync(modelPath, "utf8");
  } catch {
    return "";
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
