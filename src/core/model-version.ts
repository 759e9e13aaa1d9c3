import type { BackendInstance, BackendModel } from "./backend.js";
import { classify } from "./classification.js";
import { elementCount } from "./datatypes.js";
import { TritonError, internal } from "./errors.js";
import type { InferenceRequest, InferenceResponse } from "./inference.js";
import type { ModelConfig } from "./model-config.js";
import type { ModelSpec } from "./model-spec.js";
import { prepareRequest, requestIdPrefix } from "./request-validator.js";
import type { Scheduler } from "./scheduler.js";
import { ModelStatistics } from "./statistics.js";
import type { Tensor } from "./tensor.js";

/**
 * Model states as Triton reports them in the repository index:
 *   UNAVAILABLE → LOADING → READY → UNLOADING → UNAVAILABLE
 * A failed load goes LOADING → UNAVAILABLE with a reason.
 */
export type ModelState = "UNKNOWN" | "UNAVAILABLE" | "LOADING" | "READY" | "UNLOADING";

/**
 * One loaded version of a model: its final config, its instances and the
 * scheduler in front of them. Answers inference requests for that version.
 */
export class ModelVersion {
  state: ModelState = "READY";
  readonly stats = new ModelStatistics();
  private inflight = 0;

  constructor(
    readonly name: string,
    readonly version: number,
    readonly config: ModelConfig,
    readonly spec: ModelSpec,
    readonly backendName: string,
    private readonly backendModel: BackendModel,
    private readonly instances: BackendInstance[],
    private readonly scheduler: Scheduler,
  ) {}

  /** Requests queued or executing. */
  get pendingRequests(): number {
    return this.scheduler.pending;
  }

  /** Requests accepted and not yet answered (includes validation and post-processing). */
  get inflightRequests(): number {
    return this.inflight;
  }

  async infer(req: InferenceRequest): Promise<InferenceResponse> {
    const start = process.hrtime.bigint();
    this.inflight++;
    try {
      let prepared;
      try {
        prepared = prepareRequest(this.spec, req);
      } catch (e) {
        this.stats.recordFailure(Number(process.hrtime.bigint() - start), "REJECTED");
        throw e;
      }
      const outcome = await this.scheduler.enqueue(prepared, req.signal);
      if ("error" in outcome) {
        this.stats.recordFailure(Number(process.hrtime.bigint() - start), outcome.error.code === "CANCELLED" ? "CANCELED" : "REJECTED");
        throw new TritonError(outcome.error.code, requestIdPrefix(req.id) + outcome.error.message);
      }
      const { result } = outcome;
      if (result.error) {
        this.stats.recordFailure(Number(process.hrtime.bigint() - start), "BACKEND");
        throw new TritonError(result.error.code, requestIdPrefix(req.id) + result.error.message);
      }
      const outputs = this.finishOutputs(result.outputs, prepared.batch.outputNames, prepared.classification);
      this.stats.recordSuccess(Number(process.hrtime.bigint() - start), outcome.queueNs, Date.now());
      const response: InferenceResponse = { model_name: this.name, model_version: String(this.version), outputs };
      if (req.id !== undefined && req.id !== "") response.id = req.id;
      return response;
    } finally {
      this.inflight--;
    }
  }

  /** Records one execution reported by the scheduler. */
  recordExecution(batchSize: number, inputNs: number, inferNs: number, outputNs: number): void {
    this.stats.recordExecution(batchSize, inputNs, inferNs, outputNs);
  }

  /**
   * Orders outputs as requested, maps reshaped outputs back to their config
   * dims, and applies classification.
   */
  private finishOutputs(produced: Tensor[], names: string[], classification: Map<string, number>): Tensor[] {
    const batched = this.spec.maxBatchSize > 0;
    return names.map((name) => {
      let t = produced.find((o) => o.name === name);
      if (!t) throw internal(`model '${this.name}' did not produce output '${name}'`);
      const spec = this.spec.output.get(name)!;
      if (spec.reshape) {
        const lead = batched ? [t.shape[0]!] : [];
        const known = spec.dims.filter((d) => d > 0).reduce((a, b) => a * b, 1);
        const per = elementCount(batched ? t.shape.slice(1) : t.shape);
        t = { ...t, shape: [...lead, ...spec.dims.map((d) => (d > 0 ? d : per / known))] };
      }
      const k = classification.get(name);
      return k ? classify(t, k, batched, spec.labels) : t;
    });
  }

  /** Stops taking requests, lets queued and executing ones finish, frees instances. */
  async unload(): Promise<void> {
    this.state = "UNLOADING";
    await this.scheduler.stop();
    await Promise.allSettled(this.instances.map((i) => i.release()));
    await this.backendModel.release();
    this.state = "UNAVAILABLE";
  }
}
