/**
 * The one error type of Tritium. Every failure that reaches a client is a
 * {@link TritonError} carrying one of Triton's eight codes; frontends map the
 * code to a transport status at the edge (see `frontends/http/status.ts`).
 *
 * Errors are matched by `code`, never by class identity, because they cross
 * worker-thread boundaries as plain objects.
 */
export type ErrorCode =
  | "UNKNOWN"
  | "INTERNAL"
  | "NOT_FOUND"
  | "INVALID_ARG"
  | "UNAVAILABLE"
  | "UNSUPPORTED"
  | "ALREADY_EXISTS"
  | "CANCELLED";

/** An error with a Triton error code and a message meant for the client. */
export class TritonError extends Error {
  readonly code: ErrorCode;

  constructor(code: ErrorCode, message: string) {
    super(message);
    this.name = "TritonError";
    this.code = code;
  }

  /** A plain object that survives `postMessage`. */
  toJSON(): SerializedError {
    return { code: this.code, message: this.message };
  }

  /** Rebuilds an error from {@link SerializedError} (e.g. sent by a worker). */
  static from(e: SerializedError): TritonError {
    return new TritonError(e.code, e.message);
  }
}

/** The form a {@link TritonError} takes when it crosses a thread or process. */
export interface SerializedError {
  code: ErrorCode;
  message: string;
}

/** Shorthands, so call sites read as the condition they report. */
export const invalidArg = (message: string) => new TritonError("INVALID_ARG", message);
export const notFound = (message: string) => new TritonError("NOT_FOUND", message);
export const unavailable = (message: string) => new TritonError("UNAVAILABLE", message);
export const unsupported = (message: string) => new TritonError("UNSUPPORTED", message);
export const internal = (message: string) => new TritonError("INTERNAL", message);

/**
 * Converts anything thrown into a TritonError. An unexpected exception is an
 * INTERNAL error: it is our bug, not the client's.
 */
export function asTritonError(e: unknown): TritonError {
  if (e instanceof TritonError) return e;
  if (e && typeof e === "object" && "code" in e && "message" in e && isErrorCode((e as { code: unknown }).code)) {
    return new TritonError((e as SerializedError).code, String((e as SerializedError).message));
  }
  return new TritonError("INTERNAL", e instanceof Error ? e.message : String(e));
}

const CODES: ReadonlySet<string> = new Set<ErrorCode>([
  "UNKNOWN", "INTERNAL", "NOT_FOUND", "INVALID_ARG", "UNAVAILABLE", "UNSUPPORTED", "ALREADY_EXISTS", "CANCELLED",
]);

export function isErrorCode(v: unknown): v is ErrorCode {
  return typeof v === "string" && CODES.has(v);
}

/** Triton's human-readable code names, as printed in logs and the model table. */
export function codeString(code: ErrorCode): string {
  switch (code) {
    case "UNKNOWN": return "Unknown";
    case "INTERNAL": return "Internal";
    case "NOT_FOUND": return "Not found";
    case "INVALID_ARG": return "Invalid argument";
    case "UNAVAILABLE": return "Unavailable";
    case "UNSUPPORTED": return "Unsupported";
    case "ALREADY_EXISTS": return "Already exists";
    case "CANCELLED": return "Cancelled";
  }
}
