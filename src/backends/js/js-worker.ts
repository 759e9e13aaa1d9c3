/**
 * A `js` model instance's worker thread: loads the model module, runs its
 * `initialize`, answers batches through the worker channel, and runs
 * `finalize` when asked to close.
 */
import { parentPort, workerData } from "node:worker_threads";
import { register } from "node:module";
import { pathToFileURL } from "node:url";
import { TritonError, isErrorCode, type SerializedError } from "../../core/errors.js";
import type { BatchRequest, ExecutionResult } from "../../core/requests/inference.js";
import { decodeBytesElements, type Tensor } from "../../core/tensors/tensor.js";
import { makeTensor, tensorValues, typedValues, type TensorValues } from "../../core/tensors/tensor-values.js";
import { WorkerEnd, type ExecuteMessage } from "../worker-channel/channel.js";
import { READY_ID } from "../worker-channel/replies.js";
import type { BlsRequest, ModelOutput, ModelRequest, ModelServices, ModelTensor, TritiumModel } from "./model-api.js";
import type { BlsAnswer, BlsCall, FromJsWorker, JsWorkerInit, MainToWorker, ToJsWorker } from "./protocol.js";

if (!parentPort) throw new Error("js-worker.js must run in a worker thread");
const port = parentPort;
const init = workerData as JsWorkerInit;
const where = `model '${init.args.model_name}' instance '${init.args.model_instance_name}'`;
const messageOf = (e: unknown) => (e instanceof Error ? e.message : String(e));

let model: TritiumModel | undefined;

/**
 * The module's URL. A `.ts` model (and any `.ts` file it imports) is compiled
 * as it loads by hooks registered in this worker only (typescript-hooks.ts).
 */
function moduleUrl(file: string): string {
  if (file.endsWith(".ts")) register(new URL("./typescript-hooks.js", import.meta.url));
  return pathToFileURL(file).href;
}

async function load(): Promise<TritiumModel> {
  const mod = (await import(moduleUrl(init.path))) as { default?: unknown };
  const exported = mod.default;
  const m = (typeof exported === "function" ? new (exported as new () => TritiumModel)() : exported) as TritiumModel | undefined;
  if (!m || typeof m.execute !== "function") {
    throw new Error(`'${init.path}' must export by default a class or an object with an execute(requests) method`);
  }
  await m.initialize?.(init.args, services);
  return m;
}

/** BLS: requests to other models go to the main thread on their own port, answered by id. */
const blsWaiting = new Map<number, (answer: BlsAnswer) => void>();
let blsNextId = 0;
/** Batch call id → its requests whose clients have gone (notices may come before the batch starts). */
const cancelled = new Map<number, Set<number>>();
const cancelledIn = (call: number) => {
  let set = cancelled.get(call);
  if (!set) cancelled.set(call, (set = new Set()));
  return set;
};
/** Batches run in the order of their ids: a notice for one at or before this has come too late. */
let lastDone = -1;
/** The batch being run (one at a time): the BLS calls made now are its. */
let running = -1;
init.bls?.on("message", (msg: MainToWorker) => {
  if ("cancel" in msg) {
    if (msg.cancel > lastDone) cancelledIn(msg.cancel).add(msg.index);
  } else blsWaiting.get(msg.id)?.(msg);
});

function blsCall(request: BlsRequest, stream: boolean, onAnswer: (answer: BlsAnswer) => void): void {
  if (!init.bls) throw new Error("this model cannot call other models");
  const inputs = request.inputs.map((i) => toTensor(i.name, { datatype: i.datatype, shape: i.shape, data: i.data }));
  const call: BlsCall = {
    id: blsNextId++,
    stream,
    batch: running,
    request: { model_name: request.model_name, model_version: request.model_version, inputs, outputs: request.outputs?.map((name) => ({ name })) },
  };
  blsWaiting.set(call.id, (answer) => {
    if (!stream || answer.final) blsWaiting.delete(call.id);
    onAnswer(answer);
  });
  init.bls.postMessage(call);
}

const byName = (outputs: Tensor[] | undefined): Record<string, ModelTensor> => {
  const out: Record<string, ModelTensor> = {};
  for (const t of outputs ?? []) out[t.name] = toModelTensor(t);
  return out;
};

const services: ModelServices = {
  infer(request: BlsRequest): Promise<Record<string, ModelTensor>> {
    return new Promise((resolve, reject) => {
      blsCall(request, false, (answer) => {
        if ("error" in answer) reject(new TritonError(answer.error.code, answer.error.message));
        else resolve(byName(answer.outputs));
      });
    });
  },
  async *stream(request: BlsRequest): AsyncIterable<Record<string, ModelTensor>> {
    const queue: BlsAnswer[] = [];
    let wake: (() => void) | undefined;
    blsCall(request, true, (answer) => {
      queue.push(answer);
      wake?.();
    });
    for (;;) {
      while (queue.length === 0) await new Promise<void>((r) => (wake = r));
      const answer = queue.shift()!;
      if ("error" in answer) throw new TritonError(answer.error.code, answer.error.message);
      if (answer.outputs) yield byName(answer.outputs);
      if (answer.final) return;
    }
  },
};

const started = load().then(
  (m) => {
    model = m;
    channel.send({ type: "ready", id: READY_ID });
  },
  (e: unknown) => {
    channel.send({
      type: "error",
      id: READY_ID,
      error: { code: "INVALID_ARG", message: `${where}: failed to load '${init.path}': ${messageOf(e)}` },
    });
  },
);

const channel: WorkerEnd<ToJsWorker, FromJsWorker> = new WorkerEnd(port, init.channel!, async (msg) => {
  await started;
  if (msg.type === "close") {
    try {
      await model?.finalize?.();
    } catch {
      // Closing anyway.
    }
    channel.send({ type: "closed", id: msg.id });
    // Nothing may keep the thread alive once it has answered.
    init.bls?.close();
    port.close();
    return;
  }
  running = msg.id;
  try {
    if (init.decoupled) await executeDecoupled(msg as ExecuteMessage);
    else await execute(msg as ExecuteMessage);
  } finally {
    cancelled.delete(msg.id);
    lastDone = Math.max(lastDone, msg.id);
  }
});

/**
 * A decoupled model's batch: each request gets a sender; the batch is done
 * once every request has sent its final flag (or execute threw: the requests
 * still open then get the error, final).
 */
async function executeDecoupled(msg: ExecuteMessage): Promise<void> {
  const t0 = process.hrtime.bigint();
  let open = msg.requests.length;
  let allFinal: () => void = () => {};
  const finished = new Promise<void>((resolve) => (allFinal = resolve));
  const closed = msg.requests.map(() => false);
  const partial = (index: number, result: ExecutionResult | undefined, final: boolean) => {
    channel.send({ type: "partial", id: -1, call: msg.id, index, result, final } as never);
    if (final) {
      closed[index] = true;
      if (--open === 0) allFinal();
    }
  };
  const requests = msg.requests.map((r, k): ModelRequest => ({
    ...toModelRequest(r, msg.id, k),
    sender: {
      send(response, options) {
        if (closed[k]) throw new Error(`request ${k} has already sent its final response`);
        partial(k, response === undefined ? undefined : toResult(response, r), options?.final === true);
      },
    },
  }));
  if (open === 0) allFinal();
  const t1 = process.hrtime.bigint();
  try {
    if (!model) throw new Error("the model is not loaded");
    await model.execute(requests);
    await finished;
  } catch (e) {
    const error: SerializedError = { code: "INTERNAL", message: `${where}: execute failed: ${messageOf(e)}` };
    for (const [k, c] of closed.entries()) if (!c) partial(k, { error }, true);
  }
  const t2 = process.hrtime.bigint();
  channel.send({ type: "done", id: msg.id, timings: { computeInputNs: Number(t1 - t0), computeInferNs: Number(t2 - t1), computeOutputNs: 0 } });
}

async function execute(msg: ExecuteMessage): Promise<void> {
  const t0 = process.hrtime.bigint();
  let results: ExecutionResult[];
  let t1 = t0;
  let t2 = t0;
  try {
    if (!model) throw new Error("the model is not loaded");
    const requests = msg.requests.map((r, k) => toModelRequest(r, msg.id, k));
    t1 = process.hrtime.bigint();
    const responses = await model.execute(requests);
    t2 = process.hrtime.bigint();
    if (!Array.isArray(responses) || responses.length !== requests.length) {
      throw new Error(`execute() must return one response per request (${requests.length}), got ${Array.isArray(responses) ? responses.length : typeof responses}`);
    }
    results = responses.map((r, k) => toResult(r, msg.requests[k]!));
  } catch (e) {
    t2 = t2 === t0 ? process.hrtime.bigint() : t2;
    const error: SerializedError = { code: "INTERNAL", message: `${where}: execute failed: ${messageOf(e)}` };
    results = msg.requests.map(() => ({ error }));
  }
  const t3 = process.hrtime.bigint();
  channel.send({
    type: "result",
    id: msg.id,
    results,
    timings: { computeInputNs: Number(t1 - t0), computeInferNs: Number(t2 - t1), computeOutputNs: Number(t3 - t2) },
  });
}

function toModelTensor(t: Tensor): ModelTensor {
  if (t.datatype !== "BYTES") return { name: t.name, datatype: t.datatype, shape: t.shape, data: tensorValues(t) };
  // The elements are split once, for the strings and the exact bytes both.
  const bytes = decodeBytesElements(t.data);
  return { name: t.name, datatype: t.datatype, shape: t.shape, data: bytes.map((e) => utf8.decode(e)), bytes };
}

const utf8 = new TextDecoder("utf-8");

function toModelRequest(r: BatchRequest, call: number, index: number): ModelRequest {
  const inputs: Record<string, ModelTensor> = {};
  for (const t of r.inputs) inputs[t.name] = toModelTensor(t);
  return { inputs, requestedOutputs: r.outputNames, isCancelled: () => cancelled.get(call)?.has(index) ?? false };
}

/** A response's `error`: its own code where it gives a valid one (its message then reaches the client as it is), else INTERNAL naming the instance. */
function modelError(error: unknown): SerializedError {
  const e = error as { code?: unknown; message?: unknown };
  if (typeof e === "object" && e !== null && isErrorCode(e.code) && typeof e.message === "string") return { code: e.code, message: e.message };
  return { code: "INTERNAL", message: `${where}: ${messageOf(error)}` };
}

/** A model's response as core carries it; only the outputs the request asked for (a decoupled response may carry fewer). */
function toResult(response: unknown, request: BatchRequest): ExecutionResult {
  if (!response || typeof response !== "object") {
    return { error: { code: "INTERNAL", message: `${where}: a response must be an object with 'outputs' or 'error'` } };
  }
  const r = response as { outputs?: Record<string, ModelOutput>; error?: unknown };
  if (r.error !== undefined) return { error: modelError(r.error) };
  const outputs: Tensor[] = [];
  try {
    for (const name of request.outputNames) {
      const o = r.outputs?.[name];
      if (!o) {
        if (init.decoupled) continue;
        throw new Error(`the response has no output '${name}'`);
      }
      outputs.push(toTensor(name, o));
    }
  } catch (e) {
    return { error: { code: "INTERNAL", message: `${where}: ${messageOf(e)}` } };
  }
  return { outputs };
}

function toTensor(name: string, o: ModelOutput): Tensor {
  const datatype = o.datatype ?? init.outputTypes[name];
  if (!datatype) throw new Error(`output '${name}' has no datatype and none is configured`);
  if (!Array.isArray(o.shape)) throw new Error(`output '${name}' must have a 'shape' array`);
  const values = datatype === "BYTES" ? (o.data as TensorValues) : typedValues(datatype, o.data as TensorValues);
  return makeTensor(name, datatype, [...o.shape], values);
}
