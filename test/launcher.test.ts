/**
 * The `tritium` launcher (src/cli/main.ts): on Linux it runs the server with
 * glibc's malloc settings of allocator-env.ts, passing SIGTERM on (the drain
 * is the server's) and taking the server down if it is killed outright.
 */
import assert from "node:assert/strict";
import fs from "node:fs";
import { describe, it } from "node:test";
import { EXAMPLES, startCli } from "./helpers.js";

const childOf = (pid: number): number => Number(fs.readFileSync(`/proc/${pid}/task/${pid}/children`, "utf8").trim().split(" ")[0]);
const alive = (pid: number) => {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
};

describe("tritium launcher", { skip: process.platform !== "linux" && "Linux only", timeout: 60_000 }, () => {
  const args = ["--model-repository", EXAMPLES, "--model-control-mode=explicit", "--load-model=simple", "--http-port", "0", "--allow-grpc=false", "--allow-metrics=false"];

  it("runs the server with the malloc settings and drains it on SIGTERM, exiting 0", async () => {
    const cli = await startCli(args);
    const server = childOf(cli.child.pid!);
    const env = fs.readFileSync(`/proc/${server}/environ`, "utf8").split("\0");
    assert.ok(env.includes("MALLOC_ARENA_MAX=2"), env.filter((e) => e.startsWith("MALLOC")).join(" "));
    assert.equal((await fetch(`${cli.url}/v2/health/ready`)).status, 200);
    assert.equal(await cli.stop(), 0);
    assert.match(cli.output(), /Received SIGTERM, stopping/);
    assert.equal(alive(server), false);
  });

  it("takes the server down when it is killed outright", async () => {
    const cli = await startCli(args);
    const server = childOf(cli.child.pid!);
    cli.child.kill("SIGKILL");
    await cli.exited;
    for (let i = 0; i < 100 && alive(server); i++) await new Promise((r) => setTimeout(r, 100));
    assert.equal(alive(server), false, "the server outlived its launcher by 10 s");
  });
});
