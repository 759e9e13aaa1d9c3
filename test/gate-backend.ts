import type { Backend, BackendInstance, BackendModelContext } from "../src/core/backend.js";
import type { BatchRequest, BatchResult } from "../src/core/requests/inference.js";

/**
 * A JavaScript backend for scheduling tests: Y = X (INT32), and every
 * execution is recorded (instance, the X values of its requests in batch
 * order) and waits for `gate` to open, so a test can hold an instance busy
 * and see exactly which batches the scheduler forms.
 */
export class GateBackend implements Backend {
  readonly name = "gate";
  readonly platforms = [] as const;
  readonly defaultModelFilename = "model.gate";
  readonly executions: { instance: string; xs: number[] }[] = [];
  running = 0;
  maxRunning = 0;
  private gate: Promise<void> = Promise.resolve();
  private open: () => void = () => undefined;

  /** Executions started from now on wait until release() is called. */
  hold(): void {
    this.gate = new Promise((r) => (this.open = r));
  }

  release(): void {
    this.open();
  }

  async createModel(_ctx: BackendModelContext) {
    return {
      createInstance: async (_config: unknown, spec: { name: string }): Promise<BackendInstance> => ({
        name: spec.name,
        execute: async (requests: BatchRequest[]): Promise<BatchResult> => {
          const xs = requests.flatMap((r) => Array.from(new Int32Array(r.inputs[0]!.data.slice().buffer)));
          this.executions.push({ instance: spec.name, xs });
          this.running++;
          this.maxRunning = Math.max(this.maxRunning, this.running);
          await this.gate;
          await new Promise((r) => setImmediate(r));
          this.running--;
          return {
            results: requests.map((r) => ({ outputs: [{ ...r.inputs[0]!, name: "Y" }] })),
            timings: { computeInputNs: 1000, computeInferNs: 2000, computeOutputNs: 3000 },
          };
        },
        release: async () => undefined,
      }),
      release: async () => undefined,
    };
  }
}

/** config.pbtxt text for a gate model with the given extra lines. */
export function gateConfig(name: string, maxBatchSize: number, extra: string): string {
  return (
    `name: "${name}"\nbackend: "gate"\nmax_batch_size: ${maxBatchSize}\n` +
    `input [ { name: "X" data_type: TYPE_INT32 dims: [ 1 ] } ]\n` +
    `output [ { name: "Y" data_type: TYPE_INT32 dims: [ 1 ] } ]\n` +
    extra
  );
}
