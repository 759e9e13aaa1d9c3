import { status as GrpcStatus, type ServerErrorResponse } from "@grpc/grpc-js";
import { asTritonError, type ErrorCode } from "../../core/errors.js";

/**
 * Triton's gRPC status for each error code (its `GrpcStatusUtil::Create`).
 * Exhaustive: adding a code to ErrorCode breaks the build here until it has
 * a status, as `frontends/http/status.ts` does for HTTP.
 */
export function grpcStatus(code: ErrorCode): GrpcStatus {
  switch (code) {
    case "UNKNOWN": return GrpcStatus.UNKNOWN;
    case "INTERNAL": return GrpcStatus.INTERNAL;
    case "NOT_FOUND": return GrpcStatus.NOT_FOUND;
    case "INVALID_ARG": return GrpcStatus.INVALID_ARGUMENT;
    case "UNAVAILABLE": return GrpcStatus.UNAVAILABLE;
    case "UNSUPPORTED": return GrpcStatus.UNIMPLEMENTED;
    case "ALREADY_EXISTS": return GrpcStatus.ALREADY_EXISTS;
    case "CANCELLED": return GrpcStatus.CANCELLED;
  }
}

/** Anything thrown by a handler → the status and message the client sees. */
export function toServiceError(e: unknown): ServerErrorResponse {
  const err = asTritonError(e);
  return Object.assign(new Error(err.message), { code: grpcStatus(err.code), details: err.message });
}
