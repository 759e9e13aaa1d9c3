/**
 * Loaded into a benchmarked Tritium with `node --import`, so a benchmark can
 * read the server's V8 heap without the server carrying benchmark code:
 * answers each "memory" message on the IPC channel with process.memoryUsage()
 * taken right after a full garbage collection, so the heap figure is what is
 * still reachable, not how much garbage the last collection left.
 */
import v8 from "node:v8";
import vm from "node:vm";

if (process.send) {
  v8.setFlagsFromString("--expose-gc");
  const gc = vm.runInNewContext("gc") as () => void;
  process.on("message", (m) => {
    if (m !== "memory") return;
    gc();
    process.send!(process.memoryUsage());
  });
  // The channel must not keep a stopping server alive.
  process.channel?.unref();
}
