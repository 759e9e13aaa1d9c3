/**
 * The hand-off alone (issue 10): a batch of one `simple`-sized request (two
 * INT32 [1,16] inputs) sent to a worker thread and its two outputs sent
 * back, with no model in between, through
 *   - postMessage: the message objects cloned, the input buffer transferred
 *     (what instances used before the worker channel);
 *   - the worker channel (src/backends/worker-channel): records in two
 *     shared-memory rings, Atomics.waitAsync on both sides.
 * Depth 1 is one call at a time (the latency case: every message wakes a
 * sleeping thread); depth 8 keeps 8 calls in flight (the pipelined case).
 * CPU is the whole process's (both threads) per round trip.
 *
 *   npm run build && node dist/bench/hand-off-bench.js [--calls=100000]
 */
import path from "node:path";
import { fileURLToPath, pathToFileURL } from "node:url";
import { Worker } from "node:worker_threads";
import { MainEnd, packRequests, type ResultMessage } from "../src/backends/worker-channel/channel.js";
import type { BatchRequest } from "../src/core/requests/inference.js";
import { option, positiveNumber } from "./harness.js";

const CALLS = positiveNumber(option("calls"), 100_000, "--calls");
const CHANNEL_URL = pathToFileURL(path.join(path.dirname(fileURLToPath(import.meta.url)), "..", "src", "backends", "worker-channel", "channel.js")).href;

/** The worker: answers each batch with two 64-byte outputs, by the same path the batch came. */
const WORKER = `
  const { parentPort, workerData } = require("node:worker_threads");
  const outputs = () => [
    { name: "OUTPUT0", datatype: "INT32", shape: [1, 16], data: new Uint8Array(64) },
    { name: "OUTPUT1", datatype: "INT32", shape: [1, 16], data: new Uint8Array(64) },
  ];
  const timings = { computeInputNs: 0, computeInferNs: 0, computeOutputNs: 0 };
  if (workerData.mode === "postMessage") {
    parentPort.on("message", (msg) => {
      // As ONNX Runtime's run: the answer comes from an immediate.
      setImmediate(() => {
        const outs = outputs();
        parentPort.postMessage({ type: "result", id: msg.id, results: [{ outputs: outs }], timings }, outs.map((t) => t.data.buffer));
      });
    });
  } else {
    import(workerData.channelUrl).then(({ WorkerEnd }) => {
      const end = new WorkerEnd(parentPort, workerData.channel, (msg) => new Promise((resolve) => setImmediate(() => {
        end.send({ type: "result", id: msg.id, results: [{ outputs: outputs() }], timings });
        resolve();
      })));
    });
  }
`;

const request = (): BatchRequest[] => [{
  inputs: [
    { name: "INPUT0", datatype: "INT32", shape: [1, 16], data: new Uint8Array(64) },
    { name: "INPUT1", datatype: "INT32", shape: [1, 16], data: new Uint8Array(64) },
  ],
  outputNames: ["OUTPUT0", "OUTPUT1"],
}];

async function measure(mode: "postMessage" | "channel", depth: number): Promise<{ cpuUs: number; perSecond: number }> {
  let received = 0;
  let sent = 0;
  let done: () => void = () => {};
  const finished = new Promise<void>((r) => (done = r));
  let send: () => void;
  let worker: Worker;
  const onResult = () => {
    if (++received === CALLS) done();
    else if (sent < CALLS) send();
  };
  if (mode === "postMessage") {
    worker = new Worker(WORKER, { eval: true, workerData: { mode } });
    worker.on("message", onResult);
    send = () => {
      const { requests, buffer } = packRequests(request());
      worker.postMessage({ type: "execute", id: sent++, requests }, [buffer]);
    };
  } else {
    const main = new MainEnd<{ type: "execute"; id: number; requests: BatchRequest[] }, ResultMessage>(onResult);
    worker = new Worker(WORKER, { eval: true, workerData: { mode, channel: main.memory, channelUrl: CHANNEL_URL } });
    main.connect(worker);
    send = () => main.send({ type: "execute", id: sent++, requests: request() });
    worker.once("exit", () => main.close());
  }
  await new Promise((r) => setTimeout(r, 200)); // the worker starts
  const cpu0 = process.cpuUsage();
  const t0 = performance.now();
  for (let i = 0; i < depth; i++) send();
  await finished;
  const wall = performance.now() - t0;
  const cpu = process.cpuUsage(cpu0);
  await worker.terminate();
  return { cpuUs: (cpu.user + cpu.system) / CALLS, perSecond: (CALLS / wall) * 1000 };
}

const rows: string[] = [];
for (const depth of [1, 8]) {
  for (const mode of ["postMessage", "channel"] as const) {
    const best = [await measure(mode, depth), await measure(mode, depth)].sort((a, b) => a.cpuUs - b.cpuUs)[0]!;
    rows.push(`| ${depth} | ${mode === "channel" ? "worker channel (shared-memory rings)" : "postMessage (clone + transfer)"} | ${Math.round(best.perSecond)} | ${best.cpuUs.toFixed(1)} |`);
  }
}
process.stdout.write(`${CALLS} round trips per cell, best of two runs (by CPU).\n\n| Depth | Hand-off | Round trips/s | CPU µs per round trip (both threads) |\n|--:|---|--:|--:|\n${rows.join("\n")}\n`);
