/**
 * The answer to an inference request, the same object whichever protocol
 * carried it (the role of tritonclient's `InferResult`).
 */
import { InferenceServerError } from "./errors.js";
import { bytesToStrings } from "./tensors.js";
import type { OutputData, Parameters } from "./types.js";

/** One output tensor of a response. */
export interface InferOutput {
  /** The output's name. */
  name: string;
  /** Its datatype. */
  datatype: string;
  /** Its full shape. */
  shape: number[];
  /** Its elements; empty for an output written to shared memory. */
  data: OutputData;
  /** Its parameters (e.g. `shared_memory_region` for one written to shared memory). */
  parameters?: Parameters;
}

/** The answer to one inference request. */
export class InferResult {
  /**
   * @param modelName - the model that answered
   * @param modelVersion - its version
   * @param outputs - the output tensors, in the server's order
   * @param id - the request's id, when it had one
   * @param parameters - response parameters (e.g. `triton_final_response` in a stream)
   */
  constructor(
    readonly modelName: string,
    readonly modelVersion: string,
    readonly outputs: InferOutput[],
    readonly id?: string,
    readonly parameters?: Parameters,
  ) {}

  /** The output called `name`, or undefined when the response has none. */
  output(name: string): InferOutput | undefined {
    return this.outputs.find((o) => o.name === name);
  }

  /**
   * The elements of output `name` (the role of tritonclient's `as_numpy`):
   * an Int32Array for INT32, a Float32Array for FP32, one Uint8Array per
   * element for BYTES, and so on.
   *
   * @throws InferenceServerError (`"NOT_FOUND"`) when the response has no such output
   */
  asArray(name: string): OutputData {
    const out = this.output(name);
    if (!out) throw new InferenceServerError("NOT_FOUND", `the response has no output '${name}'`);
    return out.data;
  }

  /**
   * The elements of a BYTES output as UTF-8 text (a classification output's
   * `"score:index:label"` strings, for one).
   *
   * @throws InferenceServerError when the output is missing or not BYTES
   */
  asStrings(name: string): string[] {
    const out = this.output(name);
    if (!out) throw new InferenceServerError("NOT_FOUND", `the response has no output '${name}'`);
    if (out.datatype !== "BYTES") throw new InferenceServerError("INVALID_ARGUMENT", `output '${name}' is ${out.datatype}, not BYTES`);
    return bytesToStrings(out.data as Uint8Array[]);
  }

  /** True for the last response of a decoupled request (`triton_final_response`). */
  get isFinal(): boolean {
    return this.parameters?.triton_final_response === true;
  }
}
