import { fromJson, type DescMessage, type JsonValue, type MessageShape } from "@bufbuild/protobuf";
import type { InferenceServer, RepositoryIndexEntry } from "../../core/server.js";
import {
  ModelMetadataResponseSchema,
  ModelStatisticsResponseSchema,
  RepositoryIndexResponseSchema,
  ServerMetadataResponseSchema,
  type ModelMetadataResponse,
  type ModelStatisticsResponse,
  type RepositoryIndexResponse,
  type ServerMetadataResponse,
} from "../../gen/inference/grpc_service_pb.js";

/**
 * Core answers → gRPC messages. Core already speaks Triton's JSON shapes with
 * proto field names (server metadata, model metadata, statistics, the
 * repository index); the protobuf JSON mapping turns them into the messages,
 * as Triton's gRPC server does from its own JSON. Fields core adds later
 * flow through without code here; fields the proto lacks are dropped.
 */
function fromCoreJson<D extends DescMessage>(schema: D, value: unknown): MessageShape<D> {
  return fromJson(schema, value as JsonValue, { ignoreUnknownFields: true });
}

export function serverMetadataMessage(core: InferenceServer): ServerMetadataResponse {
  return fromCoreJson(ServerMetadataResponseSchema, core.metadata());
}

export function modelMetadataMessage(core: InferenceServer, name: string, version: string | undefined): ModelMetadataResponse {
  return fromCoreJson(ModelMetadataResponseSchema, core.modelMetadata(name, version));
}

export function statisticsMessage(core: InferenceServer, name: string | undefined, version: string | undefined): ModelStatisticsResponse {
  return fromCoreJson(ModelStatisticsResponseSchema, core.statistics(name, version));
}

export function repositoryIndexMessage(entries: RepositoryIndexEntry[]): RepositoryIndexResponse {
  return fromCoreJson(RepositoryIndexResponseSchema, { models: entries });
}
