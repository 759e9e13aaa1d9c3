/**
 * Tritium's `js` backend: models written in JavaScript (or TypeScript
 * compiled to it), `backend: "js"` in config.pbtxt, `<version>/model.js` (or
 * the file `default_model_filename` names). See model-api.ts for the
 * interface a model implements.
 *
 * Each instance is a worker thread reached through the worker channel, as
 * ONNX Runtime instances are. A batch that throws fails its requests; one
 * that runs past `execute_timeout_ms` (a model parameter, default 60000)
 * fails its requests and the instance's thread is replaced, as is a thread
 * that dies.
 */
import { fileURLToPath } from "node:url";
import type { Backend, BackendInstance, BackendModel, BackendModelContext, InstanceSpec } from "../../core/backend.js";
import { MessageChannel, type MessagePort } from "node:worker_threads";
import { TritonError, asTritonError, internal, invalidArg } from "../../core/errors.js";
import type { BatchRequest, BatchResult, InferenceRequest, InferenceResponse } from "../../core/requests/inference.js";
import { fromConfigType, type DataType } from "../../core/tensors/datatypes.js";
import { DataType as PbDataType, type ModelConfig } from "../../gen/inference/model_config_pb.js";
import { InstanceThread } from "../worker-channel/instance-thread.js";
import { AcceptedBatches, BatchDeadlines, Replaceable, BatchCalls, executeTimeout, initializeArgs, initializeTimeout, watchCancellation, initializeWithin } from "../instance-life.js";
import type { BlsAnswer, BlsCall, CancelNotice, FromJsWorker, JsWorkerInit, PartialMessage, ToJsWorker } from "./protocol.js";

const SOURCE = "js-backend.ts";
const WORKER_URL = new URL("./js-worker.js", import.meta.url);

/**
 * The `js` backend, or, given `builtin`, a backend whose every model runs
 * the same JavaScript model shipped with Tritium (Triton's utility backends:
 * `identity`, ...), which needs no file in the version folder.
 */
export class JsBackend implements Backend {
  readonly name: string;
  readonly platforms: readonly string[] = [];
  readonly defaultModelFilename: string;
  readonly alternativeModelFilenames: readonly string[];
  private readonly builtin: string | undefined;

  constructor(options: { name?: string; builtin?: URL } = {}) {
    this.name = options.name ?? "js";
    this.builtin = options.builtin && fileURLToPath(options.builtin);
    this.defaultModelFilename = this.builtin ? "" : "model.js";
    this.alternativeModelFilenames = this.builtin ? [] : ["model.mjs", "model.ts"];
  }

  async createModel(ctx: BackendModelContext): Promise<BackendModel> {
    const modelFile = this.builtin ?? ctx.modelPath;
    return {
      createInstance: (config, spec) => createInstance(ctx, modelFile, config, spec),
      release: async () => undefined,
    };
  }
}

async function createInstance(ctx: BackendModelContext, modelFile: string, config: ModelConfig, spec: InstanceSpec): Promise<BackendInstance> {
  if (spec.kind === "KIND_GPU") throw invalidArg(`model '${ctx.name}': instance '${spec.name}' has kind KIND_GPU, which the js backend does not support`);
  const timeoutMs = executeTimeout(config, ctx.name);
  const outputTypes: Record<string, DataType> = {};
  for (const o of config.output) {
    const dt = fromConfigType(PbDataType[o.dataType] ?? "");
    if (dt) outputTypes[o.name] = dt;
  }
  const decoupled = config.modelTransactionPolicy?.decoupled ?? false;
  const init: JsWorkerInit = {
    path: modelFile,
    decoupled,
    outputTypes,
    args: initializeArgs(ctx, config, spec, spec.kind),
  };

  const label = `model '${ctx.name}' instance '${spec.name}'`;
  const calls = new BatchCalls();
  const onOther = (msg: { type: string }) => {
    if (msg.type !== "partial") return;
    const p = msg as PartialMessage;
    calls.deliver(p.call, p.index, p.result, p.final);
  };
  const initializeMs = initializeTimeout(config, ctx.name);
  const start = async () => {
    const ports = ctx.infer ? blsPort(ctx.infer, ctx.stream, (batch) => calls.callers(ctx.name, batch)) : undefined;
    const thread = new InstanceThread<ToJsWorker, FromJsWorker>({
      url: WORKER_URL,
      init: { ...init, bls: ports?.worker },
      transferList: ports ? [ports.worker] : [],
      label,
      kind: "js model worker",
      onOther,
    });
    try {
      await initializeWithin(thread.started, initializeMs, label, () => thread.terminate());
    } catch (e) {
      await thread.terminate();
      throw e;
    }
    if (ports) mainPorts.set(thread, ports.main);
    return thread;
  };
  /** Each thread's port for notices from the main thread (cancellations). */
  const mainPorts = new WeakMap<Thread, MessagePort>();
  const cancel = (thread: Thread, call: number, index: number) => mainPorts.get(thread)?.postMessage({ cancel: call, index } satisfies CancelNotice);
  return new JsInstance(spec.name, label, await start(), start, new BatchDeadlines(label, timeoutMs), (msg) => ctx.logger.warn(SOURCE, msg), cancel, calls);
}

/**
 * The worker's end of a port on which its model's BLS requests arrive; each
 * runs as a client's request would (validation, scheduling, statistics).
 * The main thread's end never keeps the process alive, and closes with the worker.
 */
function blsPort(
  infer: (r: InferenceRequest) => Promise<InferenceResponse>,
  stream: BackendModelContext["stream"],
  callersOf: (batch: number) => string[],
): { worker: MessagePort; main: MessagePort } {
  const { port1, port2 } = new MessageChannel();
  port1.on("message", (call: BlsCall) => {
    call.request.callers = callersOf(call.batch);
    if (call.stream) {
      const post = (a: BlsAnswer) => port1.postMessage(a);
      if (!stream) return post({ id: call.id, error: { code: "UNSUPPORTED", message: "this server cannot stream to models" }, final: true });
      let ended = false;
      stream(call.request, (r, final) => {
        ended ||= final;
        if (r instanceof Error) post({ id: call.id, error: asTritonError(r).toJSON(), final });
        else post({ id: call.id, outputs: r?.outputs, final });
      }).then(
        () => ended || post({ id: call.id, final: true }),
        (e: unknown) => post({ id: call.id, error: asTritonError(e).toJSON(), final: true }),
      );
      return;
    }
    infer(call.request).then(
      (response) => port1.postMessage({ id: call.id, outputs: response.outputs } satisfies BlsAnswer),
      (e: unknown) => port1.postMessage({ id: call.id, error: asTritonError(e).toJSON() } satisfies BlsAnswer),
    );
  });
  port1.unref();
  return { worker: port2, main: port1 };
}

type Thread = InstanceThread<ToJsWorker, FromJsWorker>;

/** One instance of a `js` model: one worker thread, replaced when it dies or hangs. */
class JsInstance implements BackendInstance {
  private readonly thread: Replaceable<Thread>;
  private readonly batches = new AcceptedBatches();

  constructor(
    readonly name: string,
    private readonly label: string,
    thread: Thread,
    start: () => Promise<Thread>,
    private readonly deadlines: BatchDeadlines,
    private readonly warn: (msg: string) => void,
    /** Tells a thread that a request of a batch it holds has been cancelled by its client. */
    private readonly cancel: (thread: Thread, call: number, index: number) => void,
    /** The batches in the thread, by call id (shared with its BLS port and its partial responses). */
    private readonly calls: BatchCalls,
  ) {
    this.thread = new Replaceable(thread, () => {
      this.warn(`${this.label}: the js model worker thread ended; starting a new one`);
      return start();
    });
  }

  execute(requests: BatchRequest[]): Promise<BatchResult> {
    return this.batches.run(this.name, () => this.run(requests));
  }

  private async run(requests: BatchRequest[]): Promise<BatchResult> {
    const thread = await this.thread.live();
    let fail: (e: TritonError) => void = () => {};
    const timedOut = new Promise<never>((_, reject) => (fail = reject));
    const deadline = this.deadlines.start((e) => {
      this.warn(e.message);
      void thread.abandon(e);
      fail(e);
    });
    const call = thread.send({ type: "execute", requests });
    this.calls.add(call.id, requests);
    const unwatch = watchCancellation(requests, (k) => this.cancel(thread, call.id, k));
    try {
      const reply = await Promise.race([call.reply, timedOut]);
      // A decoupled batch is done once its responses have all been delivered.
      if (reply.type === "done") return { results: BatchCalls.done(requests), timings: reply.timings };
      if (reply.type !== "result") throw internal(`${this.label}: unexpected reply '${reply.type}' from the js model worker`);
      return { results: reply.results, timings: reply.timings };
    } finally {
      deadline.end();
      this.calls.remove(call.id);
      unwatch();
    }
  }

  /** Waits for the batches in progress, then runs the model's finalize and ends the thread. */
  release(): Promise<void> {
    return this.batches.release(() => this.thread.get().close());
  }
}
