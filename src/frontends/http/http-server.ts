import http, { type IncomingMessage, type ServerResponse } from "node:http";
import https from "node:https";
import zlib from "node:zlib";
import { Canceller } from "../../core/requests/cancel-signal.js";
import { TritonError, asTritonError, invalidArg, unavailable } from "../../core/errors.js";
import type { InferenceServer, LoadOverrides } from "../../core/server.js";
import { logSettingsUpdateFromJson } from "../../core/settings/log-settings.js";
import { traceSettingUpdateFromJson } from "../../core/settings/trace-settings.js";
import { registerRequestFromJson } from "../../core/shared-memory.js";
import { parseVersionString } from "../../core/repository/version-string.js";
import { pickEncoding, readBody } from "./body.js";
import { closeHttp, listenHttp } from "./listener.js";
import { decodeInferRequest, encodeInferResponse } from "./infer-codec.js";
import { decodeGenerateRequest, encodeGenerateResponse } from "./generate.js";
import type { InferenceRequest, InferenceResponse } from "../../core/requests/inference.js";
import { API_KEY_MESSAGE, AccessPolicy } from "../access.js";
import { ROUTE_GROUP, matchRoute, type RouteMatch } from "./routes.js";
import { httpStatus } from "./status.js";

/**
 * The load request's `parameters`: `config` (JSON text) and
 * `file:<version>/<name>` entries (base64 file contents).
 */
function loadOverrides(params: unknown, model: string): LoadOverrides | undefined {
  if (params === undefined || params === null) return undefined;
  if (typeof params !== "object" || Array.isArray(params)) throw invalidArg(`'parameters' of the load request for '${model}' must be an object`);
  const out: LoadOverrides = {};
  for (const [key, value] of Object.entries(params as Record<string, unknown>)) {
    if (key === "config") {
      if (typeof value !== "string") throw invalidArg(`load parameter 'config' for '${model}' must be a JSON string`);
      out.config = value;
    } else if (key.startsWith("file:")) {
      if (typeof value !== "string") throw invalidArg(`load parameter '${key}' for '${model}' must be base64 text`);
      (out.files ??= {})[key] = Buffer.from(value, "base64");
    }
  }
  return out;
}

export interface HttpFrontendOptions {
  /** `--http-address` (default 0.0.0.0). */
  address?: string;
  /** `--http-port` (default 8000; 0 picks a free port). */
  port?: number;
  /** `--http-max-input-size` in bytes (default 64 MiB, Triton's). */
  maxInputSize?: number;
  /** `--http-restricted-api` and API keys: who may call which route group. */
  access?: AccessPolicy;
  /** Serve HTTPS (`--http-ssl`) when set. */
  tls?: HttpTlsOptions;
  /** `--http-request-timeout-secs`: a client must send its whole request within this (default 300 s, Node's). */
  requestTimeoutMs?: number;
}

/** HTTPS material, PEM encoded (Tritium's: Triton serves HTTP in clear only). */
export interface HttpTlsOptions {
  /** `--http-ssl-cert`: the server's certificate chain. */
  cert: Buffer;
  /** `--http-ssl-key`: its private key. */
  key: Buffer;
  /** `--http-ssl-root-cert`: CA certificates client certificates must chain to. */
  ca?: Buffer;
  /** `--http-ssl-mutual`: require a client certificate signed by `ca`. */
  mutual?: boolean;
}

/** Bytes of server-sent events a client may leave unread before its stream is cut. */
const MAX_UNREAD_EVENT_BYTES = 16 * 1024 * 1024;

/**
 * KServe v2 HTTP/REST with Triton's extensions. It only translates: every
 * answer comes from the {@link InferenceServer} facade, as gRPC's does.
 */
export class HttpFrontend {
  private readonly server: http.Server;
  private readonly maxInputSize: number;
  private readonly access: AccessPolicy;
  /** Requests being answered: the ones still open when shutdown gives up get a clear error. */
  private readonly answering = new Set<ServerResponse>();

  constructor(private readonly core: InferenceServer, private readonly options: HttpFrontendOptions = {}) {
    this.maxInputSize = options.maxInputSize ?? 64 * 1024 * 1024;
    this.access = options.access ?? new AccessPolicy();
    const requestTimeout = options.requestTimeoutMs ?? 300_000;
    // Node looks for timed-out requests every connectionsCheckingInterval: often enough for a short timeout to mean it.
    const serverOptions: http.ServerOptions = { keepAliveTimeout: 65_000, requestTimeout, connectionsCheckingInterval: Math.min(30_000, Math.max(250, requestTimeout / 4)) };
    const handler = (req: IncomingMessage, res: ServerResponse) => void this.handle(req, res);
    const tls = options.tls;
    this.server = tls
      ? https.createServer({ ...serverOptions, cert: tls.cert, key: tls.key, ca: tls.ca, requestCert: tls.mutual === true, rejectUnauthorized: tls.mutual === true }, handler)
      : http.createServer(serverOptions, handler);
  }

  /** Starts listening; resolves with the bound port. */
  async listen(): Promise<number> {
    const address = this.options.address ?? "0.0.0.0";
    const port = await listenHttp(this.server, this.options.port ?? 8000, address);
    const tls = this.options.tls;
    this.core.logger.info("http_server.ts", `Started HTTPService at ${address}:${port}${tls ? (tls.mutual ? " (HTTPS, client certificates required)" : " (HTTPS)") : ""}`);
    return port;
  }

  /** Stops accepting connections; idle keep-alive connections are closed, busy ones finish. */
  close(): Promise<void> {
    return closeHttp(this.server);
  }

  /** Ends every remaining connection (after the drain timeout). */
  closeAllConnections(): void {
    this.server.closeAllConnections();
  }

  /**
   * Shutdown gave up waiting (`--exit-timeout-secs`): every request still
   * being answered gets 503 with `message`, or, when its answer has begun
   * (a stream of events), an error event before it ends.
   */
  failInFlight(message: string): void {
    for (const res of this.answering) {
      if (!res.headersSent) this.sendJson(res, 503, { error: message });
      else res.end(`data: ${JSON.stringify({ error: message })}\n\n`);
    }
  }

  private async handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    this.answering.add(res);
    res.once("close", () => this.answering.delete(res));
    const url = req.url ?? "/";
    const q = url.indexOf("?");
    const path = q < 0 ? url : url.slice(0, q); // query parameters are accepted and ignored
    const match = matchRoute(req.method ?? "GET", path);
    try {
      if (match === undefined) return this.sendJson(res, 404, { error: "Not Found" });
      if (match === "method") return this.sendJson(res, 405, { error: "Method Not Allowed" });
      if (!this.access.open) {
        const refused = this.access.check(ROUTE_GROUP[match.route], (name) => {
          const v = req.headers[name];
          return Array.isArray(v) ? v[0] : v;
        });
        if (refused?.kind === "restricted") return this.sendJson(res, 403, { error: `This API is restricted, expecting header '${refused.header}'` });
        if (refused) {
          res.setHeader("WWW-Authenticate", "Bearer");
          return this.sendJson(res, 401, { error: API_KEY_MESSAGE });
        }
      }
      await this.dispatch(match, req, res);
    } catch (e) {
      const err = asTritonError(e);
      if (err.code === "INTERNAL") this.core.logger.error("http_server.ts", `${req.method} ${path}: ${err.message}`);
      if (!res.headersSent) this.sendJson(res, httpStatus(err.code), { error: err.message });
      else res.destroy();
    }
  }

  private async dispatch(m: RouteMatch, req: IncomingMessage, res: ServerResponse): Promise<void> {
    const core = this.core;
    switch (m.route) {
      case "health_live":
        return this.sendEmpty(res, core.isLive() ? 200 : 400);
      case "health_ready":
        return this.sendEmpty(res, core.isReady() ? 200 : 400);
      case "server_metadata":
        return this.sendJson(res, 200, core.metadata());
      case "model_metadata":
        return this.sendJson(res, 200, core.modelMetadata(m.model!, m.version));
      case "model_ready":
        // As Triton's HandleModelReady: an unknown model or version is simply
        // "not ready" (400), as gRPC's ModelReady answers ready=false.
        if (!core.isLive()) throw unavailable("Server not ready");
        if (!core.isModelReady(m.model!, m.version)) throw invalidArg("Model version not ready");
        return this.sendEmpty(res, 200);
      case "model_config":
        return this.sendJson(res, 200, core.modelConfigJson(m.model!, m.version));
      case "model_stats":
      case "all_stats":
        return this.sendJson(res, 200, core.statistics(m.model, m.version));
      case "model_infer":
        return this.infer(m, req, res);
      case "model_generate":
      case "model_generate_stream":
        return this.generate(m, req, res, m.route === "model_generate_stream");
      case "repository_index": {
        const body = await this.readJsonBody(req);
        const ready = body?.ready;
        if (ready !== undefined && typeof ready !== "boolean") throw invalidArg("'ready' of the repository index request must be a boolean");
        return this.sendJson(res, 200, await core.repositoryIndex(ready === true));
      }
      case "repository_load": {
        const params = (await this.readJsonBody(req))?.parameters;
        await core.repositoryLoad(m.model!, loadOverrides(params, m.model!));
        return this.sendJson(res, 200, {});
      }
      case "repository_unload": {
        const params = (await this.readJsonBody(req))?.parameters as Record<string, unknown> | undefined;
        await core.repositoryUnload(m.model!, params?.unload_dependents === true);
        return this.sendJson(res, 200, {});
      }
      case "shm_status":
        return this.sendJson(res, 200, core.systemSharedMemoryStatus(m.region));
      case "shm_register": {
        if (m.region === undefined) throw invalidArg("'region name' is necessary to register system shared memory region");
        const r = registerRequestFromJson(await this.readJsonBody(req));
        core.registerSystemSharedMemory(m.region, r.key, r.offset, r.byteSize);
        return this.sendEmpty(res, 200);
      }
      case "shm_unregister":
        core.unregisterSystemSharedMemory(m.region);
        return this.sendEmpty(res, 200);
      case "cuda_shm_status":
        return this.sendJson(res, 200, core.cudaSharedMemoryStatus(m.region));
      case "cuda_shm_register":
        core.registerCudaSharedMemory(m.region ?? "");
        return this.sendEmpty(res, 200);
      case "cuda_shm_unregister":
        return this.sendEmpty(res, 200);
      case "trace_setting":
      case "model_trace_setting": {
        const body = m.method === "POST" ? await this.readJsonBody(req) : undefined;
        return this.sendJson(res, 200, core.traceSetting(m.model, body && traceSettingUpdateFromJson(body)));
      }
      case "logging": {
        const body = m.method === "POST" ? await this.readJsonBody(req) : undefined;
        return this.sendJson(res, 200, core.logSettings(body && logSettingsUpdateFromJson(body)));
      }
    }
  }

  private async infer(m: RouteMatch, req: IncomingMessage, res: ServerResponse): Promise<void> {
    // As Triton, a malformed version fails before the body is looked at.
    if (m.version !== undefined) parseVersionString(m.version);
    // Beyond Triton: a client that accepts server-sent events may stream a decoupled model from /infer.
    const events = /\btext\/event-stream\b/.test(String(req.headers.accept ?? ""));
    const decoupled = this.isDecoupled(m.model!, m.version);
    if (decoupled && !events) throw new TritonError("UNSUPPORTED", "HTTP end point doesn't support models with decoupled transaction policy");
    const body = await readBody(req, this.maxInputSize);
    const hl = req.headers["inference-header-content-length"];
    let headerLength: number | undefined;
    if (hl !== undefined) {
      headerLength = Number(hl);
      if (!Number.isInteger(headerLength)) throw invalidArg(`Inference-Header-Content-Length must be an integer, got '${String(hl)}'`);
    }
    const decoded = decodeInferRequest(body, headerLength, m.model!, m.version, () => this.core.getModel(m.model!, m.version).spec);
    if (decoupled) {
      // Events carry JSON responses: binary outputs have no place in them.
      return this.sendEvents(res, decoded.request, (r) => encodeInferResponse(r, { binaryOutputs: new Map(), binaryDefault: false }).chunks[0]!.toString());
    }
    // A client that disconnects before the answer cancels its queued request.
    const abort = new Canceller();
    const onClose = () => {
      if (!res.writableFinished) abort.abort();
    };
    res.once("close", onClose);
    decoded.request.signal = abort;
    const response = await this.core.infer(decoded.request);
    res.off("close", onClose);
    const encoded = encodeInferResponse(response, decoded);
    const headers: http.OutgoingHttpHeaders = {};
    if (encoded.headerLength !== undefined) {
      headers["Content-Type"] = "application/octet-stream";
      headers["Inference-Header-Content-Length"] = encoded.headerLength;
    } else {
      headers["Content-Type"] = "application/json";
    }
    this.send(res, 200, headers, encoded.chunks, pickEncoding(req.headers["accept-encoding"] as string | undefined));
  }

  /** The generate extension: one response as JSON (`/generate`), or every response as an event (`/generate_stream`). */
  private async generate(m: RouteMatch, req: IncomingMessage, res: ServerResponse, stream: boolean): Promise<void> {
    if (m.version !== undefined) parseVersionString(m.version);
    const body = await this.readJsonBody(req);
    const request = decodeGenerateRequest(body ?? {}, m.model!, m.version, this.core.getModel(m.model!, m.version).spec);
    if (stream) return this.sendEvents(res, request, encodeGenerateResponse);
    const responses: InferenceResponse[] = [];
    let failed: Error | undefined;
    await this.core.stream(request, (r) => {
      if (r instanceof Error) failed ??= r;
      else if (r) responses.push(r);
    });
    if (failed) throw failed;
    if (responses.length !== 1) {
      throw invalidArg(`generate: model '${m.model}' sent ${responses.length} responses where exactly one is expected; use generate_stream to receive several`);
    }
    this.send(res, 200, { "Content-Type": "application/json" }, [Buffer.from(encodeGenerateResponse(responses[0]!), "utf8")]);
  }

  /**
   * Server-sent events, one `data:` chunk per response. A request that fails
   * before its first response gets an ordinary JSON error and status; after
   * it, the error arrives as an `{"error": ...}` event under status 200, as
   * Triton's generate_stream does.
   */
  private async sendEvents(res: ServerResponse, request: InferenceRequest, encode: (r: InferenceResponse) => string): Promise<void> {
    let started = false;
    const start = () => {
      if (started) return;
      started = true;
      res.writeHead(200, { "Content-Type": "text/event-stream; charset=utf-8", "Cache-Control": "no-cache" });
    };
    const abort = new Canceller();
    const onClose = () => {
      if (!res.writableFinished) abort.abort();
    };
    res.once("close", onClose);
    request.signal = abort;
    try {
      await this.core.stream(request, (r) => {
        if (r === undefined || res.destroyed) return;
        start();
        // A client that does not read must not make the server hold its events without bound.
        if (res.writableLength > MAX_UNREAD_EVENT_BYTES) {
          abort.abort();
          res.destroy();
          return;
        }
        res.write(`data: ${r instanceof Error ? JSON.stringify({ error: r.message }) : encode(r)}\n\n`);
      });
    } catch (e) {
      if (!started) throw e;
      res.write(`data: ${JSON.stringify({ error: asTritonError(e).message })}\n\n`);
    } finally {
      res.off("close", onClose);
    }
    if (res.destroyed) return;
    start();
    res.end();
  }

  private isDecoupled(model: string, version: string | undefined): boolean {
    try {
      return this.core.getModel(model, version).decoupled;
    } catch {
      return false; // the request's own path reports the unknown model
    }
  }

  private async readJsonBody(req: IncomingMessage): Promise<Record<string, unknown> | undefined> {
    const body = await readBody(req, this.maxInputSize);
    if (body.byteLength === 0) return undefined;
    let v: unknown;
    try {
      v = JSON.parse(body.toString("utf8"));
    } catch (e) {
      throw invalidArg(`failed to parse the request JSON buffer: ${(e as Error).message}`);
    }
    if (!v || typeof v !== "object" || Array.isArray(v)) throw invalidArg("failed to parse the request JSON buffer: expected a JSON object");
    return v as Record<string, unknown>;
  }

  private sendEmpty(res: ServerResponse, status: number): void {
    res.writeHead(status, { "Content-Length": 0 });
    res.end();
  }

  /**
   * A JSON answer, never compressed: as Triton, only inference responses
   * follow Accept-Encoding. Clients such as tritonclient's aiohttp one send
   * `Accept-Encoding: gzip` on every request and read these bodies as they come.
   */
  private sendJson(res: ServerResponse, status: number, value: unknown): void {
    this.send(res, status, { "Content-Type": "application/json" }, [Buffer.from(JSON.stringify(value), "utf8")]);
  }

  /** Writes a response, compressed with `encoding` when one is given. */
  private send(res: ServerResponse, status: number, headers: http.OutgoingHttpHeaders, chunks: Uint8Array[], encoding?: "gzip" | "deflate"): void {
    if (encoding) {
      const joined = chunks.length === 1 ? chunks[0]! : Buffer.concat(chunks);
      const body = encoding === "gzip" ? zlib.gzipSync(joined) : zlib.deflateSync(joined);
      res.writeHead(status, { ...headers, "Content-Encoding": encoding, "Content-Length": body.byteLength });
      res.end(body);
      return;
    }
    let length = 0;
    for (const c of chunks) length += c.byteLength;
    res.writeHead(status, { ...headers, "Content-Length": length });
    if (chunks.length === 1) {
      res.end(chunks[0]);
      return;
    }
    // Small bodies go out in one write (one syscall, one packet); large ones are corked.
    if (length <= 64 * 1024) {
      res.end(Buffer.concat(chunks, length));
      return;
    }
    res.cork();
    for (const c of chunks) res.write(c);
    res.end();
    res.uncork();
  }
}

