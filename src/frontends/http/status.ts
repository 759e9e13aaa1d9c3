import type { ErrorCode } from "../../core/errors.js";

/**
 * Triton's HTTP status for each error code. Exhaustive: adding a code to
 * ErrorCode breaks the build here until it has a status.
 */
export function httpStatus(code: ErrorCode): number {
  switch (code) {
    case "INTERNAL": return 500;
    case "NOT_FOUND": return 404;
    case "UNAVAILABLE": return 503;
    case "UNSUPPORTED": return 501;
    case "UNKNOWN":
    case "INVALID_ARG":
    case "ALREADY_EXISTS":
    case "CANCELLED":
      return 400;
  }
}
