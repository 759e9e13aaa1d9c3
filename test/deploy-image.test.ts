// The image that scripts/build-oci-image.sh builds (the Dockerfile's, without an engine): its
// OCI layout is sound and its root file system, run as the image config says, serves `simple`.
//
// Opt-in (TRITIUM_IMAGE_TEST=1): the first build runs debootstrap (about 85 s here, Debian's
// mirror and the npm registry reached); later builds reuse dist/image/cache (about 25 s).
import { test, before } from "node:test";
import assert from "node:assert/strict";
import { spawn, spawnSync } from "node:child_process";
import { createHash } from "node:crypto";
import { createReadStream, existsSync, readFileSync, readdirSync, statSync } from "node:fs";
import path from "node:path";
import { createGunzip } from "node:zlib";
import { ROOT } from "./helpers.js";

const OUT = path.join(ROOT, "dist", "image");

function skipReason(): string | false {
  if (process.env.TRITIUM_IMAGE_TEST !== "1") {
    return "set TRITIUM_IMAGE_TEST=1 to build the image with debootstrap (about 85 s the first time, 25 s after; needs root, Debian's mirror and the npm registry)";
  }
  if (process.platform !== "linux") return "the image is built and run with Linux tools (debootstrap, unshare, chroot)";
  if (process.getuid?.() !== 0) return "building and entering the root file system needs root";
  for (const tool of ["debootstrap", "unshare", "chroot", "mount"]) {
    if (spawnSync("sh", ["-c", `command -v ${tool}`]).status !== 0) return `${tool} is not installed (apt-get install -y debootstrap)`;
  }
  return false;
}
const skip = skipReason();
if (skip) console.log(`# deploy-image: skipped: ${skip}`);

before(async () => {
  if (skip) return;
  const started = Date.now();
  const build = spawnSync("bash", [path.join(ROOT, "scripts", "build-oci-image.sh"), "--no-build", OUT], {
    encoding: "utf8",
    timeout: 10 * 60_000,
  });
  const report = build.stderr.split("\n").filter((l) => l.startsWith("[build-oci-image]"));
  console.log(report.map((l) => `# ${l}`).join("\n"));
  assert.equal(build.status, 0, `build-oci-image.sh failed:\n${build.stderr.slice(-4000)}`);
  console.log(`# image built in ${((Date.now() - started) / 1000).toFixed(1)} s`);
});

function sha256File(file: string, gunzip = false): Promise<string> {
  return new Promise((resolve, reject) => {
    const hash = createHash("sha256");
    let stream: NodeJS.ReadableStream = createReadStream(file);
    if (gunzip) stream = stream.pipe(createGunzip());
    stream.on("data", (chunk) => hash.update(chunk));
    stream.on("end", () => resolve(hash.digest("hex")));
    stream.on("error", reject);
  });
}

interface Descriptor { mediaType: string; digest: string; size: number; annotations?: Record<string, string> }
interface ImageConfig {
  architecture: string;
  os: string;
  config: { User: string; Env: string[]; Entrypoint: string[]; Cmd: string[]; ExposedPorts: Record<string, object>; WorkingDir: string };
  rootfs: { type: string; diff_ids: string[] };
}

const OCI = path.join(OUT, "oci");
const blobPath = (digest: string) => path.join(OCI, "blobs", ...digest.split(":"));
const readJson = (file: string) => JSON.parse(readFileSync(file, "utf8"));

function imageConfig(): ImageConfig {
  const index = readJson(path.join(OCI, "index.json"));
  const manifest = readJson(blobPath(index.manifests[0].digest));
  return readJson(blobPath(manifest.config.digest));
}

test("the OCI layout's blobs match their digests and sizes, and the layer unpacks to the root file system's diff_id", { skip }, async () => {
  assert.deepEqual(readJson(path.join(OCI, "oci-layout")), { imageLayoutVersion: "1.0.0" });
  const index = readJson(path.join(OCI, "index.json"));
  assert.equal(index.manifests.length, 1);
  assert.equal(index.manifests[0].annotations["org.opencontainers.image.ref.name"], "tritium:latest");
  const check = async (d: Descriptor) => {
    const file = blobPath(d.digest);
    assert.equal(statSync(file).size, d.size, `${d.digest} size`);
    assert.equal(`sha256:${await sha256File(file)}`, d.digest, `${d.digest} content`);
  };
  await check(index.manifests[0]);
  const manifest = readJson(blobPath(index.manifests[0].digest));
  assert.equal(manifest.mediaType, "application/vnd.oci.image.manifest.v1+json");
  await check(manifest.config);
  assert.equal(manifest.layers.length, 1);
  await check(manifest.layers[0]);
  const config = imageConfig();
  assert.deepEqual(config.rootfs.diff_ids, [`sha256:${await sha256File(blobPath(manifest.layers[0].digest), true)}`]);
  // Nothing in blobs/ that no descriptor names.
  assert.deepEqual(readdirSync(path.join(OCI, "blobs", "sha256")).sort(),
    [index.manifests[0].digest, manifest.config.digest, manifest.layers[0].digest].map((d: string) => d.slice(7)).sort());
});

test("the image config runs the tritium CLI under tini as a non-root user, with the allocator settings and Triton's ports", { skip }, () => {
  const { config, os } = imageConfig();
  assert.equal(os, "linux");
  assert.deepEqual(config.Entrypoint, ["/usr/bin/tini", "--", "node", "/opt/tritium/dist/src/cli/main.js"]);
  assert.deepEqual(config.Cmd, ["--model-repository=/models"]);
  assert.equal(config.User, "10001:10001");
  assert.ok(config.Env.includes("MALLOC_ARENA_MAX=2"), config.Env.join(" "));
  assert.deepEqual(Object.keys(config.ExposedPorts).sort(), ["8000/tcp", "8001/tcp", "8002/tcp"]);
});

/** Host pids of the processes whose parent is `pid`. */
function children(pid: number): number[] {
  const file = `/proc/${pid}/task/${pid}/children`;
  return existsSync(file) ? readFileSync(file, "utf8").trim().split(/\s+/).filter(Boolean).map(Number) : [];
}

test("the image's root file system, run as its config says, serves simple in one node process and exits 0 on SIGTERM to PID 1", { skip, timeout: 90_000 }, async () => {
  const rootfs = path.join(OUT, "rootfs");
  const { config } = imageConfig();
  const [uid, gid] = config.User.split(":");
  // Ports 0 because the root file system shares this machine's network; the rest is the image's.
  const command = [...config.Entrypoint, ...config.Cmd, "--http-port=0", "--grpc-port=0", "--metrics-port=0"];
  // A new pid namespace makes tini PID 1, as under a container engine; the mounts go with it.
  const inner = `mount -t proc proc "$R/proc" && mount --rbind /dev "$R/dev" && cd "$R" && exec chroot --userspec=${uid}:${gid} "$R" "$@"`;
  const child = spawn("unshare", ["--fork", "--pid", "--mount", "--propagation", "private", "--kill-child=SIGKILL", "sh", "-c", inner, "sh", ...command], {
    env: { R: rootfs, ...Object.fromEntries(config.Env.map((e) => [e.slice(0, e.indexOf("=")), e.slice(e.indexOf("=") + 1)])) },
    stdio: ["ignore", "pipe", "pipe"],
  });
  let output = "";
  child.stdout!.on("data", (c: Buffer) => (output += c));
  child.stderr!.on("data", (c: Buffer) => (output += c));
  const exited = new Promise<number | null>((resolve) => child.once("exit", (code) => resolve(code)));
  try {
    const deadline = Date.now() + 30_000;
    let port = 0;
    while (!port) {
      assert.ok(Date.now() < deadline && child.exitCode === null, `no HTTP service within 30 s:\n${output}`);
      port = Number(/Started HTTPService at [^\s"]+:(\d+)/.exec(output)?.[1] ?? 0);
      if (!port) await new Promise((r) => setTimeout(r, 100));
    }
    const ready = await fetch(`http://127.0.0.1:${port}/v2/health/ready`);
    assert.equal(ready.status, 200);

    const res = await fetch(`http://127.0.0.1:${port}/v2/models/simple/infer`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({
        inputs: [
          { name: "INPUT0", shape: [1, 16], datatype: "INT32", data: Array.from({ length: 16 }, (_, i) => i + 1) },
          { name: "INPUT1", shape: [1, 16], datatype: "INT32", data: Array(16).fill(3) },
        ],
      }),
    });
    const body = (await res.json()) as { outputs: { name: string; data: number[] }[] };
    assert.equal(res.status, 200, JSON.stringify(body));
    const out = Object.fromEntries(body.outputs.map((o) => [o.name, o.data]));
    assert.deepEqual(out.OUTPUT0, Array.from({ length: 16 }, (_, i) => i + 4));
    assert.deepEqual(out.OUTPUT1, Array.from({ length: 16 }, (_, i) => i - 2));

    // unshare's child is PID 1 inside: tini, whose one child is the server itself — the ENV
    // allocator settings keep the launcher from relaunching a second node process.
    const [pid1] = children(child.pid!);
    assert.equal(readFileSync(`/proc/${pid1}/comm`, "utf8").trim(), "tini");
    const servers = children(pid1);
    assert.equal(servers.length, 1);
    assert.equal(readFileSync(`/proc/${servers[0]}/comm`, "utf8").trim(), "node");
    assert.deepEqual(children(servers[0]).filter((p) => readFileSync(`/proc/${p}/comm`, "utf8").trim() === "node"), []);
    assert.equal(readFileSync(`/proc/${servers[0]}/status`, "utf8").match(/^Uid:\s+(\d+)/m)?.[1], uid);

    process.kill(pid1, "SIGTERM");
    const code = await Promise.race([exited, new Promise((r) => setTimeout(() => r("timeout"), 20_000))]);
    assert.equal(code, 0, `exit after SIGTERM to PID 1:\n${output}`);
    assert.match(output, /Received SIGTERM, stopping: draining in-flight requests/);
    assert.match(output, /Server stopped/);
  } finally {
    if (child.exitCode === null) child.kill("SIGKILL");
    await exited;
  }
});
