/**
 * An ONNX Runtime model instance's worker thread: a {@link SessionHost}
 * wired to the main thread's messages. The session runs here, never on the
 * main thread.
 */
import { parentPort, workerData } from "node:worker_threads";
import { WorkerEnd } from "../worker-channel/channel.js";
import type { FromWorker, ToWorker, WorkerInit } from "./protocol.js";
import { SessionHost } from "./session-host.js";

if (!parentPort) throw new Error("instance-worker.js must run in a worker thread");
const port = parentPort;
const init = workerData as WorkerInit;

const host = new SessionHost(init, (msg, transfer) => {
  channel.send(msg, transfer);
  if (msg.type === "closed") port.close();
});
const channel: WorkerEnd<ToWorker, FromWorker> = new WorkerEnd(port, init.channel!, (msg) => host.receive(msg));
