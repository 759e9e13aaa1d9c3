/**
 * A model instance hosted in a Python process (`python/tritium_host.py`),
 * whatever the model file is: a Triton `model.py` (the Python backend) or
 * Tritium's TorchScript runner (the PyTorch backend). This is where the
 * server's side of the process protocol lives: batches out, results and a
 * decoupled model's responses back, BLS calls from the model run as a
 * client's, cancellations told, a batch that overruns `execute_timeout_ms`
 * failed and its process replaced, as is a process that dies.
 */
import path from "node:path";
import { fileURLToPath } from "node:url";
import type { BackendInstance, BackendModelContext, InstanceSpec } from "../../core/backend.js";
import { TritonError, asTritonError, invalidArg } from "../../core/errors.js";
import type { BatchRequest, BatchResult, ExecutionResult, InferenceRequest } from "../../core/requests/inference.js";
import type { DataType } from "../../core/tensors/datatypes.js";
import type { Parameters, Tensor } from "../../core/tensors/tensor.js";
import type { ModelConfig } from "../../gen/inference/model_config_pb.js";
import { AcceptedBatches, BatchDeadlines, Replaceable, BatchCalls, executeTimeout, initializeArgs, initializeTimeout, watchCancellation, initializeWithin } from "../instance-life.js";
import { ModelProcess, frameError, type Frame, type ModelProcessOptions, type Reply } from "./model-process.js";

/** `python/` at the root of the package (this file is dist/src/backends/process-host/hosted-instance.js). */
export const PYTHON_DIR = fileURLToPath(new URL("../../../../python/", import.meta.url));

/** Tensors start at multiples of this in a payload, so either side can view them in place. */
const ALIGN = 64;

/** A tensor as the frames describe it: its bytes are `payload[offset, offset + length)`. */
interface TensorDesc {
  name: string;
  datatype: DataType;
  shape: number[];
  offset: number;
  length: number;
}

/** Tensors as frame descriptions over one payload (its parts, in order, padded to {@link ALIGN}). */
function packTensors(groups: readonly (readonly Tensor[])[]): { descs: TensorDesc[][]; parts: Uint8Array[] } {
  const parts: Uint8Array[] = [];
  let offset = 0;
  const descs = groups.map((tensors) =>
    tensors.map((t): TensorDesc => {
      const pad = (ALIGN - (offset % ALIGN)) % ALIGN;
      if (pad) parts.push(new Uint8Array(pad));
      offset += pad;
      parts.push(t.data);
      const d = { name: t.name, datatype: t.datatype, shape: t.shape, offset, length: t.data.byteLength };
      offset += t.data.byteLength;
      return d;
    }),
  );
  return { descs, parts };
}

/**
 * Tensors from frame descriptions. A payload belongs to its one frame, so
 * aligned tensors are views of it; others (small, inline ones) are copied.
 */
function unpackTensors(descs: readonly TensorDesc[], payload: Buffer): Tensor[] {
  return descs.map((d) => {
    const view = new Uint8Array(payload.buffer, payload.byteOffset + d.offset, d.length);
    return { name: d.name, datatype: d.datatype, shape: d.shape, data: view.byteOffset % 8 === 0 ? view : view.slice() };
  });
}

/** Answers a BLS request of a model's process: runs it as a client's request (one answer, or a stream of them). */
function runBls(ctx: BackendModelContext, frame: Frame, reply: Reply, callers: string[]): void {
  const r = frame.header.request as { model_name: string; model_version?: string | null; id?: string; parameters?: Parameters; inputs: TensorDesc[]; outputs: string[] };
  const fail = (e: unknown, final?: boolean) => {
    const t = asTritonError(e);
    reply({ error: t.message, code: t.code, final });
  };
  const request: InferenceRequest = {
    model_name: r.model_name,
    model_version: r.model_version ?? undefined,
    inputs: unpackTensors(r.inputs, frame.payload),
    outputs: r.outputs.length ? r.outputs.map((name) => ({ name })) : undefined,
    callers,
  };
  if (r.id) request.id = r.id;
  if (r.parameters && Object.keys(r.parameters).length) request.parameters = r.parameters;
  const withOutputs = (outputs: Tensor[], final?: boolean) => {
    const { descs, parts } = packTensors([outputs]);
    reply({ outputs: descs[0], final }, parts);
  };
  if (frame.header.decoupled !== true) {
    if (!ctx.infer) return fail(new TritonError("UNSUPPORTED", "this server gives models no way to call other models"));
    ctx.infer(request).then((response) => withOutputs(response.outputs), (e: unknown) => fail(e));
    return;
  }
  if (!ctx.stream) return fail(new TritonError("UNSUPPORTED", "this server cannot stream to models"), true);
  let ended = false;
  ctx.stream(request, (response, final) => {
    ended ||= final;
    if (response instanceof Error) fail(response, final);
    else if (response) withOutputs(response.outputs, final);
    else reply({ final });
  }).then(
    () => ended || reply({ final: true }),
    (e: unknown) => fail(e, true),
  );
}

/** A process running `python/tritium_host.py`, whose stderr lines go to the server's log. */
function hostProcess(python: string, label: string, logSource: string, ctx: BackendModelContext, handlers: Pick<ModelProcessOptions, "onRequest" | "onNotice">): ModelProcess {
  return new ModelProcess({
    command: python,
    args: [path.join(PYTHON_DIR, "tritium_host.py")],
    env: { ...process.env, PYTHONPATH: [PYTHON_DIR, process.env.PYTHONPATH].filter(Boolean).join(path.delimiter), PYTHONUNBUFFERED: "1" },
    label,
    onLog: (line) => ctx.logger.info(logSource, `${label}: ${line}`),
    ...handlers,
  });
}

/** What a hosted instance is made of, beyond its model's context, final config and identity. */
export interface HostedModel {
  /** The interpreter (see python-runtime.ts). */
  python: string;
  /** The Python file whose `TritonPythonModel` the process runs (default: the model's own file). */
  modelFile?: string;
  /** Keys the backend adds to Triton's `initialize(args)`. */
  extraArgs?: Record<string, string>;
  /** Where the instance's log lines are said to come from. */
  logSource: string;
}

/** Starts the instance's first process (its load fails if the model's `initialize` does). */
export async function startHostedInstance(ctx: BackendModelContext, config: ModelConfig, spec: InstanceSpec, m: HostedModel): Promise<BackendInstance> {
  const label = `model '${ctx.name}' instance '${spec.name}'`;
  const args = { ...initializeArgs(ctx, config, spec, spec.kind === "KIND_GPU" ? "GPU" : "CPU"), ...m.extraArgs };
  const calls = new BatchCalls();
  const onNotice = ({ header, payload }: Frame) => {
    const h = header as unknown as { call: number; index: number; final: boolean; outputs?: TensorDesc[]; error?: string };
    const part: ExecutionResult | undefined = h.error !== undefined
      ? { error: frameError(label, header).toJSON() }
      : h.outputs ? { outputs: unpackTensors(h.outputs, payload) } : undefined;
    calls.deliver(h.call, h.index, part, h.final);
  };
  const initializeMs = initializeTimeout(config, ctx.name);
  const start = async () => {
    const proc = hostProcess(m.python, label, m.logSource, ctx, {
      onRequest: (frame, reply) => runBls(ctx, frame, reply, calls.callers(ctx.name, frame.header.batch as number)),
      onNotice,
    });
    try {
      await initializeWithin(proc.call({ type: "init", path: m.modelFile ?? ctx.modelPath, args }), initializeMs, label, () => proc.terminate());
    } catch (e) {
      await proc.terminate();
      throw invalidArg((e as Error).message.replace(`${label}: `, `${label}: failed to load '${ctx.modelPath}': `));
    }
    return proc;
  };
  const restart = () => {
    ctx.logger.warn(m.logSource, `${label}: the model process ended; starting a new one`);
    return start();
  };
  return new HostedInstance(spec.name, await start(), restart, new BatchDeadlines(label, executeTimeout(config, ctx.name)), calls, config.modelTransactionPolicy?.decoupled ?? false);
}

class HostedInstance implements BackendInstance {
  private readonly proc: Replaceable<ModelProcess>;
  private readonly batches = new AcceptedBatches();

  constructor(
    readonly name: string,
    proc: ModelProcess,
    restart: () => Promise<ModelProcess>,
    private readonly deadlines: BatchDeadlines,
    /** The batches in the process, by call id (shared with its BLS handler and its notices). */
    private readonly calls: BatchCalls,
    /** `model_transaction_policy { decoupled: true }`: a batch is done once every request has sent its final flag. */
    private readonly decoupled: boolean,
  ) {
    this.proc = new Replaceable(proc, restart);
  }

  execute(requests: BatchRequest[]): Promise<BatchResult> {
    return this.batches.run(this.name, () => this.run(requests));
  }

  private async run(requests: BatchRequest[]): Promise<BatchResult> {
    const proc = await this.proc.live();
    const { descs, parts } = packTensors(requests.map((r) => r.inputs));
    const described = requests.map((r, k) => ({ outputs: r.outputNames, inputs: descs[k], id: r.id, parameters: r.parameters }));
    const t0 = process.hrtime.bigint();
    const call = proc.send({ type: "execute", decoupled: this.decoupled, requests: described }, parts);
    const deadline = this.deadlines.start((e) => void proc.terminate(e));
    // A decoupled batch's deadline runs from its last response.
    this.calls.add(call.id, requests, deadline.touch);
    const unwatch = watchCancellation(requests, (k) => proc.tell({ type: "cancel", id: 0, call: call.id, index: k }));
    try {
      const reply = await call.reply;
      const timings = { computeInputNs: 0, computeInferNs: Number(process.hrtime.bigint() - t0), computeOutputNs: 0 };
      // A decoupled batch is done once every request has sent its final flag.
      if (this.decoupled) return { results: BatchCalls.done(requests), timings };
      const responses = reply.header.responses as ({ outputs: TensorDesc[] } | { error: string; code?: string })[];
      const results = responses.map((res): ExecutionResult =>
        "error" in res ? { error: frameError(proc.label, res).toJSON() } : { outputs: unpackTensors(res.outputs, reply.payload) },
      );
      return { results, timings };
    } finally {
      deadline.end();
      this.calls.remove(call.id);
      unwatch();
    }
  }

  /** Waits for the batches in progress, then runs the model's finalize and ends the process. */
  release(): Promise<void> {
    return this.batches.release(() => this.proc.get().close());
  }
}

/**
 * Runs the model's `auto_complete_config(auto_complete_model_config)` in a
 * throwaway process, as Triton does, and gives the configuration it returns
 * (as JSON in Triton's field names).
 */
export async function autoCompleteInProcess(ctx: BackendModelContext, python: string, config: object, logSource: string): Promise<object> {
  const label = `model '${ctx.name}'`;
  const proc = hostProcess(python, label, logSource, ctx, {});
  try {
    const reply = await proc.call({ type: "auto_complete", path: ctx.modelPath, config });
    return reply.header.config as object;
  } catch (e) {
    throw invalidArg(`${(e as Error).message.replace(`${label}: `, `${label}: auto_complete_config failed: `)}`);
  } finally {
    await proc.terminate();
  }
}
