import fs from "node:fs/promises";
import { Server, ServerCredentials, type ChannelOptions } from "@grpc/grpc-js";
import type { InferenceServer } from "../../core/server.js";
import { Health } from "../../gen/grpc/health/v1/health_pb.js";
import { GRPCInferenceService } from "../../gen/inference/grpc_service_pb.js";
import { AccessPolicy } from "../access.js";
import { guarded } from "./access-guard.js";
import { healthHandlers, inferenceHandlers } from "./handlers.js";
import type { OutputContents } from "./infer-codec.js";
import { serviceDefinition } from "./service-definition.js";

/** Triton's limit on both directions: INT32_MAX bytes (`MAX_GRPC_MESSAGE_SIZE`). */
export const DEFAULT_MAX_MESSAGE_SIZE = 2 ** 31 - 1;

/** TLS material, PEM encoded. */
export interface GrpcTlsOptions {
  /** `--grpc-server-cert`: the server's certificate chain. */
  certChain: Buffer;
  /** `--grpc-server-key`: the server's private key. */
  privateKey: Buffer;
  /** `--grpc-root-cert`: CA certificates client certificates must chain to. */
  rootCerts?: Buffer;
  /** `--grpc-use-ssl-mutual`: require a client certificate and verify it against `rootCerts`. */
  mutual?: boolean;
}

/** Server-side keepalive and connection management (tritonserver's `--grpc-keepalive-*` and `--grpc-max-connection-age*`). */
export interface GrpcKeepaliveOptions {
  /** `--grpc-keepalive-time`: ms between keepalive pings the server sends (Triton's default 7200000). */
  timeMs?: number;
  /** `--grpc-keepalive-timeout`: ms to wait for a ping's ack before closing (default 20000). */
  timeoutMs?: number;
  /** `--grpc-max-connection-age`: ms after which a connection is gracefully closed; 0 = never. */
  maxConnectionAgeMs?: number;
  /** `--grpc-max-connection-age-grace`: ms granted to in-flight calls after the max age; 0 = unlimited. */
  maxConnectionAgeGraceMs?: number;
}

export interface GrpcFrontendOptions {
  /** `--grpc-address` (default 0.0.0.0; IPv6 addresses are accepted bare or in brackets). */
  address?: string;
  /** `--grpc-port` (default 8001; 0 picks a free port). */
  port?: number;
  /** Largest message accepted and sent, in bytes, after decompression (default INT32_MAX, as Triton). */
  maxMessageSize?: number;
  keepalive?: GrpcKeepaliveOptions;
  /** Serve TLS (`--grpc-use-ssl`) when set. */
  tls?: GrpcTlsOptions;
  /** Raw outputs always (Triton's behaviour, the default), or typed contents for typed requests. */
  outputContents?: OutputContents;
  /** `--grpc-restricted-protocol` and API keys: who may call which RPC group. */
  access?: AccessPolicy;
  /** Extra @grpc/grpc-js server options; they win over the ones above. */
  channelOptions?: ChannelOptions;
}

/**
 * KServe v2 `inference.GRPCInferenceService` plus `grpc.health.v1.Health`,
 * over @grpc/grpc-js. It only translates: every answer comes from the
 * {@link InferenceServer} facade, as HTTP's does.
 *
 * Requests may arrive gzip- or deflate-compressed; responses are sent
 * uncompressed (Triton's default, `--grpc-infer-response-compression-level=none`).
 * Client keepalive pings are answered whatever their rate.
 */
export class GrpcFrontend {
  private readonly server: Server;
  private readonly host: string;
  private readonly port: number;

  constructor(private readonly core: InferenceServer, private readonly options: GrpcFrontendOptions = {}) {
    const max = options.maxMessageSize ?? DEFAULT_MAX_MESSAGE_SIZE;
    if (!Number.isInteger(max) || max <= 0) throw new Error(`the gRPC maximum message size must be a positive integer, got ${max}`);
    const ka = options.keepalive ?? {};
    const channelOptions: ChannelOptions = {
      "grpc.max_receive_message_length": max,
      "grpc.max_send_message_length": max,
      "grpc.keepalive_time_ms": ka.timeMs ?? 7_200_000,
      "grpc.keepalive_timeout_ms": ka.timeoutMs ?? 20_000,
    };
    if (ka.maxConnectionAgeMs) channelOptions["grpc.max_connection_age_ms"] = ka.maxConnectionAgeMs;
    if (ka.maxConnectionAgeGraceMs) channelOptions["grpc.max_connection_age_grace_ms"] = ka.maxConnectionAgeGraceMs;
    this.server = new Server({ ...channelOptions, ...options.channelOptions });
    const access = options.access ?? new AccessPolicy();
    this.server.addService(serviceDefinition(GRPCInferenceService), guarded(inferenceHandlers(core, options.outputContents ?? "raw"), access));
    this.server.addService(serviceDefinition(Health), guarded(healthHandlers(core), access));
    this.host = (options.address ?? "0.0.0.0").replace(/^\[(.*)\]$/, "$1");
    this.port = options.port ?? 8001;
  }

  /** Starts listening; resolves with the bound port. */
  async listen(): Promise<number> {
    const tls = this.options.tls;
    const credentials = tls
      ? ServerCredentials.createSsl(tls.rootCerts ?? null, [{ cert_chain: tls.certChain, private_key: tls.privateKey }], tls.mutual === true)
      : ServerCredentials.createInsecure();
    const host = this.host.includes(":") ? `[${this.host}]` : this.host;
    const port = await new Promise<number>((resolve, reject) => {
      this.server.bindAsync(`${host}:${this.port}`, credentials, (err, p) => {
        if (err) reject(new Error(`failed to start the gRPC service at ${host}:${this.port}: ${err.message}`));
        else resolve(p);
      });
    });
    this.core.logger.info("grpc_server.ts", `Started GRPCInferenceService at ${host}:${port}${tls ? (tls.mutual ? " (TLS, client certificates required)" : " (TLS)") : ""}`);
    return port;
  }

  /** Stops accepting connections and calls; resolves when the calls in progress have finished. */
  async close(): Promise<void> {
    await new Promise<void>((resolve) => this.server.tryShutdown(() => resolve()));
  }

  /** Ends every remaining call and connection (after the drain timeout). */
  closeAllConnections(): void {
    this.server.forceShutdown();
  }
}

/**
 * Reads the PEM files named by `--grpc-server-cert`, `--grpc-server-key` and
 * `--grpc-root-cert`, with errors that name the flag at fault.
 */
export async function readTlsFiles(paths: { serverCert?: string; serverKey?: string; rootCert?: string; mutual?: boolean }): Promise<GrpcTlsOptions> {
  const read = async (flag: string, path: string | undefined, required: boolean): Promise<Buffer | undefined> => {
    if (!path) {
      if (required) throw new Error(`--${flag} must be specified when gRPC SSL is enabled`);
      return undefined;
    }
    try {
      return await fs.readFile(path);
    } catch (e) {
      throw new Error(`--${flag}: cannot read '${path}': ${(e as Error).message}`);
    }
  };
  const certChain = (await read("grpc-server-cert", paths.serverCert, true))!;
  const privateKey = (await read("grpc-server-key", paths.serverKey, true))!;
  const rootCerts = await read("grpc-root-cert", paths.rootCert, paths.mutual === true);
  return { certChain, privateKey, rootCerts, mutual: paths.mutual === true };
}
