/**
 * The HTTP/REST client: KServe v2 with Triton's extensions, over `fetch`
 * alone, so it runs in browsers as well as in Node.js.
 */
import { cancelledError, InferenceServerError } from "./errors.js";
import { decodeHttpInfer, encodeHttpInfer } from "./http-infer-codec.js";
import type { InferResult } from "./infer-result.js";
import { serverSentEvents } from "./sse.js";
import type {
  CallOptions, InferenceServerClient, InferenceStatistics, InferInput, InferOptions, LoadModelOptions, LogSettings,
  ModelConfig, ModelMetadata, RepositoryIndexEntry, ServerMetadata, SharedMemoryRegionStatus, TraceSettings, TraceSettingsUpdate,
} from "./types.js";

/** Options of an {@link HttpClient}. */
export interface HttpClientOptions {
  /** Headers sent with every request. */
  headers?: Record<string, string>;
  /** Send and ask for tensors with the binary tensor data extension (default true). */
  binaryData?: boolean;
  /** The fetch to use (default: the global one). */
  fetch?: typeof fetch;
}

/** Times an inference spent in the client, for load generators: filled in by {@link HttpClient.infer} when given. */
export interface InferTiming {
  /** Nanoseconds spent building the request. */
  encodeNs: number;
  /** Nanoseconds spent reading the answer into an {@link InferResult}. */
  decodeNs: number;
}

/** A generate-extension request: text and other inputs by name, plus `parameters`. */
export type GenerateRequest = Record<string, unknown>;

/** A generate-extension answer: `model_name`, `model_version`, `id` and the outputs by name (`text_output`, ...). */
export type GenerateResponse = Record<string, unknown>;

const decoder = new TextDecoder();
const now = (): number => performance.now() * 1e6;

function path(...parts: (string | undefined)[]): string {
  return parts.filter((p) => p !== undefined).map((p) => encodeURIComponent(p!)).join("/");
}

function modelPath(model: string, version?: string): string {
  return `v2/models/${path(model)}${version ? `/versions/${path(version)}` : ""}`;
}

/**
 * An HTTP/REST client for Triton's protocol.
 *
 * @example
 * ```ts
 * const client = new HttpClient("localhost:8000");
 * const result = await client.infer("simple", [
 *   { name: "INPUT0", datatype: "INT32", shape: [1, 16], data: new Int32Array(16).fill(2) },
 *   { name: "INPUT1", datatype: "INT32", shape: [1, 16], data: new Int32Array(16).fill(1) },
 * ]);
 * console.log(result.asArray("OUTPUT0")); // Int32Array(16) of 3s
 * ```
 */
export class HttpClient implements InferenceServerClient {
  /** The server's base URL, e.g. `http://localhost:8000`. */
  readonly url: string;
  readonly #headers: Record<string, string>;
  readonly #binary: boolean;
  readonly #fetch: typeof fetch;

  /**
   * @param url - `host:port` or a full `http(s)://host:port[/prefix]` URL
   * @param options - headers, binary default, fetch implementation
   */
  constructor(url: string, options: HttpClientOptions = {}) {
    this.url = (/^[a-z][a-z0-9+.-]*:\/\//i.test(url) ? url : `http://${url}`).replace(/\/+$/, "");
    this.#headers = options.headers ?? {};
    this.#binary = options.binaryData ?? true;
    this.#fetch = options.fetch ?? globalThis.fetch.bind(globalThis);
  }

  /** Sends one request; resolves with the response whatever its status (network failures and aborts reject). */
  async #send(method: string, route: string, options: CallOptions, body?: Uint8Array | string, headers: Record<string, string> = {}): Promise<Response> {
    try {
      return await this.#fetch(`${this.url}/${route}`, {
        method,
        headers: { ...this.#headers, ...headers, ...options.headers },
        body,
        signal: options.signal,
      });
    } catch (e) {
      if (options.signal?.aborted) throw cancelledError(options.signal);
      throw new InferenceServerError("UNAVAILABLE", `failed to reach ${this.url}: ${(e as Error).message}`, e);
    }
  }

  /** Reads a body, turning an abort during the read into the cancellation error. */
  async #body(res: Response, options: CallOptions): Promise<Uint8Array> {
    try {
      return new Uint8Array(await res.arrayBuffer());
    } catch (e) {
      if (options.signal?.aborted) throw cancelledError(options.signal);
      throw new InferenceServerError("UNAVAILABLE", `the connection to ${this.url} broke: ${(e as Error).message}`, e);
    }
  }

  /** Throws the server's `{"error": "..."}` as an {@link InferenceServerError} when the status is not 2xx. */
  async #check(res: Response, options: CallOptions): Promise<Uint8Array> {
    const body = await this.#body(res, options);
    if (res.ok) return body;
    const text = decoder.decode(body);
    let message = text || res.statusText;
    try {
      const json = JSON.parse(text) as { error?: unknown };
      if (typeof json.error === "string") message = json.error;
    } catch {
      // not JSON: the text itself is the best message there is
    }
    throw new InferenceServerError(res.status, message);
  }

  async #json<T>(method: string, route: string, options: CallOptions = {}, body?: unknown): Promise<T> {
    const res = await this.#send(method, route, options, body === undefined ? undefined : JSON.stringify(body), body === undefined ? {} : { "Content-Type": "application/json" });
    const bytes = await this.#check(res, options);
    return (bytes.byteLength ? JSON.parse(decoder.decode(bytes)) : undefined) as T;
  }

  /** A health route: 200 is true, any other answer false. */
  async #health(route: string, options: CallOptions = {}): Promise<boolean> {
    const res = await this.#send("GET", route, options);
    await this.#body(res, options);
    return res.status === 200;
  }

  isServerLive(options?: CallOptions): Promise<boolean> {
    return this.#health("v2/health/live", options);
  }

  isServerReady(options?: CallOptions): Promise<boolean> {
    return this.#health("v2/health/ready", options);
  }

  isModelReady(model: string, version?: string, options?: CallOptions): Promise<boolean> {
    return this.#health(`${modelPath(model, version)}/ready`, options);
  }

  getServerMetadata(options?: CallOptions): Promise<ServerMetadata> {
    return this.#json("GET", "v2", options);
  }

  getModelMetadata(model: string, version?: string, options?: CallOptions): Promise<ModelMetadata> {
    return this.#json("GET", modelPath(model, version), options);
  }

  getModelConfig(model: string, version?: string, options?: CallOptions): Promise<ModelConfig> {
    return this.#json("GET", `${modelPath(model, version)}/config`, options);
  }

  getModelRepositoryIndex(options: CallOptions & { ready?: boolean } = {}): Promise<RepositoryIndexEntry[]> {
    return this.#json("POST", "v2/repository/index", options, options.ready ? { ready: true } : {});
  }

  async loadModel(model: string, options: LoadModelOptions = {}): Promise<void> {
    const parameters: Record<string, string> = {};
    if (options.config !== undefined) parameters.config = typeof options.config === "string" ? options.config : JSON.stringify(options.config);
    for (const [name, bytes] of Object.entries(options.files ?? {})) {
      parameters[name.startsWith("file:") ? name : `file:${name}`] = base64(bytes);
    }
    await this.#json("POST", `v2/repository/models/${path(model)}/load`, options, Object.keys(parameters).length ? { parameters } : {});
  }

  async unloadModel(model: string, options: CallOptions & { unloadDependents?: boolean } = {}): Promise<void> {
    const body = options.unloadDependents ? { parameters: { unload_dependents: true } } : {};
    await this.#json("POST", `v2/repository/models/${path(model)}/unload`, options, body);
  }

  getInferenceStatistics(model?: string, version?: string, options?: CallOptions): Promise<InferenceStatistics> {
    return this.#json("GET", model === undefined ? "v2/models/stats" : `${modelPath(model, version)}/stats`, options);
  }

  getTraceSettings(model?: string, options?: CallOptions): Promise<TraceSettings> {
    return this.#json("GET", model === undefined ? "v2/trace/setting" : `${modelPath(model)}/trace/setting`, options);
  }

  updateTraceSettings(settings: TraceSettingsUpdate, model?: string, options?: CallOptions): Promise<TraceSettings> {
    return this.#json("POST", model === undefined ? "v2/trace/setting" : `${modelPath(model)}/trace/setting`, options, settings);
  }

  getLogSettings(options?: CallOptions): Promise<LogSettings> {
    return this.#json("GET", "v2/logging", options);
  }

  updateLogSettings(settings: LogSettings, options?: CallOptions): Promise<LogSettings> {
    return this.#json("POST", "v2/logging", options, settings);
  }

  getSystemSharedMemoryStatus(region?: string, options?: CallOptions): Promise<SharedMemoryRegionStatus[]> {
    return this.#json("GET", `v2/systemsharedmemory${region === undefined ? "" : `/region/${path(region)}`}/status`, options);
  }

  async registerSystemSharedMemory(name: string, key: string, byteSize: number, offset = 0, options?: CallOptions): Promise<void> {
    await this.#json("POST", `v2/systemsharedmemory/region/${path(name)}/register`, options, { key, offset, byte_size: byteSize });
  }

  async unregisterSystemSharedMemory(name?: string, options?: CallOptions): Promise<void> {
    await this.#json("POST", `v2/systemsharedmemory${name === undefined ? "" : `/region/${path(name)}`}/unregister`, options, {});
  }

  /**
   * Runs one inference. Tensors travel with the binary tensor data extension
   * unless the client, an input or a requested output says otherwise.
   *
   * @param timing - filled with the client's own encode/decode time when given
   */
  async infer(model: string, inputs: InferInput[], options: InferOptions = {}, timing?: InferTiming): Promise<InferResult> {
    const t0 = now();
    const { body, headerLength } = encodeHttpInfer(inputs, options, this.#binary);
    const headers: Record<string, string> = headerLength === undefined
      ? { "Content-Type": "application/json" }
      : { "Content-Type": "application/octet-stream", "Inference-Header-Content-Length": String(headerLength) };
    const t1 = now();
    const res = await this.#send("POST", `${modelPath(model, options.modelVersion)}/infer`, options, body, headers);
    const bytes = await this.#check(res, options);
    const t2 = now();
    const length = res.headers.get("Inference-Header-Content-Length");
    const result = decodeHttpInfer(bytes, length === null ? undefined : Number(length));
    if (timing) {
      timing.encodeNs = t1 - t0;
      timing.decodeNs = now() - t2;
    }
    return result;
  }

  /**
   * The generate extension (`POST .../generate`): one JSON answer, keys named
   * after the model's outputs.
   *
   * @example
   * ```ts
   * const answer = await client.generate("my_llm", { text_input: "Hello", parameters: { max_tokens: 8 } });
   * console.log(answer.text_output);
   * ```
   */
  generate(model: string, request: GenerateRequest, options: CallOptions & { modelVersion?: string } = {}): Promise<GenerateResponse> {
    return this.#json("POST", `${modelPath(model, options.modelVersion)}/generate`, options, request);
  }

  /**
   * The generate extension's stream (`POST .../generate_stream`, server-sent
   * events): one JSON object per response of the model, decoupled models
   * included. An error the server sends inside the stream (after its 200)
   * rejects the iteration with an {@link InferenceServerError} of status 200
   * and the server's message. Leaving the loop early closes the stream.
   *
   * @example
   * ```ts
   * for await (const piece of client.generateStream("my_llm", { text_input: "Hello" })) {
   *   process.stdout.write(String(piece.text_output));
   * }
   * ```
   */
  async *generateStream(model: string, request: GenerateRequest, options: CallOptions & { modelVersion?: string } = {}): AsyncGenerator<GenerateResponse> {
    const res = await this.#send("POST", `${modelPath(model, options.modelVersion)}/generate_stream`, options, JSON.stringify(request), {
      "Content-Type": "application/json",
      Accept: "text/event-stream",
    });
    if (!res.ok || !res.body) {
      await this.#check(res, options);
      return;
    }
    try {
      for await (const data of serverSentEvents(res.body)) {
        const json = JSON.parse(data) as GenerateResponse;
        if (typeof json.error === "string") throw new InferenceServerError(res.status, json.error);
        yield json;
      }
    } catch (e) {
      if (options.signal?.aborted) throw cancelledError(options.signal);
      if (e instanceof InferenceServerError) throw e;
      throw new InferenceServerError("UNAVAILABLE", `the event stream from ${this.url} broke: ${(e as Error).message}`, e);
    }
  }

  /** Nothing to release: fetch owns its connections. */
  close(): void {}
}

/** Base64 of bytes without Buffer, so that browsers can load models too. */
function base64(bytes: Uint8Array): string {
  let text = "";
  for (let i = 0; i < bytes.length; i += 0x8000) text += String.fromCharCode(...bytes.subarray(i, i + 0x8000));
  return btoa(text);
}
