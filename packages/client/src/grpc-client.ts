/**
 * The gRPC client: `inference.GRPCInferenceService` over @grpc/grpc-js, with
 * messages from the package's own generated protobuf-es code.
 */
import * as grpc from "@grpc/grpc-js";
import { create, fromBinary, toBinary, type DescMessage, type DescMethodUnary, type MessageInitShape, type MessageShape } from "@bufbuild/protobuf";
import { cancelledError, InferenceServerError } from "./errors.js";
import {
  GRPCInferenceService,
  ModelRepositoryParameterSchema,
  ModelStatisticsResponseSchema,
  type LogSettingsResponse,
  type ModelInferRequest,
  type ModelStreamInferResponse,
  type TraceSettingResponse,
} from "./gen/inference/grpc_service_pb.js";
import { ModelConfigSchema as ConfigSchema } from "./gen/inference/model_config_pb.js";
import { decodeGrpcInfer, encodeGrpcInfer, messageJson } from "./grpc-codec.js";
import { InferStream, type StreamCallback } from "./grpc-stream.js";
import type { InferTiming } from "./http-client.js";
import type { InferResult } from "./infer-result.js";
import type {
  CallOptions, InferenceServerClient, InferenceStatistics, InferInput, InferOptions, LoadModelOptions, LogSettings,
  ModelConfig, ModelMetadata, RepositoryIndexEntry, ServerMetadata, SharedMemoryRegionStatus, TraceSettings, TraceSettingsUpdate,
} from "./types.js";

/** Options of a {@link GrpcClient}. */
export interface GrpcClientOptions {
  /** Channel credentials (TLS, mutual TLS); insecure when left out. */
  credentials?: grpc.ChannelCredentials;
  /** Metadata sent with every call. */
  headers?: Record<string, string>;
  /** @grpc/grpc-js channel options (message size limits are lifted unless set here). */
  channelOptions?: grpc.ChannelOptions;
}

const M = GRPCInferenceService.method;
const now = (): number => performance.now() * 1e6;

function serialize<D extends DescMessage>(desc: D) {
  return (value: MessageShape<D>): Buffer => {
    const bytes = toBinary(desc, value);
    return Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  };
}

function deserialize<D extends DescMessage>(desc: D) {
  return (bytes: Buffer): MessageShape<D> => fromBinary(desc, bytes);
}

/** A gRPC failure as the client's error: the status code's name and the server's message. */
function toError(e: unknown): InferenceServerError {
  const err = e as Partial<grpc.ServiceError>;
  if (typeof err.code === "number") return new InferenceServerError(grpc.status[err.code] ?? String(err.code), err.details ?? err.message ?? "", e);
  return new InferenceServerError("UNKNOWN", (e as Error).message ?? String(e), e);
}

/**
 * A gRPC client for Triton's protocol, with the same methods as
 * {@link HttpClient} plus `ModelStreamInfer` streams.
 *
 * @example
 * ```ts
 * const client = new GrpcClient("localhost:8001");
 * const result = await client.infer("simple", [
 *   { name: "INPUT0", datatype: "INT32", shape: [1, 16], data: new Int32Array(16).fill(2) },
 *   { name: "INPUT1", datatype: "INT32", shape: [1, 16], data: new Int32Array(16).fill(1) },
 * ]);
 * console.log(result.asArray("OUTPUT1")); // Int32Array(16) of 1s
 * client.close();
 * ```
 */
export class GrpcClient implements InferenceServerClient {
  /** `host:port` of the server. */
  readonly address: string;
  readonly #client: grpc.Client;
  readonly #headers: Record<string, string>;

  /**
   * @param address - `host:port` (a `grpc://` or `http://` prefix is dropped)
   * @param options - credentials, metadata, channel options
   */
  constructor(address: string, options: GrpcClientOptions = {}) {
    this.address = address.replace(/^(grpcs?|https?):\/\//, "");
    this.#headers = options.headers ?? {};
    this.#client = new grpc.Client(this.address, options.credentials ?? grpc.credentials.createInsecure(), {
      "grpc.max_receive_message_length": -1,
      "grpc.max_send_message_length": -1,
      ...options.channelOptions,
    });
  }

  #metadata(headers?: Record<string, string>): grpc.Metadata {
    const md = new grpc.Metadata();
    for (const [k, v] of Object.entries({ ...this.#headers, ...headers })) md.set(k, v);
    return md;
  }

  #call<I extends DescMessage, O extends DescMessage>(method: DescMethodUnary<I, O>, request: MessageInitShape<I>, options: CallOptions = {}): Promise<MessageShape<O>> {
    const { signal } = options;
    if (signal?.aborted) return Promise.reject(cancelledError(signal));
    const message = create(method.input, request);
    return new Promise((resolve, reject) => {
      const onAbort = () => call.cancel();
      const call = this.#client.makeUnaryRequest(
        `/${GRPCInferenceService.typeName}/${method.name}`,
        serialize(method.input),
        deserialize(method.output),
        message,
        this.#metadata(options.headers),
        {},
        (err, res) => {
          signal?.removeEventListener("abort", onAbort);
          if (err) reject(signal?.aborted ? cancelledError(signal) : toError(err));
          else resolve(res!);
        },
      );
      signal?.addEventListener("abort", onAbort, { once: true });
    });
  }

  async isServerLive(options?: CallOptions): Promise<boolean> {
    return (await this.#call(M.serverLive, {}, options)).live;
  }

  async isServerReady(options?: CallOptions): Promise<boolean> {
    return (await this.#call(M.serverReady, {}, options)).ready;
  }

  async isModelReady(model: string, version = "", options?: CallOptions): Promise<boolean> {
    try {
      return (await this.#call(M.modelReady, { name: model, version }, options)).ready;
    } catch (e) {
      // As over HTTP: a model the server cannot find is not ready; other failures are errors.
      if (e instanceof InferenceServerError && (e.status === "NOT_FOUND" || e.status === "INVALID_ARGUMENT")) return false;
      throw e;
    }
  }

  async getServerMetadata(options?: CallOptions): Promise<ServerMetadata> {
    const r = await this.#call(M.serverMetadata, {}, options);
    return { name: r.name, version: r.version, extensions: [...r.extensions] };
  }

  async getModelMetadata(model: string, version = "", options?: CallOptions): Promise<ModelMetadata> {
    const r = await this.#call(M.modelMetadata, { name: model, version }, options);
    const tensor = (t: { name: string; datatype: string; shape: bigint[] }) => ({ name: t.name, datatype: t.datatype, shape: t.shape.map(Number) });
    return { name: r.name, versions: [...r.versions], platform: r.platform, inputs: r.inputs.map(tensor), outputs: r.outputs.map(tensor) };
  }

  async getModelConfig(model: string, version = "", options?: CallOptions): Promise<ModelConfig> {
    const r = await this.#call(M.modelConfig, { name: model, version }, options);
    return messageJson(ConfigSchema, r.config ?? create(ConfigSchema)) as unknown as ModelConfig;
  }

  async getModelRepositoryIndex(options: CallOptions & { ready?: boolean } = {}): Promise<RepositoryIndexEntry[]> {
    const r = await this.#call(M.repositoryIndex, { ready: options.ready ?? false }, options);
    return r.models.map((m) => {
      const entry: RepositoryIndexEntry = { name: m.name };
      if (m.version !== "") entry.version = m.version;
      if (m.state !== "") entry.state = m.state;
      if (m.reason !== "") entry.reason = m.reason;
      return entry;
    });
  }

  async loadModel(model: string, options: LoadModelOptions = {}): Promise<void> {
    const parameters: Record<string, MessageInitShape<typeof ModelRepositoryParameterSchema>> = {};
    if (options.config !== undefined) {
      parameters.config = { parameterChoice: { case: "stringParam", value: typeof options.config === "string" ? options.config : JSON.stringify(options.config) } };
    }
    for (const [name, bytes] of Object.entries(options.files ?? {})) {
      parameters[name.startsWith("file:") ? name : `file:${name}`] = { parameterChoice: { case: "bytesParam", value: bytes } };
    }
    await this.#call(M.repositoryModelLoad, { modelName: model, parameters }, options);
  }

  async unloadModel(model: string, options: CallOptions & { unloadDependents?: boolean } = {}): Promise<void> {
    const parameters: Record<string, MessageInitShape<typeof ModelRepositoryParameterSchema>> = {};
    if (options.unloadDependents) parameters.unload_dependents = { parameterChoice: { case: "boolParam", value: true } };
    await this.#call(M.repositoryModelUnload, { modelName: model, parameters }, options);
  }

  async getInferenceStatistics(model = "", version = "", options?: CallOptions): Promise<InferenceStatistics> {
    const r = await this.#call(M.modelStatistics, { name: model, version }, options);
    return messageJson(ModelStatisticsResponseSchema, r) as unknown as InferenceStatistics;
  }

  async getTraceSettings(model = "", options?: CallOptions): Promise<TraceSettings> {
    return traceSettings(await this.#call(M.traceSetting, { modelName: model }, options));
  }

  async updateTraceSettings(settings: TraceSettingsUpdate, model = "", options?: CallOptions): Promise<TraceSettings> {
    // An empty list is the protocol's reset, HTTP's null.
    const entries = Object.entries(settings).map(([k, v]) => [k, { value: v === null ? [] : Array.isArray(v) ? v : [v] }]);
    return traceSettings(await this.#call(M.traceSetting, { modelName: model, settings: Object.fromEntries(entries) }, options));
  }

  async getLogSettings(options?: CallOptions): Promise<LogSettings> {
    return logSettings(await this.#call(M.logSettings, {}, options));
  }

  async updateLogSettings(settings: LogSettings, options?: CallOptions): Promise<LogSettings> {
    const entries = Object.entries(settings).map(([k, v]) => {
      const choice = typeof v === "boolean" ? { case: "boolParam" as const, value: v } : typeof v === "number" ? { case: "uint32Param" as const, value: v } : { case: "stringParam" as const, value: String(v) };
      return [k, { parameterChoice: choice }];
    });
    return logSettings(await this.#call(M.logSettings, { settings: Object.fromEntries(entries) }, options));
  }

  async getSystemSharedMemoryStatus(region = "", options?: CallOptions): Promise<SharedMemoryRegionStatus[]> {
    const r = await this.#call(M.systemSharedMemoryStatus, { name: region }, options);
    return Object.values(r.regions).map((s) => ({ name: s.name, key: s.key, offset: Number(s.offset), byte_size: Number(s.byteSize) }));
  }

  async registerSystemSharedMemory(name: string, key: string, byteSize: number, offset = 0, options?: CallOptions): Promise<void> {
    await this.#call(M.systemSharedMemoryRegister, { name, key, offset: BigInt(offset), byteSize: BigInt(byteSize) }, options);
  }

  async unregisterSystemSharedMemory(name = "", options?: CallOptions): Promise<void> {
    await this.#call(M.systemSharedMemoryUnregister, { name }, options);
  }

  /**
   * Runs one inference (`ModelInfer`), tensors in `raw_input_contents` and
   * read from `raw_output_contents` (or typed contents, from servers that
   * send those). A decoupled model needs {@link GrpcClient.streamInfer}.
   *
   * @param timing - filled with the client's own encode/decode time when given
   */
  async infer(model: string, inputs: InferInput[], options: InferOptions = {}, timing?: InferTiming): Promise<InferResult> {
    const t0 = now();
    const request = encodeGrpcInfer(model, inputs, options);
    const t1 = now();
    const response = await this.#call(M.modelInfer, request, options);
    const t2 = now();
    const result = decodeGrpcInfer(response);
    if (timing) {
      timing.encodeNs = t1 - t0;
      timing.decodeNs = now() - t2;
    }
    return result;
  }

  /**
   * Opens a `ModelStreamInfer` stream. Without `onResponse`, iterate the
   * stream for its responses; with it, each response (or per-request error)
   * is handed to the callback as it arrives.
   *
   * @example
   * ```ts
   * const stream = client.startStream();
   * stream.send("countdown", [{ name: "N", datatype: "INT32", shape: [1], data: [3] }]);
   * stream.end();
   * for await (const { result, error } of stream) console.log(result?.asArray("OUT") ?? error?.message);
   * ```
   */
  startStream(options: CallOptions & { onResponse?: StreamCallback } = {}): InferStream {
    const call = this.#client.makeBidiStreamRequest<ModelInferRequest, ModelStreamInferResponse>(
      `/${GRPCInferenceService.typeName}/${M.modelStreamInfer.name}`,
      serialize(M.modelStreamInfer.input),
      deserialize(M.modelStreamInfer.output),
      this.#metadata(options.headers),
    );
    return new InferStream(call, toError, options.signal, options.onResponse);
  }

  /**
   * One request to a decoupled model over its own stream: yields each of
   * its responses until the server marks the last (it asks for Triton's
   * empty final response, which is not yielded), then closes the stream.
   * The server's error for the request rejects the iteration.
   *
   * @example
   * ```ts
   * for await (const r of client.streamInfer("countdown", [{ name: "N", datatype: "INT32", shape: [1], data: [3] }])) {
   *   console.log(r.asArray("OUT")[0]); // 3, 2, 1
   * }
   * ```
   */
  async *streamInfer(model: string, inputs: InferInput[], options: InferOptions = {}): AsyncGenerator<InferResult> {
    const stream = this.startStream({ headers: options.headers, signal: options.signal });
    stream.send(model, inputs, { ...options, parameters: { ...options.parameters, triton_enable_empty_final_response: true } });
    try {
      for await (const { result, error } of stream) {
        if (error) throw error;
        const final = result!.isFinal;
        if (result!.outputs.length || !final) yield result!;
        if (final) break;
      }
    } finally {
      stream.end();
    }
  }

  /** Closes the channel; calls in flight fail. */
  close(): void {
    this.#client.close();
  }
}

/** Trace settings in HTTP's form: `trace_level` a list, the other settings single strings. */
function traceSettings(r: TraceSettingResponse): TraceSettings {
  return Object.fromEntries(Object.entries(r.settings).map(([k, v]) => [k, k === "trace_level" ? [...v.value] : v.value[0] ?? ""]));
}

function logSettings(r: LogSettingsResponse): LogSettings {
  const out: LogSettings = {};
  for (const [k, v] of Object.entries(r.settings)) if (v.parameterChoice.value !== undefined) out[k] = v.parameterChoice.value;
  return out;
}
