/**
 * Triton's `square` utility backend as a built-in JavaScript model (a
 * decoupled model): for input `IN` = n (INT32), n responses, each with output
 * `OUT` = n, then the final flag; none for n = 0.
 */
import type { ModelRequest, TritiumModel } from "../model-api.js";

export default class SquareModel implements TritiumModel {
  execute(requests: ModelRequest[]): void {
    for (const r of requests) {
      if (!r.sender) throw new Error("the square backend needs model_transaction_policy { decoupled: true }");
      const input = r.inputs.IN;
      if (!input) throw new Error("input 'IN' is missing");
      const n = Number(input.data[0]);
      for (let i = 0; i < n; i++) r.sender.send({ outputs: { OUT: { datatype: input.datatype, shape: input.shape, data: [n] } } });
      r.sender.send(undefined, { final: true });
    }
  }
}
