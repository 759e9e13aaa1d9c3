/**
 * The one error type of the client library: every failure the server
 * reports, over either protocol, and every failure of the client itself
 * (cancellation, a connection that drops, an answer it cannot read).
 */

/**
 * An error answered by an inference server, or met by the client while
 * talking to one.
 *
 * `message` is the server's message verbatim (the `error` of an HTTP
 * `{"error": "..."}` body, or a gRPC status's details), so code written
 * against Triton's messages keeps matching.
 *
 * @example
 * ```ts
 * try {
 *   await client.getModelMetadata("nope");
 * } catch (e) {
 *   if (e instanceof InferenceServerError) console.log(e.status, e.message);
 *   // HTTP: 400 "Request for unknown model: 'nope' is not found"
 *   // gRPC: "INVALID_ARGUMENT" "Request for unknown model: 'nope' is not found"
 * }
 * ```
 */
export class InferenceServerError extends Error {
  /**
   * Over HTTP the response's status code (400, 404, 503, ...); over gRPC the
   * status code's name (`"INVALID_ARGUMENT"`, `"NOT_FOUND"`, ...). A failure
   * on the client's side has `"CANCELLED"` (an aborted signal),
   * `"DEADLINE_EXCEEDED"` or `"UNAVAILABLE"` (no connection) over both.
   */
  readonly status: number | string;

  /** The error this one stands for, where it wraps one (a network error). */
  override readonly cause?: unknown;

  /**
   * @param status - HTTP status code or gRPC status code name
   * @param message - the server's message, verbatim
   * @param cause - an underlying error, if any
   */
  constructor(status: number | string, message: string, cause?: unknown) {
    super(message);
    this.name = "InferenceServerError";
    this.status = status;
    if (cause !== undefined) this.cause = cause;
  }
}

/** The error for a call whose AbortSignal fired: the signal's reason's message when it has one. */
export function cancelledError(signal: AbortSignal | undefined): InferenceServerError {
  const reason: unknown = signal?.reason;
  const message = reason instanceof Error && reason.name !== "AbortError" ? reason.message : "Cancelled";
  return new InferenceServerError("CANCELLED", message, reason);
}
