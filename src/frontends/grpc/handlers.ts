import type { sendUnaryData, ServerUnaryCall, UntypedServiceImplementation } from "@grpc/grpc-js";
import { create, type DescMessage, type MessageInitShape, type MessageShape } from "@bufbuild/protobuf";
import { Canceller } from "../../core/requests/cancel-signal.js";
import { TritonError, invalidArg, unsupported } from "../../core/errors.js";
import type { InferenceServer, LoadOverrides } from "../../core/server.js";
import { logSettingsUpdateFromGrpc, type LogSettings } from "../../core/settings/log-settings.js";
import { parseTraceSettingUpdate } from "../../core/settings/trace-settings.js";
import { HealthCheckResponseSchema, HealthCheckResponse_ServingStatus, type HealthCheckRequest, type HealthCheckResponse } from "../../gen/grpc/health/v1/health_pb.js";
import {
  CudaSharedMemoryRegisterResponseSchema,
  LogSettingsResponseSchema,
  TraceSettingResponseSchema,
  CudaSharedMemoryStatusResponseSchema,
  CudaSharedMemoryUnregisterResponseSchema,
  ModelConfigResponseSchema,
  ModelReadyResponseSchema,
  RepositoryModelLoadResponseSchema,
  RepositoryModelUnloadResponseSchema,
  ServerLiveResponseSchema,
  ServerReadyResponseSchema,
  SystemSharedMemoryRegisterResponseSchema,
  SystemSharedMemoryStatusResponseSchema,
  SystemSharedMemoryStatusResponse_RegionStatusSchema,
  SystemSharedMemoryUnregisterResponseSchema,
  type GRPCInferenceService,
  type ModelInferRequest,
  type ModelRepositoryParameter,
} from "../../gen/inference/grpc_service_pb.js";
import { decodeInferRequest, encodeInferResponse, type OutputContents } from "./infer-codec.js";
import { modelMetadataMessage, repositoryIndexMessage, serverMetadataMessage, statisticsMessage } from "./messages.js";
import { toServiceError } from "./status.js";
import { handleModelStreamInfer } from "./stream.js";

type Methods = (typeof GRPCInferenceService)["method"];
type Req<K extends keyof Methods> = MessageShape<Methods[K]["input"]>;
type Res<K extends keyof Methods> = MessageShape<Methods[K]["output"]>;

/** One unary RPC: a function of the request that returns (or resolves to) the response. */
function unary<I, O>(fn: (request: I, call: ServerUnaryCall<I, O>) => O | Promise<O>) {
  return (call: ServerUnaryCall<I, O>, callback: sendUnaryData<O>): void => {
    let result: O | Promise<O>;
    try {
      result = fn(call.request, call);
    } catch (e) {
      callback(toServiceError(e));
      return;
    }
    if (result instanceof Promise) result.then((r) => callback(null, r), (e: unknown) => callback(toServiceError(e)));
    else callback(null, result);
  };
}

function msg<D extends DescMessage>(schema: D, init?: MessageInitShape<D>): MessageShape<D> {
  return create(schema, init);
}

/** Empty version string means "let the server choose", as in Triton. */
const version = (v: string): string | undefined => (v === "" ? undefined : v);

/**
 * The GRPCInferenceService RPCs. Every answer comes from the
 * {@link InferenceServer} facade, the same methods the HTTP frontend calls.
 */
export function inferenceHandlers(core: InferenceServer, outputContents: OutputContents): UntypedServiceImplementation {
  const handlers = {
    ServerLive: unary<Req<"serverLive">, Res<"serverLive">>(() => msg(ServerLiveResponseSchema, { live: core.isLive() })),
    ServerReady: unary<Req<"serverReady">, Res<"serverReady">>(() => msg(ServerReadyResponseSchema, { ready: core.isReady() })),
    ModelReady: unary<Req<"modelReady">, Res<"modelReady">>((r) => msg(ModelReadyResponseSchema, { ready: core.isModelReady(r.name, version(r.version)) })),
    ServerMetadata: unary<Req<"serverMetadata">, Res<"serverMetadata">>(() => serverMetadataMessage(core)),
    ModelMetadata: unary<Req<"modelMetadata">, Res<"modelMetadata">>((r) => modelMetadataMessage(core, r.name, version(r.version))),
    ModelConfig: unary<Req<"modelConfig">, Res<"modelConfig">>((r) => msg(ModelConfigResponseSchema, { config: core.modelConfig(r.name, version(r.version)) })),
    ModelStatistics: unary<Req<"modelStatistics">, Res<"modelStatistics">>((r) =>
      statisticsMessage(core, r.name === "" ? undefined : r.name, version(r.version)),
    ),

    ModelInfer: unary<Req<"modelInfer">, Res<"modelInfer">>((r, call) => modelInfer(core, outputContents, r, call)),
    ModelStreamInfer: handleModelStreamInfer.bind(undefined, core, outputContents),

    RepositoryIndex: unary<Req<"repositoryIndex">, Res<"repositoryIndex">>(async (r) => {
      if (r.repositoryName !== "") throw unsupported("'repository_name' specification is not supported");
      return repositoryIndexMessage(await core.repositoryIndex(r.ready));
    }),
    RepositoryModelLoad: unary<Req<"repositoryModelLoad">, Res<"repositoryModelLoad">>(async (r) => {
      if (r.repositoryName !== "") throw unsupported("'repository_name' specification is not supported");
      await core.repositoryLoad(r.modelName, loadOverrides(r.parameters));
      return msg(RepositoryModelLoadResponseSchema);
    }),
    RepositoryModelUnload: unary<Req<"repositoryModelUnload">, Res<"repositoryModelUnload">>(async (r) => {
      if (r.repositoryName !== "") throw unsupported("'repository_name' specification is not supported");
      const dependents = r.parameters.unload_dependents?.parameterChoice;
      if (dependents !== undefined && dependents.case !== "boolParam") {
        throw invalidArg("invalid value type for 'unload_dependents' parameter, expected bool_param.");
      }
      await core.repositoryUnload(r.modelName, dependents?.value === true);
      return msg(RepositoryModelUnloadResponseSchema);
    }),

    // Trace and logging extensions: the same core methods as HTTP. An empty
    // list resets a trace setting (HTTP's null); no settings: just read them.
    TraceSetting: unary<Req<"traceSetting">, Res<"traceSetting">>((r) => {
      const entries = Object.entries(r.settings);
      const update = entries.length ? parseTraceSettingUpdate(Object.fromEntries(entries.map(([k, v]) => [k, v.value.length ? v.value : null]))) : undefined;
      const current = core.traceSetting(r.modelName === "" ? undefined : r.modelName, update);
      return msg(TraceSettingResponseSchema, { settings: Object.fromEntries(Object.entries(current).map(([k, v]) => [k, { value: Array.isArray(v) ? v : [v] }])) });
    }),
    LogSettings: unary<Req<"logSettings">, Res<"logSettings">>((r) => {
      const current: LogSettings = core.logSettings(Object.keys(r.settings).length ? logSettingsUpdateFromGrpc(r.settings) : undefined);
      const choice = (v: string | boolean | number) =>
        typeof v === "string" ? { case: "stringParam" as const, value: v } : typeof v === "boolean" ? { case: "boolParam" as const, value: v } : { case: "uint32Param" as const, value: v };
      return msg(LogSettingsResponseSchema, { settings: Object.fromEntries(Object.entries(current).map(([k, v]) => [k, { parameterChoice: choice(v) }])) });
    }),

    // System shared memory: the same core registry as HTTP's /v2/systemsharedmemory.
    SystemSharedMemoryStatus: unary<Req<"systemSharedMemoryStatus">, Res<"systemSharedMemoryStatus">>((r) => {
      const regions: Record<string, MessageInitShape<typeof SystemSharedMemoryStatusResponse_RegionStatusSchema>> = {};
      for (const s of core.systemSharedMemoryStatus(r.name)) {
        regions[s.name] = { name: s.name, key: s.key, offset: BigInt(s.offset), byteSize: BigInt(s.byte_size) };
      }
      return msg(SystemSharedMemoryStatusResponseSchema, { regions });
    }),
    SystemSharedMemoryRegister: unary<Req<"systemSharedMemoryRegister">, Res<"systemSharedMemoryRegister">>((r) => {
      core.registerSystemSharedMemory(r.name, r.key, r.offset, r.byteSize);
      return msg(SystemSharedMemoryRegisterResponseSchema);
    }),
    SystemSharedMemoryUnregister: unary<Req<"systemSharedMemoryUnregister">, Res<"systemSharedMemoryUnregister">>((r) => {
      core.unregisterSystemSharedMemory(r.name);
      return msg(SystemSharedMemoryUnregisterResponseSchema);
    }),

    // CUDA shared memory: Tritium has no GPU support; answers are those of a Triton built without GPUs.
    CudaSharedMemoryStatus: unary<Req<"cudaSharedMemoryStatus">, Res<"cudaSharedMemoryStatus">>((r) => {
      core.cudaSharedMemoryStatus(r.name); // throws for any name; no CUDA region exists
      return msg(CudaSharedMemoryStatusResponseSchema);
    }),
    CudaSharedMemoryRegister: unary<Req<"cudaSharedMemoryRegister">, Res<"cudaSharedMemoryRegister">>((r) => {
      core.registerCudaSharedMemory(r.name);
      return msg(CudaSharedMemoryRegisterResponseSchema);
    }),
    CudaSharedMemoryUnregister: unary<Req<"cudaSharedMemoryUnregister">, Res<"cudaSharedMemoryUnregister">>(() =>
      msg(CudaSharedMemoryUnregisterResponseSchema),
    ),
  } satisfies Record<Capitalize<keyof Methods>, unknown>;
  return handlers as unknown as UntypedServiceImplementation;
}

/** `grpc.health.v1.Health/Check`: SERVING when the server is ready (Triton's rule), whatever the service name. */
export function healthHandlers(core: InferenceServer): UntypedServiceImplementation {
  return {
    Check: unary<HealthCheckRequest, HealthCheckResponse>(() =>
      msg(HealthCheckResponseSchema, {
        status: core.isReady() ? HealthCheckResponse_ServingStatus.SERVING : HealthCheckResponse_ServingStatus.NOT_SERVING,
      }),
    ),
  } as unknown as UntypedServiceImplementation;
}

async function modelInfer(core: InferenceServer, outputContents: OutputContents, r: ModelInferRequest, call: ServerUnaryCall<ModelInferRequest, unknown>) {
  // Triton resolves the model before it reads the inputs: an unknown model
  // is reported as such even when the inputs are wrong too.
  if (core.getModel(r.modelName, version(r.modelVersion)).decoupled) {
    throw new TritonError("UNSUPPORTED", "ModelInfer RPC doesn't support models with decoupled transaction policy");
  }
  const decoded = decodeInferRequest(r);
  // A client that cancels (or whose deadline passes) drops its queued request.
  const abort = new Canceller();
  const onCancel = () => abort.abort();
  if (call.cancelled) abort.abort();
  else call.once("cancelled", onCancel);
  decoded.request.signal = abort;
  try {
    const response = await core.infer(decoded.request);
    return encodeInferResponse(response, decoded.typedInput, outputContents);
  } finally {
    call.off("cancelled", onCancel);
  }
}

/**
 * Load parameters as Triton checks them: `config` is a string (the model
 * configuration as JSON), `file:<version>/<name>` entries are bytes (the
 * model's files), nothing else is known.
 */
function loadOverrides(params: { [key: string]: ModelRepositoryParameter }): LoadOverrides | undefined {
  const entries = Object.entries(params);
  if (entries.length === 0) return undefined;
  const out: LoadOverrides = {};
  for (const [key, p] of entries) {
    const c = p.parameterChoice;
    if (key === "config") {
      if (c.case !== "stringParam") throw invalidArg(`invalid value type for load parameter '${key}', expected string_param.`);
      out.config = c.value;
    } else if (key.startsWith("file:")) {
      if (c.case !== "bytesParam") throw invalidArg(`invalid value type for load parameter '${key}', expected bytes_param.`);
      (out.files ??= {})[key] = c.value;
    } else {
      throw invalidArg(`unrecognized load parameter '${key}'.`);
    }
  }
  return out;
}
