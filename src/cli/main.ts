#!/usr/bin/env node
/**
 * `tritium`: tritonserver's command line over Tritium.
 *
 * On Linux the server runs with glibc's malloc tuned (allocator-env.ts): with
 * its defaults, tensors of hundreds of KiB allocated in one thread and freed
 * in another scatter over per-thread arenas, and the server's memory creeps
 * up with requests though nothing leaks (docs/reliability.md). glibc reads
 * the setting only at start-up, so when it is not already in the environment
 * this process starts the server as a child with it, forwards its signals,
 * and exits as it does. Set it yourself (a container's ENV) to run in one
 * process.
 */
import { spawn } from "node:child_process";
import { ALLOCATOR_ENV } from "./allocator-env.js";

const tuned = Object.keys(ALLOCATOR_ENV).every((k) => process.env[k] !== undefined);
if (process.platform !== "linux" || tuned) {
  await import("./serve.js");
} else {
  const env: NodeJS.ProcessEnv = { ...process.env, ...ALLOCATOR_ENV, TRITIUM_LAUNCHER_PID: String(process.pid) };
  // An IPC channel given to this process is not the server's.
  delete env.NODE_CHANNEL_FD;
  delete env.NODE_CHANNEL_SERIALIZATION_MODE;
  const child = spawn(process.execPath, [...process.execArgv, ...process.argv.slice(1)], { stdio: "inherit", env });
  // Ctrl-C reaches the server from the terminal itself (same process group): forwarding SIGINT
  // would be its second and skip the drain. Signals sent to this process alone are passed on.
  const forward = (signal: NodeJS.Signals) => () => {
    if (signal !== "SIGINT") child.kill(signal);
  };
  const signals: NodeJS.Signals[] = ["SIGINT", "SIGTERM", "SIGHUP", "SIGQUIT"];
  const handlers = signals.map((s) => [s, forward(s)] as const);
  for (const [s, h] of handlers) process.on(s, h);
  child.on("exit", (code, signal) => {
    for (const [s, h] of handlers) process.off(s, h);
    // Ended by a signal: end the same way, so whoever waits on this process sees it.
    if (signal) process.kill(process.pid, signal);
    else process.exit(code ?? 1);
  });
}
