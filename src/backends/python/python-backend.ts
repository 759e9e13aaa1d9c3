/**
 * Triton's Python backend (`backend: "python"`, `<version>/model.py` with
 * `class TritonPythonModel`): each instance is a `python3` child process
 * running `python/tritium_host.py`, which imports the model next to Tritium's
 * `triton_python_backend_utils`. A process that dies fails its batches and is
 * replaced for the next ones; release runs the model's `finalize`.
 *
 * The interpreter is `python3` unless `--backend-config=python,python-runtime=<path>`
 * names another (one with numpy).
 */
import path from "node:path";
import { fileURLToPath } from "node:url";
import type { Backend, BackendInstance, BackendModel, BackendModelContext, InstanceSpec } from "../../core/backend.js";
import { TritonError, type SerializedError } from "../../core/errors.js";
import type { BatchRequest, BatchResult, ExecutionResult } from "../../core/requests/inference.js";
import type { DataType } from "../../core/tensors/datatypes.js";
import type { Tensor } from "../../core/tensors/tensor.js";
import type { ModelConfig } from "../../gen/inference/model_config_pb.js";
import { AcceptedBatches, Replaceable, StreamingCalls, initializeArgs } from "../instance-life.js";
import { ModelProcess, type Frame } from "../process-host/model-process.js";

const SOURCE = "python-backend.ts";
/** `python/` at the root of the package (this file is dist/src/backends/python/python-backend.js). */
const PYTHON_DIR = fileURLToPath(new URL("../../../../python/", import.meta.url));

/** A tensor as the frames describe it: its bytes are `payload[offset, offset + length)`. */
interface TensorDesc {
  name: string;
  datatype: DataType;
  shape: number[];
  offset: number;
  length: number;
}

/** Tensors as frame descriptions over one payload. */
function packTensors(groups: readonly (readonly Tensor[])[]): { descs: TensorDesc[][]; payload: Buffer } {
  const parts: Uint8Array[] = [];
  let offset = 0;
  const descs = groups.map((tensors) =>
    tensors.map((t): TensorDesc => {
      parts.push(t.data);
      const d = { name: t.name, datatype: t.datatype, shape: t.shape, offset, length: t.data.byteLength };
      offset += t.data.byteLength;
      return d;
    }),
  );
  return { descs, payload: Buffer.concat(parts) };
}

/** Tensors from frame descriptions; each gets a copy of its bytes. */
function unpackTensors(descs: readonly TensorDesc[], payload: Buffer): Tensor[] {
  return descs.map((d) => ({
    name: d.name,
    datatype: d.datatype,
    shape: d.shape,
    data: new Uint8Array(payload.buffer, payload.byteOffset + d.offset, d.length).slice(),
  }));
}

/** A BLS request from a model's process, run as a client's would be; its outputs, or its error message. */
async function runBls(ctx: BackendModelContext, frame: Frame): Promise<{ header: Record<string, unknown>; payload?: Buffer }> {
  if (!ctx.infer) return { header: { error: "this server gives models no way to call other models" } };
  const r = frame.header.request as { model_name: string; model_version?: string | null; inputs: TensorDesc[]; outputs: string[] };
  try {
    const response = await ctx.infer({
      model_name: r.model_name,
      model_version: r.model_version ?? undefined,
      inputs: unpackTensors(r.inputs, frame.payload),
      outputs: r.outputs.length ? r.outputs.map((name) => ({ name })) : undefined,
    });
    const { descs, payload } = packTensors([response.outputs]);
    return { header: { outputs: descs[0] }, payload };
  } catch (e) {
    return { header: { error: (e as Error).message } };
  }
}

export class PythonBackend implements Backend {
  readonly name = "python";
  readonly platforms: readonly string[] = [];
  readonly defaultModelFilename = "model.py";

  async createModel(ctx: BackendModelContext): Promise<BackendModel> {
    return {
      createInstance: (config, spec) => createInstance(ctx, config, spec),
      release: async () => undefined,
    };
  }
}

async function createInstance(ctx: BackendModelContext, config: ModelConfig, spec: InstanceSpec): Promise<BackendInstance> {
  const label = `model '${ctx.name}' instance '${spec.name}'`;
  const python = ctx.backendConfig["python-runtime"] ?? "python3";
  const args = initializeArgs(ctx, config, spec, spec.kind === "KIND_GPU" ? "GPU" : "CPU");
  const decoupled = config.modelTransactionPolicy?.decoupled ?? false;
  const streaming = new StreamingCalls();
  const onNotice = ({ header, payload }: Frame) => {
    const h = header as unknown as { call: number; index: number; final: boolean; outputs?: TensorDesc[]; error?: string };
    const part: ExecutionResult | undefined = h.error !== undefined
      ? { error: { code: "INTERNAL", message: `${label}: ${h.error}` } }
      : h.outputs ? { outputs: unpackTensors(h.outputs, payload) } : undefined;
    streaming.deliver(h.call, h.index, part, h.final);
  };
  const start = async () => {
    const proc = new ModelProcess({
      command: python,
      args: [path.join(PYTHON_DIR, "tritium_host.py")],
      env: { ...process.env, PYTHONPATH: [PYTHON_DIR, process.env.PYTHONPATH].filter(Boolean).join(path.delimiter), PYTHONUNBUFFERED: "1" },
      label,
      onLog: (line) => ctx.logger.info(SOURCE, `${label}: ${line}`),
      onRequest: (frame) => runBls(ctx, frame),
      onNotice,
    });
    try {
      await proc.call({ type: "init", path: ctx.modelPath, args });
    } catch (e) {
      await proc.terminate();
      throw new TritonError("INVALID_ARG", (e as Error).message.replace(`${label}: `, `${label}: failed to load '${ctx.modelPath}': `));
    }
    return proc;
  };
  return new PythonInstance(spec.name, label, await start(), () => {
    ctx.logger.warn(SOURCE, `${label}: the model process ended; starting a new one`);
    return start();
  }, decoupled ? streaming : undefined);
}

class PythonInstance implements BackendInstance {
  private readonly proc: Replaceable<ModelProcess>;
  private readonly batches = new AcceptedBatches();

  constructor(
    readonly name: string,
    private readonly label: string,
    proc: ModelProcess,
    restart: () => Promise<ModelProcess>,
    /** Decoupled models: the batches whose responses are still coming. */
    private readonly streaming?: StreamingCalls,
  ) {
    this.proc = new Replaceable(proc, restart);
  }

  execute(requests: BatchRequest[]): Promise<BatchResult> {
    return this.batches.run(this.name, () => this.run(requests));
  }

  private async run(requests: BatchRequest[]): Promise<BatchResult> {
    const proc = await this.proc.live();
    const { descs, payload } = packTensors(requests.map((r) => r.inputs));
    const described = requests.map((r, k) => ({ outputs: r.outputNames, inputs: descs[k] }));
    const t0 = process.hrtime.bigint();
    if (this.streaming) {
      const call = proc.send({ type: "execute", decoupled: true, requests: described }, payload);
      this.streaming.add(call.id, requests);
      try {
        await call.reply;
      } finally {
        this.streaming.remove(call.id);
      }
      return { results: StreamingCalls.done(requests), timings: { computeInputNs: 0, computeInferNs: Number(process.hrtime.bigint() - t0), computeOutputNs: 0 } };
    }
    const reply = await proc.call({ type: "execute", requests: described }, payload);
    const inferNs = Number(process.hrtime.bigint() - t0);
    const responses = reply.header.responses as ({ outputs: TensorDesc[] } | { error: string })[];
    const results = responses.map((res): ExecutionResult => {
      if ("error" in res) return { error: { code: "INTERNAL", message: `${this.label}: ${res.error}` } satisfies SerializedError };
      return { outputs: unpackTensors(res.outputs, reply.payload) };
    });
    return { results, timings: { computeInputNs: 0, computeInferNs: inferNs, computeOutputNs: 0 } };
  }

  /** Waits for the batches in progress, then runs the model's finalize and ends the process. */
  release(): Promise<void> {
    return this.batches.release(() => this.proc.get().close());
  }
}
