/**
 * Decoupled js models the streaming tests share, as [config.pbtxt, model.js]:
 * `countdown` answers N = n with OUT = n, n-1, ..., 1 (`delayMs` apart),
 * then the final flag alone, and N = -1 with one response, then a throw;
 * `words` answers with one response per word of its
 * `text_input`, then an empty final response; `ticker` sends a tick every
 * 20 ms, up to 100, stops early once its client has gone, and writes how
 * many it sent to the file its input names.
 */
export const WORDS_MODEL: [config: string, code: string] = [`
name: "words"
backend: "js"
max_batch_size: 0
model_transaction_policy { decoupled: true }
input [ { name: "text_input" data_type: TYPE_STRING dims: [ 1 ] } ]
output [ { name: "text_output" data_type: TYPE_STRING dims: [ 1 ] } ]`, `
export default {
  execute(requests) {
    for (const r of requests) {
      for (const w of r.inputs.text_input.data[0].split(" ")) r.sender.send({ outputs: { text_output: { shape: [1], data: [w] } } });
      r.sender.send(undefined, { final: true });
    }
  },
};`];

export const TICKER_MODEL: [config: string, code: string] = [`
name: "ticker"
backend: "js"
max_batch_size: 0
model_transaction_policy { decoupled: true }
input [ { name: "text_input" data_type: TYPE_STRING dims: [ 1 ] } ]
output [ { name: "text_output" data_type: TYPE_STRING dims: [ 1 ] } ]`, `
import { writeFileSync } from "node:fs";
export default {
  async execute(requests) {
    for (const r of requests) {
      let sent = 0;
      while (sent < 100 && !r.isCancelled()) {
        r.sender.send({ outputs: { text_output: { shape: [1], data: ["tick " + sent] } } });
        sent++;
        await new Promise((res) => setTimeout(res, 20));
      }
      writeFileSync(r.inputs.text_input.data[0], String(sent));
      r.sender.send(undefined, { final: true });
    }
  },
};`];

export function countdownModel(delayMs: number): [config: string, code: string] {
  return [`
name: "countdown"
backend: "js"
max_batch_size: 0
model_transaction_policy { decoupled: true }
input [ { name: "N" data_type: TYPE_INT32 dims: [ 1 ] } ]
output [ { name: "OUT" data_type: TYPE_INT32 dims: [ 1 ] } ]
`, `
export default {
  async execute(requests) {
    await Promise.all(requests.map(async (r) => {
      const n = r.inputs.N.data[0];
      if (n === -1) {
        r.sender.send({ outputs: { OUT: { shape: [1], data: [42] } } });
        throw new Error("broke after one response");
      }
      for (let i = n; i > 0; i--) {
        await new Promise((res) => setTimeout(res, ${delayMs}));
        r.sender.send({ outputs: { OUT: { shape: [1], data: [i] } } });
      }
      r.sender.send(undefined, { final: true });
    }));
  },
};
`];
}
