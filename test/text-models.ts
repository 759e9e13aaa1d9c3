/**
 * Small text models the streaming tests share, as [config.pbtxt, model.js]:
 * `words` is decoupled and answers with one response per word of its
 * `text_input`, then an empty final response.
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
