import type { sendUnaryData, ServerUnaryCall, UntypedServiceImplementation } from "@grpc/grpc-js";
import { create, type DescMessage, type MessageInitShape, type MessageShape } from "@bufbuild/protobuf";
import { invalidArg, notFound, unavailable, unsupported } from "../../core/errors.js";
import type { InferenceServer, LoadOverrides } from "../../core/server.js";
import { HealthCheckResponseSchema, HealthCheckResponse_ServingStatus, type HealthCheckRequest, type HealthCheckResponse } from "../../gen/grpc/health/v1/health_pb.js";
import {
  CudaSharedMemoryStatusResponseSchema,
  CudaSharedMemoryUnregisterResponseSchema,
  ModelConfigResponseSchema,
  ModelReadyResponseSchema,
  RepositoryModelLoadResponseSchema,
  RepositoryModelUnloadResponseSchema,
  ServerLiveResponseSchema,
  ServerReadyResponseSchema,
  SystemSharedMemoryStatusResponseSchema,
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

    // Features that are not in Tritium yet answer as a Triton built without them does.
    TraceSetting: unary<Req<"traceSetting">, Res<"traceSetting">>(() => {
      throw unavailable("the server does not support trace");
    }),
    LogSettings: unary<Req<"logSettings">, Res<"logSettings">>(() => {
      throw unavailable("the server does not support dynamic logging");
    }),

    // System shared memory is not implemented yet: nothing can be registered,
    // so the status is empty and unregistering is a no-op.
    SystemSharedMemoryStatus: unary<Req<"systemSharedMemoryStatus">, Res<"systemSharedMemoryStatus">>((r) => {
      if (r.name !== "") throw notFound(`Unable to find system shared memory region: '${r.name}'`);
      return msg(SystemSharedMemoryStatusResponseSchema);
    }),
    SystemSharedMemoryRegister: unary<Req<"systemSharedMemoryRegister">, Res<"systemSharedMemoryRegister">>((r) => {
      throw unsupported(`failed to register system shared memory region '${r.name}': system shared memory is not supported by this server yet`);
    }),
    SystemSharedMemoryUnregister: unary<Req<"systemSharedMemoryUnregister">, Res<"systemSharedMemoryUnregister">>(() =>
      msg(SystemSharedMemoryUnregisterResponseSchema),
    ),

    // CUDA shared memory: Tritium has no GPU support; answers are those of a Triton built without GPUs.
    CudaSharedMemoryStatus: unary<Req<"cudaSharedMemoryStatus">, Res<"cudaSharedMemoryStatus">>((r) => {
      if (r.name !== "") throw notFound(`Unable to find cuda shared memory region: '${r.name}'`);
      return msg(CudaSharedMemoryStatusResponseSchema);
    }),
    CudaSharedMemoryRegister: unary<Req<"cudaSharedMemoryRegister">, Res<"cudaSharedMemoryRegister">>((r) => {
      throw invalidArg(`failed to register CUDA shared memory region: '${r.name}', GPUs not supported`);
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
  core.getModel(r.modelName, version(r.modelVersion));
  const decoded = decodeInferRequest(r);
  // A client that cancels (or whose deadline passes) drops its queued request.
  const abort = new AbortController();
  const onCancel = () => abort.abort();
  if (call.cancelled) abort.abort();
  else call.once("cancelled", onCancel);
  decoded.request.signal = abort.signal;
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
