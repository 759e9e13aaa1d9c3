/**
 * `--grpc-restricted-protocol` and API keys on gRPC: every RPC is checked
 * against its group (Triton's grouping) before its handler runs. A
 * restricted group answers UNAVAILABLE with Triton's text; a missing or
 * wrong API key, UNAUTHENTICATED.
 */
import { status, type Metadata, type ServiceError, type UntypedServiceImplementation } from "@grpc/grpc-js";
import { API_KEY_MESSAGE, type AccessPolicy, type ApiGroup } from "../access.js";

/** Each RPC's group; the health service's `Check` is `health`. */
export const RPC_GROUP: Record<string, ApiGroup> = {
  ServerLive: "health", ServerReady: "health", ModelReady: "health", Check: "health",
  ServerMetadata: "metadata", ModelMetadata: "metadata",
  ModelInfer: "inference", ModelStreamInfer: "inference",
  ModelConfig: "model-config",
  ModelStatistics: "statistics",
  RepositoryIndex: "model-repository", RepositoryModelLoad: "model-repository", RepositoryModelUnload: "model-repository",
  SystemSharedMemoryStatus: "shared-memory", SystemSharedMemoryRegister: "shared-memory", SystemSharedMemoryUnregister: "shared-memory",
  CudaSharedMemoryStatus: "shared-memory", CudaSharedMemoryRegister: "shared-memory", CudaSharedMemoryUnregister: "shared-memory",
  TraceSetting: "trace",
  LogSettings: "logging",
};

type AnyCall = { metadata: Metadata; emit(event: "error", e: ServiceError): boolean };
type Handler = (call: AnyCall, callback?: (e: Partial<ServiceError> | null) => void) => void;

/** The same handlers, each refusing the calls `access` does not let through. */
export function guarded(handlers: UntypedServiceImplementation, access: AccessPolicy): UntypedServiceImplementation {
  if (access.open) return handlers;
  const out: Record<string, Handler> = {};
  for (const [name, handler] of Object.entries(handlers as Record<string, Handler>)) {
    const group = RPC_GROUP[name];
    if (!group) throw new Error(`RPC '${name}' has no access group`);
    out[name] = (call, callback) => {
      const refused = access.check(group, (header) => {
        const v = call.metadata.get(header)[0];
        return v === undefined ? undefined : String(v);
      });
      if (!refused) return handler(call, callback);
      const error = refused.kind === "restricted"
        ? { code: status.UNAVAILABLE, details: `This protocol is restricted, expecting header '${refused.header}'` }
        : { code: status.UNAUTHENTICATED, details: API_KEY_MESSAGE };
      // Unary calls answer through their callback; ModelStreamInfer ends its stream with the status.
      if (typeof callback === "function") callback(error);
      else call.emit("error", { ...error, message: error.details, name: "Error", metadata: call.metadata } as ServiceError);
    };
  }
  return out as unknown as UntypedServiceImplementation;
}
