import { elementCount, elementSize } from "../tensors/datatypes.js";
import { invalidArg, type TritonError } from "../errors.js";
import type { BatchRequest, InferenceRequest } from "./inference.js";
import { formatShape, type ModelSpec, type TensorSpec } from "../repository/model-spec.js";
import { countBytesElements, type Tensor } from "../tensors/tensor.js";

/** A request that passed validation, in the form a backend instance takes. */
export interface PreparedRequest {
  batch: BatchRequest;
  /** 1 for models without a batch dimension. */
  batchSize: number;
  /** Requested outputs that want classification, by output name → top K. */
  classification: Map<string, number>;
}

/** Prefix Triton puts on inference errors, so logs and clients can match them. */
export function requestIdPrefix(id: string | undefined): string {
  return `[request id: ${id ? id : "<id_unknown>"}] `;
}

/**
 * Checks a request against the model's configuration: known inputs and
 * outputs, datatypes, shapes (with the implicit batch dimension), batch size
 * and byte sizes. Returns the backend's view with `reshape` applied.
 */
export function prepareRequest(spec: ModelSpec, req: InferenceRequest): PreparedRequest {
  const fail = (msg: string): TritonError => invalidArg(requestIdPrefix(req.id) + msg);
  const model = spec.name;
  const seen = new Set<string>();
  let batchSize = spec.maxBatchSize > 0 ? -1 : 1;
  const inputs: Tensor[] = [];

  for (const input of req.inputs) {
    const ts = spec.input.get(input.name);
    if (!ts) throw fail(`unexpected inference input '${input.name}' for model '${model}'`);
    if (seen.has(input.name)) throw fail(`input '${input.name}' is specified more than once for model '${model}'`);
    seen.add(input.name);
    if (input.datatype !== ts.datatype) {
      throw fail(`inference input '${input.name}' data-type is '${input.datatype}', but model '${model}' expects '${ts.datatype}'`);
    }
    let dims = input.shape;
    if (spec.maxBatchSize > 0) {
      if (dims.length === 0) throw fail(shapeMessage(spec, ts, input.shape));
      const b = dims[0]!;
      if (b < 1) throw fail(shapeMessage(spec, ts, input.shape));
      if (batchSize === -1) batchSize = b;
      else if (b !== batchSize) {
        throw fail(`input '${input.name}' batch size ${b} does not match other inputs' batch size ${batchSize} for model '${model}'`);
      }
      dims = dims.slice(1);
    }
    if (!shapeMatches(ts.dims, dims)) throw fail(shapeMessage(spec, ts, input.shape));
    const count = elementCount(input.shape);
    if (input.datatype === "BYTES") {
      const n = countBytesElements(input.data);
      if (n !== count) {
        throw fail(`input byte size mismatch for input '${input.name}' for model '${model}'. Expected ${count} string elements, got ${n < 0 ? "malformed data" : n}`);
      }
    } else {
      const expected = count * elementSize(input.datatype);
      if (input.data.byteLength !== expected) {
        throw fail(`input byte size mismatch for input '${input.name}' for model '${model}'. Expected ${expected}, got ${input.data.byteLength}`);
      }
    }
    inputs.push(ts.reshape ? { ...input, shape: reshaped(spec, ts, input.shape, dims) } : input);
  }

  const missing = spec.inputs.filter((t) => !t.optional && !seen.has(t.name)).map((t) => t.name);
  if (missing.length > 0) {
    const got = req.inputs.map((t) => `'${t.name}'`).join(",");
    throw fail(
      `expected ${spec.inputs.filter((t) => !t.optional).length} inputs but got ${req.inputs.length} inputs for model '${model}'. ` +
        `Got input(s) [${got}], but missing required input(s) [${missing.map((m) => `'${m}'`).join(",")}]. Please provide all required input(s).`,
    );
  }
  if (spec.maxBatchSize > 0 && batchSize > spec.maxBatchSize) {
    throw fail(`inference request batch-size must be <= ${spec.maxBatchSize} for '${model}'`);
  }

  const classification = new Map<string, number>();
  let outputNames: string[];
  if (req.outputs && req.outputs.length > 0) {
    outputNames = [];
    for (const o of req.outputs) {
      const os = spec.output.get(o.name);
      if (!os) throw fail(`unexpected inference output '${o.name}' for model '${model}'`);
      if (outputNames.includes(o.name)) throw fail(`output '${o.name}' is requested more than once for model '${model}'`);
      outputNames.push(o.name);
      if (o.classification !== undefined && o.classification !== 0) {
        if (!Number.isInteger(o.classification) || o.classification < 0) {
          throw fail(`classification count for output '${o.name}' of model '${model}' must be a positive integer`);
        }
        if (os.datatype === "BYTES") throw fail(`output '${o.name}' of model '${model}' is BYTES and cannot be classified`);
        classification.set(o.name, o.classification);
      }
    }
  } else {
    outputNames = spec.outputs.map((t) => t.name);
  }
  const batch: BatchRequest = { inputs, outputNames };
  // Backends that show them to models (Python's request_id(), parameters(), correlation_id()).
  if (req.id) batch.id = req.id;
  if (req.parameters) batch.parameters = req.parameters;
  // For the backend on the main thread: the client's cancellation, and the BLS chain the batch's own calls extend.
  if (req.signal) batch.signal = req.signal;
  if (req.callers) batch.callers = req.callers;
  return { batch, batchSize: Math.max(batchSize, 1), classification };
}

/** Whether `got` fits `expected`, where -1 takes any size. */
export function shapeMatches(expected: readonly number[], got: readonly number[]): boolean {
  if (expected.length !== got.length) return false;
  for (let i = 0; i < got.length; i++) {
    const e = expected[i]!;
    if (got[i]! < 0 || (e !== -1 && e !== got[i])) return false;
  }
  return true;
}

function shapeMessage(spec: ModelSpec, ts: TensorSpec, got: readonly number[]): string {
  const full = spec.maxBatchSize > 0 ? [-1, ...ts.dims] : ts.dims;
  let msg = `unexpected shape for input '${ts.name}' for model '${spec.name}'. Expected ${formatShape(full)}, got ${formatShape(got)}. `;
  if (spec.maxBatchSize > 0) {
    msg +=
      "NOTE: Setting a non-zero max_batch_size in the model config requires a batch dimension to be prepended to each input shape. " +
      "If you want to specify the full shape including the batch dim in your input dims config, try setting max_batch_size to zero. " +
      "See the model configuration docs for more info on max_batch_size.";
  }
  return msg;
}

/** Applies `reshape`; variable (-1) reshape dims take the request's values in order. */
function reshaped(spec: ModelSpec, ts: TensorSpec, shape: readonly number[], dims: readonly number[]): number[] {
  const target = ts.reshape!;
  const known = target.filter((d) => d > 0).reduce((a, b) => a * b, 1);
  const total = elementCount(dims);
  const out = target.map((d) => (d > 0 ? d : total / known));
  return spec.maxBatchSize > 0 ? [shape[0]!, ...out] : out;
}
