import type { ServerDuplexStream } from "@grpc/grpc-js";
import { create } from "@bufbuild/protobuf";
import { Canceller, type CancelSignal } from "../../core/requests/cancel-signal.js";
import { asTritonError } from "../../core/errors.js";
import type { InferenceServer } from "../../core/server.js";
import {
  InferParameterSchema,
  ModelInferResponseSchema,
  ModelStreamInferResponseSchema,
  type ModelInferRequest,
  type ModelStreamInferResponse,
} from "../../gen/inference/grpc_service_pb.js";
import { decodeInferRequest, encodeInferResponse, type OutputContents } from "./infer-codec.js";
import { toServiceError } from "./status.js";

type StreamCall = ServerDuplexStream<ModelInferRequest, ModelStreamInferResponse>;

/** Requests of one stream running or waiting to be written before the stream stops reading. */
const MAX_PENDING = 256;

/**
 * `ModelStreamInfer`: a bidirectional stream of requests and responses.
 *
 * Requests run concurrently; responses are written in the order the
 * requests arrived (Triton's order for models that are not decoupled), each
 * carrying its request's id. A failed request becomes a response with
 * `error_message` set and the id echoed, and the stream goes on — unless the
 * client sent the `triton_grpc_error: true` header, in which case the first
 * error ends the stream with its gRPC status, as Triton does.
 *
 * Cancelling the stream (client gone, deadline) aborts every request still
 * queued in core. Writes respect the stream's flow control.
 */
export function handleModelStreamInfer(core: InferenceServer, outputContents: OutputContents, call: StreamCall): void {
  // One controller per request (a long-lived stream must not pile listeners
  // onto one signal); cancelling the stream aborts those still in flight.
  const inflight = new Set<Canceller>();
  const abortAll = () => {
    for (const a of inflight) a.abort();
  };
  const grpcErrorMode = String(call.metadata.get("triton_grpc_error")[0] ?? "").toLowerCase() === "true";
  let writeChain: Promise<void> = Promise.resolve();
  /** Decoupled responses go out as they come, not behind earlier requests' answers. */
  let decoupledChain: Promise<void> = Promise.resolve();
  let pending = 0;
  let readDone = false;
  let finished = false;

  const finish = (error?: unknown) => {
    if (finished) return;
    finished = true;
    if (error !== undefined) call.emit("error", toServiceError(error));
    else call.end();
  };
  const maybeEnd = () => {
    if (readDone && pending === 0) finish();
  };

  const write = async (msg: ModelStreamInferResponse): Promise<void> => {
    if (finished || call.cancelled) return;
    if (call.write(msg)) return;
    // Flow control: wait until the client has read what is buffered.
    await new Promise<void>((resolve) => {
      const done = () => {
        call.off("drain", done);
        call.off("cancelled", done);
        call.off("close", done);
        resolve();
      };
      call.on("drain", done);
      call.on("cancelled", done);
      call.on("close", done);
    });
  };

  call.on("data", (msg: ModelInferRequest) => {
    if (finished) return;
    // A client that sends without reading would make finished responses pile
    // up here: stop reading its requests until it catches up.
    if (++pending >= MAX_PENDING) call.pause();
    const abort = new Canceller();
    inflight.add(abort);
    if (isDecoupled(core, msg)) {
      streamDecoupled(msg, abort).finally(() => {
        inflight.delete(abort);
        writeChain = Promise.all([writeChain, decoupledChain]).then(() => {
          if (--pending === MAX_PENDING >> 1) call.resume();
          maybeEnd();
        });
      });
      return;
    }
    const result = run(core, msg, abort, outputContents).finally(() => inflight.delete(abort));
    writeChain = writeChain.then(async () => {
      const r = await result;
      if ("error" in r) {
        if (grpcErrorMode) {
          abortAll();
          finish(r.error);
          return;
        }
        await write(
          create(ModelStreamInferResponseSchema, {
            errorMessage: asTritonError(r.error).message,
            inferResponse: create(ModelInferResponseSchema, { id: msg.id }),
          }),
        );
      } else {
        await write(create(ModelStreamInferResponseSchema, { inferResponse: r.response }));
      }
      if (--pending === MAX_PENDING >> 1) call.resume();
      maybeEnd();
    });
  });
  /** An error for one request, as a stream response (or, with triton_grpc_error, the end of the stream). */
  const writeError = async (msg: ModelInferRequest, error: unknown, final?: boolean) => {
    if (grpcErrorMode) {
      abortAll();
      finish(error);
      return;
    }
    // A decoupled model's error says whether it ends its request, as its responses do.
    const parameters: Record<string, ReturnType<typeof create<typeof InferParameterSchema>>> = {};
    if (final !== undefined) parameters.triton_final_response = create(InferParameterSchema, { parameterChoice: { case: "boolParam", value: final } });
    await write(create(ModelStreamInferResponseSchema, { errorMessage: asTritonError(error).message, inferResponse: create(ModelInferResponseSchema, { id: msg.id, parameters }) }));
  };

  /**
   * A decoupled model's responses go out as they come, each marked with
   * `triton_final_response`; a final flag without a response is sent as an
   * empty response only when the request asked for it
   * (`triton_enable_empty_final_response`), as Triton does.
   */
  const streamDecoupled = async (msg: ModelInferRequest, signal: CancelSignal): Promise<void> => {
    const emptyFinal = msg.parameters["triton_enable_empty_final_response"]?.parameterChoice.value === true;
    try {
      const decoded = decodeInferRequest(msg);
      decoded.request.signal = signal;
      await core.stream(decoded.request, (response, final) => {
        const flag = { triton_final_response: create(InferParameterSchema, { parameterChoice: { case: "boolParam", value: final } }) };
        if (response instanceof Error) {
          decoupledChain = decoupledChain.then(() => writeError(msg, response, final));
        } else if (response) {
          const encoded = encodeInferResponse(response, decoded.typedInput, outputContents);
          Object.assign(encoded.parameters, flag);
          decoupledChain = decoupledChain.then(() => write(create(ModelStreamInferResponseSchema, { inferResponse: encoded })));
        } else if (final && emptyFinal) {
          const empty = create(ModelInferResponseSchema, { id: msg.id, modelName: msg.modelName, modelVersion: msg.modelVersion, parameters: flag });
          decoupledChain = decoupledChain.then(() => write(create(ModelStreamInferResponseSchema, { inferResponse: empty })));
        }
      });
    } catch (error) {
      decoupledChain = decoupledChain.then(() => writeError(msg, error, true));
    }
  };

  call.on("end", () => {
    readDone = true;
    void writeChain.then(maybeEnd);
  });
  call.on("cancelled", () => {
    finished = true;
    abortAll();
  });
  call.on("error", () => {
    // Deserialization failures and resets end the call; drop what is queued.
    abortAll();
  });
}

function isDecoupled(core: InferenceServer, msg: ModelInferRequest): boolean {
  try {
    return core.getModel(msg.modelName, msg.modelVersion || undefined).decoupled;
  } catch {
    return false; // the ordinary path reports the unknown model
  }
}

async function run(
  core: InferenceServer,
  msg: ModelInferRequest,
  signal: CancelSignal,
  outputContents: OutputContents,
): Promise<{ response: ReturnType<typeof encodeInferResponse> } | { error: unknown }> {
  try {
    core.getModel(msg.modelName, msg.modelVersion || undefined);
    const decoded = decodeInferRequest(msg);
    decoded.request.signal = signal;
    const response = await core.infer(decoded.request);
    return { response: encodeInferResponse(response, decoded.typedInput, outputContents) };
  } catch (error) {
    return { error };
  }
}
