/**
 * Triton's `repeat` utility backend as a built-in JavaScript model (a
 * decoupled model): for each element i of input `IN` (INT32), after
 * `DELAY[i]` milliseconds (UINT32, optional), one response with `OUT` =
 * IN[i] and `IDX` = i; then, after `WAIT` milliseconds (UINT32, optional),
 * the final flag. Requests of a batch are answered concurrently.
 */
import type { ModelRequest, TritiumModel } from "../model-api.js";

const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));

export default class RepeatModel implements TritiumModel {
  async execute(requests: ModelRequest[]): Promise<void> {
    await Promise.all(requests.map((r) => this.repeat(r)));
  }

  private async repeat(r: ModelRequest): Promise<void> {
    const sender = r.sender;
    if (!sender) throw new Error("the repeat backend needs model_transaction_policy { decoupled: true }");
    const values = r.inputs.IN?.data;
    if (!values) throw new Error("input 'IN' is missing");
    const delays = r.inputs.DELAY?.data;
    for (let i = 0; i < values.length; i++) {
      const delay = Number(delays?.[i] ?? 0);
      if (delay > 0) await sleep(delay);
      const wanted = r.requestedOutputs;
      const outputs: Record<string, { shape: number[]; data: number[] }> = {};
      if (wanted.includes("OUT")) outputs.OUT = { shape: [1], data: [Number(values[i])] };
      if (wanted.includes("IDX")) outputs.IDX = { shape: [1], data: [i] };
      sender.send({ outputs });
    }
    const wait = Number(r.inputs.WAIT?.data[0] ?? 0);
    if (wait > 0) await sleep(wait);
    sender.send(undefined, { final: true });
  }
}
