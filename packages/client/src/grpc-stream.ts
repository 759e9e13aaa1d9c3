/**
 * A gRPC `ModelStreamInfer` stream: requests written as the caller likes,
 * responses read as an async iterable or handed to a callback (the roles of
 * tritonclient's `start_stream`/`async_stream_infer` and its asyncio
 * `stream_infer`).
 */
import type { ClientDuplexStream } from "@grpc/grpc-js";
import { cancelledError, InferenceServerError } from "./errors.js";
import type { ModelInferRequest, ModelStreamInferResponse } from "./gen/inference/grpc_service_pb.js";
import { decodeGrpcInfer, encodeGrpcInfer } from "./grpc-codec.js";
import type { InferResult } from "./infer-result.js";
import type { InferInput, InferOptions } from "./types.js";

/** One message of a stream: a result, or the error the server sent for one request (the stream goes on). */
export interface StreamResponse {
  /** The response, when the request succeeded. */
  result?: InferResult;
  /** The server's error for one request (its `error_message`, status `"UNKNOWN"`: the message carries no code). */
  error?: InferenceServerError;
}

/** Called with each message of a stream, when the stream was started with a callback. */
export type StreamCallback = (result: InferResult | undefined, error: InferenceServerError | undefined) => void;

/**
 * An open `ModelStreamInfer` call. Iterate it for the responses (unless it
 * was started with a callback); {@link InferStream.end} once every request
 * is sent, and the iteration ends when the server has answered them all.
 *
 * An error the server reports for one request arrives as a message whose
 * `error` has status `"UNKNOWN"` (the stream's messages carry no code) and
 * the server's text; a failure of the whole stream ends the iteration by
 * throwing.
 */
export class InferStream implements AsyncIterable<StreamResponse> {
  readonly #call: ClientDuplexStream<ModelInferRequest, ModelStreamInferResponse>;
  readonly #callback?: StreamCallback;
  readonly #queue: StreamResponse[] = [];
  #waiting?: () => void;
  #failure?: InferenceServerError;
  #done = false;

  /** @internal Made by {@link GrpcClient.startStream}. */
  constructor(call: ClientDuplexStream<ModelInferRequest, ModelStreamInferResponse>, toError: (e: unknown) => InferenceServerError, signal?: AbortSignal, callback?: StreamCallback) {
    this.#call = call;
    this.#callback = callback;
    call.on("data", (m: ModelStreamInferResponse) => {
      const message: StreamResponse = m.errorMessage !== ""
        ? { error: new InferenceServerError("UNKNOWN", m.errorMessage) }
        : { result: decodeGrpcInfer(m.inferResponse!) };
      if (this.#callback) this.#callback(message.result, message.error);
      else this.#queue.push(message);
      this.#wake();
    });
    call.on("error", (e: unknown) => {
      this.#failure = signal?.aborted ? cancelledError(signal) : toError(e);
      if (this.#callback) this.#callback(undefined, this.#failure);
      this.#finish();
    });
    call.on("end", () => this.#finish());
    // grpc-js emits 'status' after 'end' or 'error'; a stream ended cleanly needs nothing more.
    if (signal) {
      const onAbort = () => call.cancel();
      if (signal.aborted) onAbort();
      else signal.addEventListener("abort", onAbort, { once: true });
      call.on("close", () => signal.removeEventListener("abort", onAbort));
    }
  }

  #finish(): void {
    this.#done = true;
    this.#wake();
  }

  #wake(): void {
    const w = this.#waiting;
    this.#waiting = undefined;
    w?.();
  }

  /**
   * Sends one request on the stream.
   *
   * @param options - as for {@link GrpcClient.infer}; `signal` is the stream's, not the request's
   */
  send(model: string, inputs: InferInput[], options: InferOptions = {}): void {
    this.#call.write(encodeGrpcInfer(model, inputs, options));
  }

  /** No more requests: the server finishes answering those sent, then ends the stream. */
  end(): void {
    this.#call.end();
  }

  /** Cancels the stream now: the server stops its requests; iteration throws a `"CANCELLED"` error. */
  cancel(): void {
    this.#call.cancel();
  }

  /** Resolves once the stream is over (rejects if it failed); for streams started with a callback. */
  async closed(): Promise<void> {
    while (!this.#done) await new Promise<void>((resolve) => (this.#waiting = resolve));
    if (this.#failure) throw this.#failure;
  }

  async *[Symbol.asyncIterator](): AsyncIterator<StreamResponse> {
    try {
      for (;;) {
        const next = this.#queue.shift();
        if (next) {
          yield next;
          continue;
        }
        if (this.#done) break;
        await new Promise<void>((resolve) => (this.#waiting = resolve));
      }
      if (this.#failure) throw this.#failure;
    } finally {
      // Leaving the loop early leaves nobody to read: stop the server's work.
      if (!this.#done) this.#call.cancel();
    }
  }
}
