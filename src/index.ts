/**
 * Tritium's in-process API (the role of Triton's C API): a server over a
 * model repository, with no sockets. The same facade backs the HTTP and gRPC
 * frontends, so in-process answers are identical to what a network client gets.
 *
 * @example
 * import { createServer, makeTensor, tensorValues } from "tritium";
 * const server = await createServer({ modelRepository: "examples/model_repository" });
 * const res = await server.infer({
 *   model_name: "simple",
 *   inputs: [
 *     makeTensor("INPUT0", "INT32", [1, 16], new Int32Array(16).fill(2)),
 *     makeTensor("INPUT1", "INT32", [1, 16], new Int32Array(16).fill(1)),
 *   ],
 * });
 * console.log(tensorValues(res.outputs[0]!)); // Int32Array of 3s
 * await server.stop();
 */
import { OnnxRuntimeBackend } from "./backends/onnxruntime/onnxruntime-backend.js";
import { JsBackend } from "./backends/js/js-backend.js";
import { PythonBackend } from "./backends/python/python-backend.js";
import { PyTorchBackend } from "./backends/pytorch/pytorch-backend.js";
import type { Backend } from "./core/backend.js";
import { Logger } from "./core/observability/logger.js";
import { InferenceServer, type ServerOptions } from "./core/server.js";

export { InferenceServer, SERVER_EXTENSIONS } from "./core/server.js";
export type { ServerOptions, ModelMetadata, RepositoryIndexEntry, ModelControlMode } from "./core/server.js";
export type { InferenceRequest, InferenceResponse, RequestedOutput } from "./core/requests/inference.js";
export type { CancelSignal } from "./core/requests/cancel-signal.js";
export type { TritiumModel, ModelRequest, ModelResponse, ModelTensor, ModelOutput, ModelInitializeArgs } from "./backends/js/model-api.js";
export type { Tensor, Parameters, ParameterValue } from "./core/tensors/tensor.js";
export type { DataType } from "./core/tensors/datatypes.js";
export { TritonError, type ErrorCode } from "./core/errors.js";
export { makeTensor, tensorValues, type TensorValues } from "./core/tensors/tensor-values.js";
export { Logger } from "./core/observability/logger.js";
export type { Backend, BackendModel, BackendInstance, BackendModelContext } from "./core/backend.js";
export { HttpFrontend, type HttpFrontendOptions } from "./frontends/http/http-server.js";
export { GrpcFrontend, type GrpcFrontendOptions } from "./frontends/grpc/grpc-server.js";
export { MetricsFrontend, type MetricsFrontendOptions } from "./frontends/metrics/metrics-frontend.js";

/** The backends a server gets unless told otherwise. */
export function defaultBackends(): Backend[] {
  return [
    new OnnxRuntimeBackend(),
    new JsBackend(),
    new JsBackend({ name: "identity", builtin: new URL("./backends/js/builtin/identity-model.js", import.meta.url) }),
    new JsBackend({ name: "repeat", builtin: new URL("./backends/js/builtin/repeat-model.js", import.meta.url) }),
    new JsBackend({ name: "square", builtin: new URL("./backends/js/builtin/square-model.js", import.meta.url) }),
    new PythonBackend(),
    new PyTorchBackend(),
  ];
}

export interface CreateServerOptions extends Partial<Omit<ServerOptions, "modelRepositories">> {
  /** One or more model repositories. */
  modelRepository: string | string[];
  /** Silence start-up logging (default: log to stderr in Triton's format). */
  quiet?: boolean;
}

/** Creates and starts an in-process server: models are loaded when the promise resolves. */
export async function createServer(options: CreateServerOptions): Promise<InferenceServer> {
  const { modelRepository, quiet, ...rest } = options;
  const server = new InferenceServer({
    ...rest,
    modelRepositories: Array.isArray(modelRepository) ? modelRepository : [modelRepository],
    backends: rest.backends ?? defaultBackends(),
    logger: rest.logger ?? (quiet ? new Logger({ info: false, warning: false, error: false }) : undefined),
  });
  await server.start();
  return server;
}
