/**
 * Triton's `identity` utility backend as a built-in JavaScript model: each
 * input is answered as the output at the same position of the model
 * configuration, with its shape and bytes unchanged (BYTES byte for byte, NUL
 * bytes included, which an ONNX identity cannot do: ONNX Runtime ends strings
 * at NUL).
 */
import type { ModelInitializeArgs, ModelOutput, ModelRequest, ModelResponse, TritiumModel } from "../model-api.js";

interface ConfigJson {
  input?: { name: string }[];
  output?: { name: string }[];
}

export default class IdentityModel implements TritiumModel {
  /** Output name → the input at its position. */
  private readonly sourceOf = new Map<string, string>();

  initialize(args: ModelInitializeArgs): void {
    const config = JSON.parse(args.model_config) as ConfigJson;
    const inputs = config.input ?? [];
    for (const [i, o] of (config.output ?? []).entries()) {
      const input = inputs[i];
      if (!input) throw new Error(`output '${o.name}' has no input at position ${i} to echo`);
      this.sourceOf.set(o.name, input.name);
    }
  }

  execute(requests: ModelRequest[]): ModelResponse[] {
    return requests.map((r) => {
      const outputs: Record<string, ModelOutput> = {};
      for (const name of r.requestedOutputs) {
        const t = r.inputs[this.sourceOf.get(name)!];
        if (!t) return { error: `output '${name}': its input was not sent` };
        outputs[name] = { datatype: t.datatype, shape: t.shape, data: t.bytes ?? t.data };
      }
      return { outputs };
    });
  }
}
