// In-process use of Tritium: a server over a model repository, no sockets.
// Run after `npm run build`:  node examples/in-process.mjs
import { fileURLToPath } from "node:url";
import { createServer, makeTensor, tensorValues } from "../dist/src/index.js";

const repo = fileURLToPath(new URL("./model_repository", import.meta.url));
const server = await createServer({ modelRepository: repo, quiet: true });
const res = await server.infer({
  model_name: "simple",
  inputs: [
    makeTensor("INPUT0", "INT32", [1, 16], new Int32Array(16).fill(2)),
    makeTensor("INPUT1", "INT32", [1, 16], new Int32Array(16).fill(1)),
  ],
});
console.log(res.outputs.map((t) => `${t.name} ${t.datatype} [${t.shape}] ${Array.from(tensorValues(t)).join(",")}`).join("\n"));
await server.stop();
