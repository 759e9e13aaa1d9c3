import type { BackendInstance, BackendModel } from "../backend.js";
import { classify } from "../requests/classification.js";
import { elementCount } from "../tensors/datatypes.js";
import { TritonError, asTritonError, internal } from "../errors.js";
import type { ExecutionTimings, InferenceRequest, InferenceResponse } from "../requests/inference.js";
import type { ModelConfig } from "./model-config.js";
import { formatShape, type ModelSpec } from "./model-spec.js";
import { executionChannel, requestChannel, type FailureReason, type InferenceRequestEvent, type ModelExecutionEvent } from "../observability/events.js";
import { prepareRequest, requestIdPrefix, shapeMatches } from "../requests/request-validator.js";
import { schedulingParams } from "../requests/request-params.js";
import { ResponseCache } from "../scheduling/response-cache.js";
import type { RequestScheduler, ScheduleOutcome } from "../scheduling/scheduler.js";
import { ModelStatistics } from "../observability/statistics.js";
import type { Tensor } from "../tensors/tensor.js";

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
    private readonly scheduler: RequestScheduler,
    /** Set when the model enables `response_cache` and the server has a cache. */
    private readonly cache?: ResponseCache,
  ) {}

  /** How many instances run this version's batches (none for an ensemble). */
  get instanceCount(): number {
    return this.instances.length;
  }

  /**
   * Requests waiting in the scheduler for an instance, not yet executing:
   * Triton's `nv_inference_pending_request_count`.
   */
  get pendingRequests(): number {
    return this.scheduler.queued;
  }

  /** Requests accepted and not yet answered (includes validation and post-processing). */
  get inflightRequests(): number {
    return this.inflight;
  }

  async infer(req: InferenceRequest): Promise<InferenceResponse> {
    if (this.decoupled) {
      throw new TritonError("UNSUPPORTED", `model '${this.name}' is decoupled: it answers through a stream (gRPC ModelStreamInfer, or InferenceServer.stream in-process), not with one response`);
    }
    const start = process.hrtime.bigint();
    this.inflight++;
    try {
      // A request refused by validation never reaches the scheduler and, as in
      // Triton (which fails it before its statistics start), is not counted.
      const prepared = prepareRequest(this.spec, req);
      const params = schedulingParams(req);
      const n = prepared.batchSize;
      let cacheKey: string | undefined;
      if (this.cache) {
        const t0 = process.hrtime.bigint();
        cacheKey = ResponseCache.key(this.name, this.version, prepared.batch.inputs, req.outputs);
        const hit = this.cache.get(cacheKey);
        const lookupNs = Number(process.hrtime.bigint() - t0);
        if (hit) {
          this.stats.recordCacheHit(Number(process.hrtime.bigint() - start), lookupNs, Date.now());
          return this.response(req, hit);
        }
        this.stats.recordCacheMiss(lookupNs);
      }
      const queueStart = process.hrtime.bigint();
      const outcome = this.succeeded(req, start, queueStart, n, await this.scheduler.enqueue(prepared, req.signal, params));
      const { result, timings } = outcome;
      let outputs: Tensor[];
      try {
        outputs = this.finishOutputs(result.outputs, prepared.batch.outputNames, prepared.classification);
      } catch (e) {
        this.finished(req, start, queueStart, n, outcome.queueNs, timings, "BACKEND");
        throw e;
      }
      this.finished(req, start, queueStart, n, outcome.queueNs, timings, undefined, outputs);
      if (cacheKey) this.cache!.put(cacheKey, outputs);
      return this.response(req, outputs);
    } finally {
      this.inflight--;
    }
  }

  /**
   * A decoupled model's responses to one request, each as it comes, the last
   * with `final` (`undefined` when the model ended without one). A model that
   * is not decoupled answers once, final. Resolves after the final one.
   */
  async stream(req: InferenceRequest, onResponse: (response: InferenceResponse | TritonError | undefined, final: boolean) => void): Promise<void> {
    if (!this.decoupled) {
      onResponse(await this.infer(req), true);
      return;
    }
    const start = process.hrtime.bigint();
    this.inflight++;
    try {
      const prepared = prepareRequest(this.spec, req);
      const n = prepared.batchSize;
      // The caller's callback runs inside the backend's message handling: it must not throw there.
      let finalSeen = false;
      let reachedFinal: () => void = () => {};
      const finalReached = new Promise<void>((resolve) => (reachedFinal = resolve));
      const deliver = (response: InferenceResponse | TritonError | undefined, final: boolean) => {
        if (final) {
          finalSeen = true;
          reachedFinal();
        }
        try {
          onResponse(response, final);
        } catch (e) {
          this.logError(e);
        }
      };
      prepared.batch.respond = (part, final) => {
        if (!part) return deliver(undefined, final);
        if (part.error) return deliver(new TritonError(part.error.code, requestIdPrefix(req.id) + part.error.message), final);
        let outputs: Tensor[];
        try {
          outputs = this.finishOutputs(part.outputs, prepared.batch.outputNames.filter((o) => part.outputs.some((t) => t.name === o)), prepared.classification);
        } catch (e) {
          return deliver(asTritonError(e), final);
        }
        deliver(this.response(req, outputs), final);
      };
      const queueStart = process.hrtime.bigint();
      // The batch may outlive this request (a batch-mate still streaming): the request ends at its own final
      // response, and a failure of the batch after it is not this request's.
      const settled = this.scheduler.enqueue(prepared, req.signal, schedulingParams(req)).then((outcome) => {
        if (!finalSeen) this.succeeded(req, start, queueStart, n, outcome);
        this.finished(req, start, queueStart, n, outcome.queueNs, "result" in outcome ? outcome.timings : undefined, undefined);
      });
      settled.catch(() => undefined);
      await Promise.race([finalReached, settled]);
    } finally {
      this.inflight--;
    }
  }

  /**
   * A scheduled request's outcome when it succeeded; a failure (refused or
   * cancelled before execution, or failed by the backend) is counted and thrown.
   */
  private succeeded(req: InferenceRequest, start: bigint, queueStart: bigint, n: number, outcome: ScheduleOutcome): Extract<ScheduleOutcome, { result: unknown }> & { result: { outputs: Tensor[] } } {
    if ("error" in outcome) {
      this.finished(req, start, queueStart, n, outcome.queueNs, undefined, outcome.error.code === "CANCELLED" ? "CANCELED" : "REJECTED");
      throw new TritonError(outcome.error.code, requestIdPrefix(req.id) + outcome.error.message);
    }
    if (outcome.result.error) {
      this.finished(req, start, queueStart, n, outcome.queueNs, outcome.timings, "BACKEND");
      throw new TritonError(outcome.result.error.code, requestIdPrefix(req.id) + outcome.result.error.message);
    }
    return outcome as Extract<ScheduleOutcome, { result: unknown }> & { result: { outputs: Tensor[] } };
  }

  private logError(e: unknown): void {
    process.emitWarning(`model '${this.name}': a stream's response callback threw: ${(e as Error)?.message ?? String(e)}`);
  }

  /** `model_transaction_policy { decoupled: true }`: zero or more responses per request. */
  get decoupled(): boolean {
    return this.config.modelTransactionPolicy?.decoupled ?? false;
  }

  private response(req: InferenceRequest, outputs: Tensor[]): InferenceResponse {
    const response: InferenceResponse = { model_name: this.name, model_version: String(this.version), outputs };
    if (req.id !== undefined && req.id !== "") response.id = req.id;
    return response;
  }

  /** Records one execution reported by the scheduler and tells observers. */
  recordExecution(batchSize: number, inputNs: number, inferNs: number, outputNs: number): void {
    this.stats.recordExecution(batchSize, inputNs, inferNs, outputNs, Date.now());
    if (executionChannel.hasSubscribers) {
      const event: ModelExecutionEvent = {
        model: this.name,
        version: String(this.version),
        source: this,
        batchSize,
        computeInputNs: inputNs,
        computeInferNs: inferNs,
        computeOutputNs: outputNs,
      };
      executionChannel.publish(event);
    }
  }

  /**
   * Counts a request that reached the scheduler (statistics extension) and
   * publishes it for metrics and tracing (observability/events.ts).
   * `reason` is set when it failed.
   */
  private finished(
    req: InferenceRequest, start: bigint, queueStart: bigint, batchSize: number, queueNs: number,
    timings: ExecutionTimings | undefined, reason: FailureReason | undefined, outputs?: Tensor[],
  ): void {
    const totalNs = Number(process.hrtime.bigint() - start);
    const inputNs = timings?.computeInputNs ?? 0;
    const inferNs = timings?.computeInferNs ?? 0;
    const outputNs = timings?.computeOutputNs ?? 0;
    if (reason) this.stats.recordFailure(totalNs, reason);
    else this.stats.recordSuccess(totalNs, queueNs, batchSize, inputNs, inferNs, outputNs);
    if (requestChannel.hasSubscribers) {
      const event: InferenceRequestEvent = {
        model: this.name,
        version: String(this.version),
        source: this,
        id: req.id,
        success: reason === undefined,
        reason,
        batchSize,
        totalNs,
        queueNs,
        computeInputNs: inputNs,
        computeInferNs: inferNs,
        computeOutputNs: outputNs,
        requestStartNs: start,
        queueStartNs: queueStart,
        inputs: req.inputs,
        outputs,
      };
      requestChannel.publish(event);
    }
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
      // A model whose code makes its outputs (Python, JavaScript) can get them wrong; the client must not get a lie.
      if (t.datatype !== spec.datatype) {
        throw internal(`model '${this.name}': output '${name}' has datatype ${t.datatype}, but the model configuration declares ${spec.datatype}`);
      }
      if (!spec.reshape && !shapeMatches(spec.dims, batched ? t.shape.slice(1) : t.shape)) {
        throw internal(`model '${this.name}': output '${name}' has shape ${formatShape(t.shape)}, which does not match the model configuration's dims ${formatShape(spec.dims)}${batched ? " after the batch dimension" : ""}`);
      }
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
