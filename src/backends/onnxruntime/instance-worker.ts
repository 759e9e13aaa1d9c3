/**
 * An ONNX Runtime model instance's worker thread: a {@link SessionHost}
 * wired to the main thread's messages. The session runs here, never on the
 * main thread.
 */
import { parentPort, workerData } from "node:worker_threads";
import type { ToWorker, WorkerInit } from "./protocol.js";
import { SessionHost } from "./session-host.js";

if (!parentPort) throw new Error("instance-worker.js must run in a worker thread");
const port = parentPort;

const host = new SessionHost(workerData as WorkerInit, (msg, transfer) => {
  port.postMessage(msg, transfer);
  if (msg.type === "closed") port.close();
});
port.on("message", (msg: ToWorker) => host.receive(msg));
