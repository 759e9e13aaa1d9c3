import type { CancelSignal } from "../requests/cancel-signal.js";
import fs from "node:fs";
import path from "node:path";
import {
  ModelSequenceBatching_Control_Kind as Kind,
  type ModelConfig,
  type ModelSequenceBatching,
} from "../../gen/inference/model_config_pb.js";
import type { BackendInstance } from "../backend.js";
import { elementCount, elementSize, fromConfigType, type DataType } from "../tensors/datatypes.js";
import { TritonError, asTritonError, invalidArg, unavailable } from "../errors.js";
import type { BatchRequest, ExecutionResult, ExecutionTimings } from "../requests/inference.js";
import { configTypeName } from "../repository/model-config.js";
import type { SchedulingParams } from "../requests/request-params.js";
import type { PreparedRequest } from "../requests/request-validator.js";
import type { ExecutionObserver, ScheduleOutcome } from "./scheduler.js";
import { encodeBytesElements, type Tensor } from "../tensors/tensor.js";

interface SeqRequest {
  prepared: PreparedRequest;
  params: SchedulingParams;
  enqueuedNs: bigint;
  settle(o: ScheduleOutcome): void;
}

interface Sequence {
  id: bigint | string;
  key: string;
  queue: SeqRequest[];
  inFlight: boolean;
  /** Direct strategy: the instance and slot the sequence is pinned to. */
  slot?: { instance: number; index: number };
  /** Started and not yet ended. */
  active: boolean;
  /** Implicit state: input name → the tensor to feed at the next step. */
  state: Map<string, Tensor>;
  idleTimer?: NodeJS.Timeout;
  /** A request with END is queued: no more requests may join. */
  ending: boolean;
}

interface ControlSpec {
  name: string;
  kind: Kind;
  datatype: DataType;
  falseTrue?: [number | boolean, number | boolean];
}

interface StateSpec {
  input: string;
  output: string;
  datatype: DataType;
  dims: number[];
  initial?: Uint8Array;
}

/**
 * Triton's sequence batcher, for stateful models. Every request of a
 * sequence (same correlation ID) runs in order, one at a time. With the
 * `direct` strategy a sequence owns one batch slot of one instance for its
 * whole life; a batch for an instance carries one request per occupied slot
 * and fillers with READY = 0 for slots without one. With `oldest`, the
 * oldest ready requests of distinct sequences form a batch on any idle
 * instance. The batcher feeds the control inputs (START, END, READY, CORRID)
 * and the implicit state that the config declares.
 *
 *   instance 0: [slot0: seq 7] [slot1: —   ] [slot2: seq 9]   → batch of 3, slot1 READY=0
 *   instance 1: [slot0: seq 8] [slot1: —   ] [slot2: —    ]   → batch of 1
 */
export class SequenceBatcher {
  private readonly sequences = new Map<string, Sequence>();
  /** Sequences waiting for a slot (direct) or a candidate place (oldest). */
  private readonly backlog: Sequence[] = [];
  private readonly idle: boolean[];
  /** Direct strategy: per instance, per slot, the sequence in it. */
  private readonly slots: (Sequence | undefined)[][];
  private readonly controls: ControlSpec[];
  private readonly states: StateSpec[];
  private readonly idleUs: number;
  private readonly oldest: boolean;
  private readonly maxCandidates: number;
  private readonly slotsPerInstance: number;
  /** Correlation IDs recently ended for being idle, to explain the next request's error. */
  private readonly expired = new Set<string>();
  private expiredChars = 0;
  private busy = 0;
  private stopped = false;
  private drainWaiters: (() => void)[] = [];

  constructor(
    private readonly config: ModelConfig,
    modelDir: string,
    private readonly instances: BackendInstance[],
    private readonly onExecution: ExecutionObserver,
  ) {
    const sb = config.schedulingChoice.value as ModelSequenceBatching;
    this.slotsPerInstance = Math.max(1, config.maxBatchSize);
    this.idle = instances.map(() => true);
    this.slots = instances.map(() => new Array(this.slotsPerInstance).fill(undefined));
    this.idleUs = Number(sb.maxSequenceIdleMicroseconds) || 1_000_000;
    this.oldest = sb.strategyChoice.case === "oldest";
    this.maxCandidates = sb.strategyChoice.case === "oldest" ? sb.strategyChoice.value.maxCandidateSequences || Number.MAX_SAFE_INTEGER : 0;
    this.controls = sb.controlInput.flatMap((ci) => ci.control.map((c) => controlSpec(config.name, ci.name, c)));
    this.states = sb.state.map((s) => stateSpec(config, modelDir, s));
  }

  get queued(): number {
    let n = 0;
    for (const s of this.sequences.values()) n += s.queue.length;
    return n;
  }

  get pending(): number {
    return this.queued + this.busy;
  }

  enqueue(prepared: PreparedRequest, signal: CancelSignal | undefined, params: SchedulingParams): Promise<ScheduleOutcome> {
    const model = this.config.name;
    const reject = (error: TritonError): Promise<ScheduleOutcome> => Promise.resolve({ error, queueNs: 0 });
    if (this.stopped) return reject(unavailable(`model '${model}' is unloading`));
    if (signal?.aborted) return reject(new TritonError("CANCELLED", `request for model '${model}' was cancelled`));
    if (params.sequenceId === undefined) {
      return reject(invalidArg(`inference request to model '${model}' must specify a non-zero or non-empty correlation ID`));
    }
    if (this.config.maxBatchSize > 0 && prepared.batchSize !== 1) {
      return reject(invalidArg(`inference request to sequence model '${model}' must have batch size 1, got ${prepared.batchSize}`));
    }
    const key = `${typeof params.sequenceId}:${String(params.sequenceId)}`;
    let seq = this.sequences.get(key);
    if (params.sequenceStart) {
      if (seq) {
        return reject(new TritonError("ALREADY_EXISTS", `sequence ${String(params.sequenceId)} of model '${model}' is already in progress; it must end before it can start again`));
      }
      if (this.expired.delete(key)) this.expiredChars -= key.length;
      seq = { id: params.sequenceId, key, queue: [], inFlight: false, active: true, state: new Map(), ending: false };
      this.sequences.set(key, seq);
      this.place(seq);
    } else if (!seq) {
      const why = this.expired.has(key)
        ? `sequence ${String(params.sequenceId)} of model '${model}' was ended after being idle for more than ${this.idleUs} us; start it again with sequence_start`
        : `inference request for sequence ${String(params.sequenceId)} to model '${model}' must specify the START flag on the first request of the sequence`;
      return reject(invalidArg(why));
    } else if (seq.ending) {
      return reject(invalidArg(`sequence ${String(params.sequenceId)} of model '${model}' has already received its END request`));
    }
    if (params.sequenceEnd) seq.ending = true;
    return new Promise((settle) => {
      const item: SeqRequest = { prepared, params, enqueuedNs: process.hrtime.bigint(), settle };
      seq!.queue.push(item);
      if (signal) {
        const onAbort = () => this.cancel(seq!, item);
        signal.addEventListener("abort", onAbort, { once: true });
        const settle = item.settle;
        item.settle = (o) => {
          signal.removeEventListener("abort", onAbort);
          settle(o);
        };
      }
      this.touch(seq!);
      this.dispatch();
    });
  }

  async stop(): Promise<void> {
    this.stopped = true;
    // Idle sequences can receive no more requests: end them now, so the
    // sequences waiting for their slots get them and can drain.
    for (const s of [...this.sequences.values()]) if (s.queue.length === 0 && !s.inFlight && !this.backlog.includes(s)) this.release(s);
    for (const s of this.sequences.values()) clearTimeout(s.idleTimer);
    this.dispatch();
    if (this.pending === 0) return;
    await new Promise<void>((r) => this.drainWaiters.push(r));
  }

  /** Gives a new sequence a slot (direct) or a candidate place (oldest), or queues it. */
  private place(seq: Sequence): void {
    if (this.oldest) {
      const active = [...this.sequences.values()].filter((s) => s !== seq && s.active && !this.backlog.includes(s)).length;
      if (active >= this.maxCandidates) this.backlog.push(seq);
      return;
    }
    for (let i = 0; i < this.slots.length; i++) {
      const j = this.slots[i]!.indexOf(undefined);
      if (j >= 0) {
        this.slots[i]![j] = seq;
        seq.slot = { instance: i, index: j };
        return;
      }
    }
    this.backlog.push(seq);
  }

  private release(seq: Sequence): void {
    clearTimeout(seq.idleTimer);
    seq.active = false;
    this.sequences.delete(seq.key);
    const b = this.backlog.indexOf(seq);
    if (b >= 0) this.backlog.splice(b, 1);
    const freed = seq.slot !== undefined || (this.oldest && b < 0);
    if (seq.slot) this.slots[seq.slot.instance]![seq.slot.index] = undefined;
    if (!freed) return;
    const next = this.backlog.shift();
    if (next) this.place(next);
  }

  /**
   * Keeps an expired correlation ID so its next request gets a clear error.
   * Bounded in count and in characters: string IDs have no length limit.
   */
  private rememberExpired(key: string): void {
    this.expired.add(key);
    this.expiredChars += key.length;
    while (this.expired.size > 10_000 || this.expiredChars > 1 << 20) {
      const oldest = this.expired.values().next().value!;
      this.expired.delete(oldest);
      this.expiredChars -= oldest.length;
    }
  }

  /** Restarts the idle clock of a sequence. */
  private touch(seq: Sequence): void {
    clearTimeout(seq.idleTimer);
    seq.idleTimer = setTimeout(() => {
      if (seq.queue.length > 0 || seq.inFlight) return this.touch(seq);
      this.rememberExpired(seq.key);
      this.release(seq);
      this.dispatch();
    }, this.idleUs / 1000);
    seq.idleTimer.unref();
  }

  private cancel(seq: Sequence, item: SeqRequest): void {
    const i = seq.queue.indexOf(item);
    if (i < 0) return;
    // Cancelling one request of a sequence cancels every pending request of it (Triton's rule).
    const dropped = seq.queue.splice(0);
    for (const q of dropped) {
      q.settle({ error: new TritonError("CANCELLED", `request for model '${this.config.name}' was cancelled`), queueNs: Number(process.hrtime.bigint() - q.enqueuedNs) });
    }
    if (!seq.inFlight) this.release(seq);
    this.checkDrained();
  }

  private dispatch(): void {
    for (let i = 0; i < this.instances.length; i++) {
      if (!this.idle[i]) continue;
      const members = this.oldest ? this.oldestBatch() : this.directBatch(i);
      if (!members) continue;
      this.idle[i] = false;
      this.busy++;
      void this.run(i, members);
    }
  }

  /** Direct: one entry per slot up to the highest ready slot; undefined entries are fillers. */
  private directBatch(instance: number): (Sequence | undefined)[] | undefined {
    const slots = this.slots[instance]!;
    let hi = -1;
    for (let j = 0; j < slots.length; j++) if (ready(slots[j])) hi = j;
    if (hi < 0) return undefined;
    return slots.slice(0, hi + 1).map((s) => (ready(s) ? s : undefined));
  }

  /** Oldest: the oldest ready heads of distinct candidate sequences, up to max_batch_size. */
  private oldestBatch(): Sequence[] | undefined {
    const candidates = [...this.sequences.values()]
      .filter((s) => ready(s) && !this.backlog.includes(s))
      .sort((a, b) => (a.queue[0]!.enqueuedNs < b.queue[0]!.enqueuedNs ? -1 : 1))
      .slice(0, this.slotsPerInstance);
    return candidates.length ? candidates : undefined;
  }

  private async run(instance: number, members: (Sequence | undefined)[]): Promise<void> {
    const start = process.hrtime.bigint();
    const real = members.filter((s): s is Sequence => s !== undefined);
    const template = real[0]!.queue[0]!.prepared.batch;
    const heads = new Map<Sequence, SeqRequest>();
    for (const s of real) {
      heads.set(s, s.queue.shift()!);
      s.inFlight = true;
    }
    const stateOutputs = this.states.map((s) => s.output);
    const batch: BatchRequest[] = members.map((s) => {
      if (!s) return this.filler(template, stateOutputs);
      const head = heads.get(s)!;
      const { id, parameters, callers } = head.prepared.batch;
      return {
        inputs: [...head.prepared.batch.inputs, ...this.controlTensors(s, head, true), ...this.stateTensors(s)],
        outputNames: [...head.prepared.batch.outputNames, ...stateOutputs],
        ...(id !== undefined ? { id } : {}),
        ...(parameters !== undefined ? { parameters } : {}),
        ...(callers !== undefined ? { callers } : {}),
      };
    });
    let results: ExecutionResult[];
    let timings: ExecutionTimings | undefined;
    try {
      ({ results, timings } = await this.instances[instance]!.execute(batch));
      if (results.some((r) => r && !r.error)) this.onExecution(real.length, timings);
    } catch (e) {
      const err = asTritonError(e).toJSON();
      results = members.map(() => ({ error: err }));
    }
    members.forEach((s, k) => {
      if (!s) return;
      const head = heads.get(s)!;
      const result = results[k] ?? { error: { code: "INTERNAL" as const, message: "no result for a sequence request" } };
      let clientResult: ExecutionResult = result;
      if (result.outputs && this.states.length) {
        for (const st of this.states) {
          const out = result.outputs.find((o) => o.name === st.output);
          if (out) s.state.set(st.input, { name: st.input, datatype: out.datatype, shape: out.shape, data: out.data });
        }
        clientResult = { outputs: result.outputs.filter((o) => !stateOutputs.includes(o.name)) };
      }
      s.inFlight = false;
      head.settle({ result: clientResult, queueNs: Number(start - head.enqueuedNs), batchSize: real.length, timings });
      if (head.params.sequenceEnd || (this.stopped && s.queue.length === 0)) this.release(s);
      else this.touch(s);
    });
    this.busy--;
    this.idle[instance] = true;
    this.dispatch();
    this.checkDrained();
  }

  /** The control tensors for one request (or a filler when `seq` is undefined). */
  private controlTensors(seq: Sequence | undefined, head: SeqRequest | undefined, isReady: boolean): Tensor[] {
    const shape = this.config.maxBatchSize > 0 ? [1, 1] : [1];
    return this.controls.map((c) => {
      let data: Uint8Array;
      if (c.kind === Kind.CONTROL_SEQUENCE_CORRID) {
        data = corrIdBytes(c.datatype, seq?.id ?? 0n);
      } else {
        const on =
          c.kind === Kind.CONTROL_SEQUENCE_READY ? isReady
          : c.kind === Kind.CONTROL_SEQUENCE_START ? Boolean(head?.params.sequenceStart)
          : Boolean(head?.params.sequenceEnd);
        data = scalarBytes(c.datatype, c.falseTrue![on ? 1 : 0]);
      }
      return { name: c.name, datatype: c.datatype, shape, data };
    });
  }

  private stateTensors(seq: Sequence): Tensor[] {
    return this.states.map((st) => {
      const have = seq.state.get(st.input);
      if (have) return have;
      const shape = this.config.maxBatchSize > 0 ? [1, ...st.dims] : st.dims;
      const data = st.initial ?? new Uint8Array(elementCount(st.dims) * Math.max(1, elementSize(st.datatype)));
      return { name: st.input, datatype: st.datatype, shape, data: st.datatype === "BYTES" && !st.initial ? encodeBytesElements(new Array(elementCount(st.dims)).fill("")) : data };
    });
  }

  /** A slot without a request: zero inputs shaped like a real request, READY = 0. */
  private filler(template: BatchRequest, stateOutputs: string[]): BatchRequest {
    const zero = (t: Tensor): Tensor => ({
      name: t.name,
      datatype: t.datatype,
      shape: t.shape,
      data: t.datatype === "BYTES" ? encodeBytesElements(new Array(elementCount(t.shape)).fill("")) : new Uint8Array(t.data.byteLength),
    });
    const states = this.states.map((st) => {
      const shape = this.config.maxBatchSize > 0 ? [1, ...st.dims] : st.dims;
      return zero({ name: st.input, datatype: st.datatype, shape, data: new Uint8Array(elementCount(shape) * Math.max(1, elementSize(st.datatype))) });
    });
    return {
      inputs: [...template.inputs.map(zero), ...this.controlTensors(undefined, undefined, false), ...states],
      outputNames: [...template.outputNames, ...stateOutputs],
    };
  }

  private checkDrained(): void {
    if (this.pending === 0 && this.drainWaiters.length) for (const w of this.drainWaiters.splice(0)) w();
  }
}

function ready(s: Sequence | undefined): s is Sequence {
  return s !== undefined && !s.inFlight && s.queue.length > 0;
}

function controlSpec(model: string, name: string, c: { kind: Kind; int32FalseTrue: number[]; fp32FalseTrue: number[]; boolFalseTrue: boolean[]; dataType: number }): ControlSpec {
  if (c.kind === Kind.CONTROL_SEQUENCE_CORRID) {
    const dt = fromConfigType(configTypeName(c.dataType)) ?? "UINT64";
    if (!["UINT64", "INT64", "UINT32", "INT32", "BYTES"].includes(dt)) {
      throw invalidArg(`model '${model}': CONTROL_SEQUENCE_CORRID input '${name}' must be TYPE_UINT64, TYPE_INT64, TYPE_UINT32, TYPE_INT32 or TYPE_STRING`);
    }
    return { name, kind: c.kind, datatype: dt };
  }
  if (c.int32FalseTrue.length === 2) return { name, kind: c.kind, datatype: "INT32", falseTrue: [c.int32FalseTrue[0]!, c.int32FalseTrue[1]!] };
  if (c.fp32FalseTrue.length === 2) return { name, kind: c.kind, datatype: "FP32", falseTrue: [c.fp32FalseTrue[0]!, c.fp32FalseTrue[1]!] };
  if (c.boolFalseTrue.length === 2) return { name, kind: c.kind, datatype: "BOOL", falseTrue: [c.boolFalseTrue[0]!, c.boolFalseTrue[1]!] };
  throw invalidArg(`model '${model}': sequence control input '${name}' must give two values in int32_false_true, fp32_false_true or bool_false_true`);
}

function stateSpec(config: ModelConfig, modelDir: string, s: ModelSequenceBatching["state"][number]): StateSpec {
  const datatype = fromConfigType(configTypeName(s.dataType));
  if (!datatype) throw invalidArg(`model '${config.name}': state '${s.inputName}' must specify a valid data_type`);
  const dims = s.dims.map((d) => (d < 0n ? 1 : Number(d)));
  const spec: StateSpec = { input: s.inputName, output: s.outputName, datatype, dims };
  const init = s.initialState[0];
  if (init?.stateData.case === "dataFile") {
    const file = path.join(modelDir, "initial_state", init.stateData.value);
    try {
      spec.initial = fs.readFileSync(file);
    } catch {
      throw invalidArg(`model '${config.name}': initial state file '${file}' for state '${s.inputName}' could not be read`);
    }
  }
  return spec;
}

function scalarBytes(dt: DataType, v: number | boolean): Uint8Array {
  const out = new Uint8Array(dt === "BOOL" ? 1 : 4);
  const view = new DataView(out.buffer);
  if (dt === "BOOL") view.setUint8(0, v ? 1 : 0);
  else if (dt === "FP32") view.setFloat32(0, Number(v), true);
  else view.setInt32(0, Number(v), true);
  return out;
}

function corrIdBytes(dt: DataType, id: bigint | string): Uint8Array {
  if (dt === "BYTES") return encodeBytesElements([String(id)]);
  const n = typeof id === "bigint" ? id : 0n;
  const out = new Uint8Array(elementSize(dt));
  const view = new DataView(out.buffer);
  if (dt === "UINT64") view.setBigUint64(0, n, true);
  else if (dt === "INT64") view.setBigInt64(0, BigInt.asIntN(64, n), true);
  else if (dt === "UINT32") view.setUint32(0, Number(BigInt.asUintN(32, n)), true);
  else view.setInt32(0, Number(BigInt.asIntN(32, n)), true);
  return out;
}
