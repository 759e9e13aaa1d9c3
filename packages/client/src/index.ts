/**
 * `@tritium/client`: HTTP/REST and gRPC clients for Triton Inference
 * Server's protocol (KServe v2 with Triton's extensions), sharing one
 * interface. `@tritium/client/http` exports the HTTP client alone, without
 * gRPC, for browsers.
 *
 * @packageDocumentation
 */
export { InferenceServerError } from "./errors.js";
export { HttpClient, type HttpClientOptions, type InferTiming, type GenerateRequest, type GenerateResponse } from "./http-client.js";
export { GrpcClient, type GrpcClientOptions } from "./grpc-client.js";
export { InferStream, type StreamCallback, type StreamResponse } from "./grpc-stream.js";
export { InferResult, type InferOutput } from "./infer-result.js";
export { serializeBytes, deserializeBytes, bytesToStrings } from "./tensors.js";
export type * from "./types.js";
