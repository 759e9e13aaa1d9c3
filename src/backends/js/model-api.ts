/**
 * The interface a JavaScript/TypeScript model implements for Tritium's `js`
 * backend: the life cycle of Triton's Python backend (`initialize`,
 * `execute`, `finalize`), with tensors as typed arrays.
 *
 * A model is `<version>/model.js` (or the file `default_model_filename`
 * names, e.g. `model.mjs`), an ES module whose default export is a class
 * (constructed once per instance) or an object implementing
 * {@link TritiumModel}. Each instance runs in a worker thread of its own.
 *
 * @example
 * // 1/model.mjs — OUTPUT0 = INPUT0 + INPUT1
 * export default class {
 *   execute(requests) {
 *     return requests.map((r) => {
 *       const a = r.inputs.INPUT0.data, b = r.inputs.INPUT1.data;
 *       return { outputs: { OUTPUT0: { shape: r.inputs.INPUT0.shape, data: a.map((v, i) => v + b[i]) } } };
 *     });
 *   }
 * }
 */
import type { ErrorCode } from "../../core/errors.js";
import type { DataType } from "../../core/tensors/datatypes.js";
import type { TensorValues } from "../../core/tensors/tensor-values.js";

/** An input tensor as a model sees it. */
export interface ModelTensor {
  name: string;
  datatype: DataType;
  shape: number[];
  /**
   * The elements: the datatype's typed array (FP16/BF16 as raw Uint16 bits,
   * BOOL as 0/1 bytes), or for BYTES each element decoded as UTF-8.
   */
  data: TensorValues | string[];
  /** BYTES only: each element's raw bytes (exact, NUL bytes included). */
  bytes?: Uint8Array[];
}

/** One request of the batch `execute` receives. */
export interface ModelRequest {
  /** The inputs, by name. */
  inputs: Record<string, ModelTensor>;
  /** The outputs to return, in the client's order (every configured output when it named none). */
  requestedOutputs: string[];
  /**
   * Decoupled models only (`model_transaction_policy { decoupled: true }`):
   * sends this request's responses, zero or more, the last with `final`.
   * `execute` then returns nothing; the batch ends when every request has
   * sent its final flag (or `execute` throws).
   */
  sender?: ResponseSender;
  /** Whether the client has gone away (Triton's `is_cancelled()`): a long-running model may stop early. */
  isCancelled(): boolean;
}

/** Sends a decoupled model's responses to one request. */
export interface ResponseSender {
  /** A response (or none, to only end the request with `{ final: true }`). */
  send(response?: ModelResponse, options?: { final?: boolean }): void;
}

/** An output a model returns. */
export interface ModelOutput {
  /** Defaults to the datatype the model configuration gives the output. */
  datatype?: DataType;
  shape: number[];
  /** A typed array, or plain numbers / bigints, or for BYTES strings or Uint8Arrays. */
  data: TensorValues | readonly number[] | readonly bigint[] | readonly string[];
}

/** The answer to one request: its outputs by name, or an error for this request only. */
export type ModelResponse =
  | { outputs: Record<string, ModelOutput>; error?: undefined }
  /** A failed request: a message (status INTERNAL), or a code and message, as Triton's Python `TritonError(msg, code)`. */
  | { error: string | { code: ErrorCode; message: string }; outputs?: undefined };

/** What `initialize` receives: the keys of Triton's Python backend `args`. */
export interface ModelInitializeArgs {
  /** The complete model configuration as JSON text (Triton's JSON form). */
  model_config: string;
  model_name: string;
  model_version: string;
  model_instance_name: string;
  model_instance_kind: string;
  model_instance_device_id: string;
  /** The model's directory in the repository (holds config.pbtxt and the version folders). */
  model_repository: string;
}

/** An input of a request a model sends to another model (BLS). */
export interface BlsInput {
  name: string;
  datatype: DataType;
  shape: number[];
  data: TensorValues | readonly number[] | readonly bigint[] | readonly string[];
}

/** A request a model sends to another model of the server (Triton's BLS). */
export interface BlsRequest {
  model_name: string;
  /** Absent: the latest ready version. */
  model_version?: string;
  inputs: BlsInput[];
  /** The outputs wanted; absent: all of them. */
  outputs?: string[];
}

/** What the server gives a model besides its requests. */
export interface ModelServices {
  /**
   * Runs a request on another model of this server, through that model's own
   * scheduler (so it batches with other traffic), and resolves with its outputs
   * by name; rejects with the server's error (`message` as a client would see it).
   */
  infer(request: BlsRequest): Promise<Record<string, ModelTensor>>;
  /**
   * Runs a request on a decoupled model of this server and yields each of its
   * responses' outputs as they come; throws the first error response.
   */
  stream(request: BlsRequest): AsyncIterable<Record<string, ModelTensor>>;
}

/** A model for the `js` backend. */
export interface TritiumModel {
  /** Called once per instance, before any request; a throw fails the model's load. */
  initialize?(args: ModelInitializeArgs, services: ModelServices): void | Promise<void>;
  /** Answers a batch: one response per request, in order (decoupled: through each request's sender). A throw fails the whole batch. */
  execute(requests: ModelRequest[]): ModelResponse[] | void | Promise<ModelResponse[] | void>;
  /** Called once when the instance is unloaded. */
  finalize?(): void | Promise<void>;
}
