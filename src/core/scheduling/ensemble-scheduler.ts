/**
 * Triton's ensemble scheduler (`platform: "ensemble"`,
 * `ensemble_scheduling { step [...] }`): a request flows through a DAG of
 * other models. The plan is checked once, at load; at run time each step
 * starts as soon as its inputs exist, and runs as a request of its own model
 * (that model's validation, scheduler — so it batches with other traffic —
 * and statistics).
 */
import { DataType, type ModelConfig, type ModelEnsembling_Step } from "../../gen/inference/model_config_pb.js";
import type { ModelSpec } from "../repository/model-spec.js";
import { fromConfigType, type DataType as TensorType } from "../tensors/datatypes.js";
import { TritonError, asTritonError, invalidArg } from "../errors.js";
import type { CancelSignal } from "../requests/cancel-signal.js";
import type { BatchRequest, InferenceRequest, InferenceResponse } from "../requests/inference.js";
import type { PreparedRequest } from "../requests/request-validator.js";
import type { Tensor } from "../tensors/tensor.js";
import type { RequestScheduler, ScheduleOutcome } from "./scheduler.js";

/** One step of a checked plan. */
export interface Step {
  model: string;
  /** Absent: the model's latest ready version. */
  version: string | undefined;
  /** Step input name → ensemble tensor name. */
  inputs: [string, string][];
  /** Step output name → ensemble tensor name. */
  outputs: [string, string][];
}

const stepName = (s: ModelEnsembling_Step, i: number) => `step ${i} ('${s.modelName}')`;

/**
 * Checks an ensemble's steps: every step input is an ensemble input or the
 * output of exactly one step, every ensemble output is produced, and the
 * steps form no cycle. Fails with a message naming the ensemble, the step
 * and the tensor.
 */
export function planEnsemble(config: ModelConfig): Step[] {
  const name = config.name;
  const steps = config.schedulingChoice.case === "ensembleScheduling" ? config.schedulingChoice.value.step : [];
  if (steps.length === 0) throw invalidArg(`ensemble '${name}' must have at least one step in 'ensemble_scheduling'`);
  const ensembleInputs = new Set(config.input.map((t) => t.name));
  const producer = new Map<string, number>();
  for (const [i, s] of steps.entries()) {
    if (!s.modelName) throw invalidArg(`ensemble '${name}': step ${i} has no 'model_name'`);
    if (s.modelName === name) throw invalidArg(`ensemble '${name}': ${stepName(s, i)} is the ensemble itself`);
    if (Object.keys(s.inputMap).length === 0) throw invalidArg(`ensemble '${name}': ${stepName(s, i)} has an empty 'input_map'`);
    if (Object.keys(s.outputMap).length === 0) throw invalidArg(`ensemble '${name}': ${stepName(s, i)} has an empty 'output_map'`);
    for (const tensor of Object.values(s.outputMap)) {
      if (ensembleInputs.has(tensor)) throw invalidArg(`ensemble '${name}': ${stepName(s, i)} writes tensor '${tensor}', which is an input of the ensemble`);
      const other = producer.get(tensor);
      if (other !== undefined) throw invalidArg(`ensemble '${name}': tensor '${tensor}' is written by both ${stepName(steps[other]!, other)} and ${stepName(s, i)}`);
      producer.set(tensor, i);
    }
  }
  for (const [i, s] of steps.entries()) {
    for (const [input, tensor] of Object.entries(s.inputMap)) {
      if (!ensembleInputs.has(tensor) && !producer.has(tensor)) {
        throw invalidArg(`ensemble '${name}': ${stepName(s, i)} input '${input}' reads tensor '${tensor}', which is neither an ensemble input nor an output of any step`);
      }
    }
  }
  for (const o of config.output) {
    if (!producer.has(o.name)) throw invalidArg(`ensemble '${name}': output '${o.name}' is not written by any step`);
  }
  // Kahn's order: a step is placed once every step it reads from is placed.
  const placed = new Set<number>();
  while (placed.size < steps.length) {
    const next = steps.findIndex((s, i) => !placed.has(i) && Object.values(s.inputMap).every((t) => ensembleInputs.has(t) || placed.has(producer.get(t)!)));
    if (next < 0) {
      const cycle = steps.map((s, i) => [s, i] as const).filter(([, i]) => !placed.has(i)).map(([s, i]) => stepName(s, i));
      throw invalidArg(`ensemble '${name}': its steps form a cycle among ${cycle.join(", ")}`);
    }
    placed.add(next);
  }
  return steps.map((s) => ({
    model: s.modelName,
    version: s.modelVersion > 0n ? String(s.modelVersion) : undefined,
    inputs: Object.entries(s.inputMap),
    outputs: Object.entries(s.outputMap),
  }));
}

/**
 * Checks the steps against their models (loaded first, as Triton loads an
 * ensemble's dependencies): every mapped input and output exists, and each
 * tensor has one datatype from the step that writes it (or the ensemble's
 * input) to every step that reads it and to the ensemble's output.
 */
export async function checkSteps(config: ModelConfig, steps: Step[], specOf: (model: string, version: string | undefined) => Promise<ModelSpec>): Promise<void> {
  const name = config.name;
  const datatype = new Map<string, { dt: TensorType; from: string }>(config.input.map((t) => [t.name, { dt: fromConfigType(DataType[t.dataType] ?? "")!, from: `ensemble input '${t.name}'` }]));
  const specs: ModelSpec[] = [];
  for (const [i, s] of steps.entries()) {
    let spec: ModelSpec;
    try {
      spec = await specOf(s.model, s.version);
    } catch (e) {
      throw invalidArg(`ensemble '${name}': step ${i} ('${s.model}') cannot be served: ${asTritonError(e).message}`);
    }
    specs.push(spec);
    for (const [output, tensor] of s.outputs) {
      const o = spec.output.get(output);
      if (!o) throw invalidArg(`ensemble '${name}': step ${i} ('${s.model}') maps output '${output}', which model '${s.model}' does not have`);
      datatype.set(tensor, { dt: o.datatype, from: `step ${i} ('${s.model}') output '${output}'` });
    }
  }
  for (const [i, s] of steps.entries()) {
    for (const [input, tensor] of s.inputs) {
      const want = specs[i]!.input.get(input);
      if (!want) throw invalidArg(`ensemble '${name}': step ${i} ('${s.model}') maps input '${input}', which model '${s.model}' does not have`);
      const got = datatype.get(tensor);
      if (got && got.dt !== want.datatype) {
        throw invalidArg(`ensemble '${name}': tensor '${tensor}' is ${got.dt} (${got.from}) but step ${i} ('${s.model}') input '${input}' is ${want.datatype}`);
      }
    }
  }
  for (const o of config.output) {
    const got = datatype.get(o.name);
    const want = fromConfigType(DataType[o.dataType] ?? "");
    if (got && want && got.dt !== want) throw invalidArg(`ensemble '${name}': output '${o.name}' is ${want} in its config but ${got.dt} from ${got.from}`);
  }
}

/** Runs an ensemble's requests through its steps; no queue of its own (each step's model has one). */
export class EnsembleScheduler implements RequestScheduler {
  private running = 0;
  private stopped = false;
  private drained: (() => void) | undefined;

  constructor(
    private readonly name: string,
    private readonly steps: Step[],
    private readonly infer: (request: InferenceRequest) => Promise<InferenceResponse>,
  ) {}

  get queued(): number {
    return 0;
  }

  get pending(): number {
    return this.running;
  }

  async enqueue(prepared: PreparedRequest, signal: CancelSignal | undefined): Promise<ScheduleOutcome> {
    if (this.stopped) return { error: new TritonError("UNAVAILABLE", `model '${this.name}' is unloading`), queueNs: 0 };
    this.running++;
    try {
      const outputs = await this.run(prepared.batch, signal);
      return { result: { outputs }, queueNs: 0, batchSize: prepared.batchSize };
    } catch (e) {
      return { result: { error: asTritonError(e).toJSON() }, queueNs: 0, batchSize: prepared.batchSize };
    } finally {
      if (--this.running === 0) this.drained?.();
    }
  }

  async stop(): Promise<void> {
    this.stopped = true;
    if (this.running > 0) await new Promise<void>((r) => (this.drained = r));
  }

  /** Starts every step whose inputs exist, and each later one as soon as its inputs do. */
  private run(batch: BatchRequest, signal: CancelSignal | undefined): Promise<Tensor[]> {
    const tensors = new Map<string, Tensor>(batch.inputs.map((t) => [t.name, t]));
    const waiting = new Set(this.steps);
    let active = 0;
    return new Promise<Tensor[]>((resolve, reject) => {
      let failed = false;
      let firstError: unknown;
      const startReady = () => {
        for (const step of [...waiting]) {
          if (!step.inputs.every(([, t]) => tensors.has(t))) continue;
          waiting.delete(step);
          active++;
          this.infer({
            model_name: step.model,
            model_version: step.version,
            inputs: step.inputs.map(([input, t]) => ({ ...tensors.get(t)!, name: input })),
            outputs: step.outputs.map(([output]) => ({ name: output })),
            signal,
            callers: batch.callers,
          }).then(
            (response) => {
              active--;
              if (failed) {
                if (active === 0) reject(firstError);
                return;
              }
              for (const [output, t] of step.outputs) {
                const produced = response.outputs.find((o) => o.name === output);
                if (produced) tensors.set(t, { ...produced, name: t });
              }
              startReady();
            },
            (e: unknown) => {
              active--;
              // The first error is the answer, given once every step in flight has ended.
              if (!failed) firstError = e;
              failed = true;
              if (active === 0) reject(firstError);
            },
          );
        }
        if (active === 0 && !failed) {
          const missing = batch.outputNames.find((n) => !tensors.has(n));
          if (missing) reject(new TritonError("INTERNAL", `ensemble '${this.name}': no step produced output '${missing}'`));
          else resolve(batch.outputNames.map((n) => tensors.get(n)!));
        }
      };
      startReady();
    });
  }
}
