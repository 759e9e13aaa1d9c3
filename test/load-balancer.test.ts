/**
 * Two Tritium replicas behind a real load balancer (Debian's HAProxy, started
 * here on loopback): stateless traffic spreads over both with no failure, and
 * a replica drained by SIGTERM under load loses no request. HAProxy drops a
 * replica once its /v2/health/ready stops answering 200 and retries a request
 * that a closing replica never read, which is what docs/deployment.md asks of
 * any balancer in front of Tritium. Skipped, with the reason, without haproxy.
 */
import assert from "node:assert/strict";
import { spawn, spawnSync, type ChildProcess } from "node:child_process";
import fs from "node:fs/promises";
import net from "node:net";
import os from "node:os";
import path from "node:path";
import { after, before, describe, it } from "node:test";
import { EXAMPLES, getJson, postJson, startCli, type CliServer } from "./helpers.js";

const haproxy = spawnSync("haproxy", ["-v"]).status === 0 ? "haproxy" : undefined;
const SKIP = haproxy ? false : "no haproxy here (Debian: apt-get install haproxy); CI installs it";

const body = (k: number) => ({
  inputs: [
    { name: "INPUT0", datatype: "INT32", shape: [1, 16], data: new Array(16).fill(k) },
    { name: "INPUT1", datatype: "INT32", shape: [1, 16], data: new Array(16).fill(1) },
  ],
});

async function freePort(): Promise<number> {
  const srv = net.createServer();
  await new Promise<void>((r) => srv.listen(0, "127.0.0.1", r));
  const port = (srv.address() as net.AddressInfo).port;
  await new Promise((r) => srv.close(r));
  return port;
}

const inferCount = async (replica: CliServer) =>
  ((await getJson(`${replica.url}/v2/models/simple/stats`)).json.model_stats[0].inference_count as number);

describe("replicas behind HAProxy", { skip: SKIP, timeout: 90_000 }, () => {
  let dir: string;
  let replicas: CliServer[] = [];
  let balancer: ChildProcess | undefined;
  let url: string;

  before(async () => {
    dir = await fs.mkdtemp(path.join(os.tmpdir(), "tritium-haproxy-"));
    const args = ["--model-repository", EXAMPLES, "--model-control-mode=explicit", "--load-model=simple", "--http-address", "127.0.0.1", "--http-port", "0", "--allow-grpc=false", "--allow-metrics=false", "--exit-timeout-secs", "10"];
    replicas = await Promise.all([startCli(args), startCli(args)]);
    const port = await freePort();
    url = `http://127.0.0.1:${port}`;
    const config = `global
  maxconn 512
defaults
  mode http
  timeout connect 2s
  timeout client 30s
  timeout server 30s
  retries 3
  option redispatch
  retry-on all-retryable-errors
frontend tritium
  bind 127.0.0.1:${port}
  option http-buffer-request
  default_backend replicas
backend replicas
  balance roundrobin
  option httpchk GET /v2/health/ready
  default-server inter 200ms fall 1 rise 2
${replicas.map((r, i) => `  server replica${i} 127.0.0.1:${r.port} check`).join("\n")}
`;
    await fs.writeFile(path.join(dir, "haproxy.cfg"), config);
    balancer = spawn(haproxy!, ["-db", "-f", path.join(dir, "haproxy.cfg")], { stdio: ["ignore", "pipe", "pipe"] });
    // Ready once a request passes through.
    for (let i = 0; i < 100; i++) {
      const ok = await fetch(`${url}/v2/health/ready`).then((r) => r.status === 200, () => false);
      if (ok) break;
      await new Promise((r) => setTimeout(r, 100));
    }
  });
  after(async () => {
    balancer?.kill("SIGKILL");
    for (const r of replicas) if (r.child.exitCode === null && r.child.signalCode === null) r.child.kill("SIGKILL");
    await fs.rm(dir, { recursive: true, force: true });
  });

  it("spreads stateless requests over both replicas with no failure", async () => {
    const before = await Promise.all(replicas.map(inferCount));
    const answers = await Promise.all(Array.from({ length: 200 }, (_, k) => postJson(`${url}/v2/models/simple/infer`, body(k))));
    for (const [k, r] of answers.entries()) {
      assert.equal(r.status, 200, `request ${k}: ${JSON.stringify(r.json)}`);
      assert.deepEqual(r.json.outputs[0].data, new Array(16).fill(k + 1));
    }
    const served = (await Promise.all(replicas.map(inferCount))).map((n, i) => n - before[i]!);
    assert.equal(served[0]! + served[1]!, 200);
    assert.ok(served.every((n) => n >= 50), `each replica served a share: ${served.join(" / ")}`);
  });

  it("loses no request while one replica drains on SIGTERM", async () => {
    let running = true;
    let sent = 0;
    const failures: string[] = [];
    const clients = Array.from({ length: 4 }, async (_, c) => {
      while (running) {
        const k = sent++;
        const r = await postJson(`${url}/v2/models/simple/infer`, body(k)).catch((e: Error) => ({ status: 0, json: { error: e.message } }));
        if (r.status !== 200 || r.json.outputs?.[0]?.data?.[0] !== k + 1) failures.push(`client ${c} request ${k}: ${r.status} ${JSON.stringify(r.json)}`);
      }
    });
    await new Promise((r) => setTimeout(r, 500));
    replicas[0]!.child.kill("SIGTERM");
    const code = await replicas[0]!.exited;
    await new Promise((r) => setTimeout(r, 500));
    running = false;
    await Promise.all(clients);
    assert.equal(code, 0, replicas[0]!.output());
    assert.deepEqual(failures, [], `${failures.length} of ${sent} requests failed`);
    assert.ok(sent > 100, `only ${sent} requests were sent`);
  });
});
