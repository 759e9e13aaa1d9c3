/**
 * tritium-perf (the client package's bin, through npm's link) against a
 * real Tritium: concurrency and request-rate sweeps over HTTP and gRPC, the
 * table on stdout, perf_analyzer's CSV, input shapes and data files, and
 * its errors.
 */
import assert from "node:assert/strict";
import fs from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { after, before, describe, it } from "node:test";
import { EXAMPLES, ROOT, startGrpcServer, tempRepository, type GrpcTestServer, runNode } from "./helpers.js";

const PERF = path.join(ROOT, "node_modules", ".bin", "tritium-perf");
const HEADER = "Concurrency,Inferences/Second,Client Send,Network+Server Send/Recv,Server Queue,Server Compute Input,Server Compute Infer,Server Compute Output,Client Recv,p50 latency,p90 latency,p95 latency,p99 latency";

let repo: string;
let tmp: string;
let server: GrpcTestServer;

before(async () => {
  repo = await tempRepository({ simple: path.join(EXAMPLES, "simple"), identity_fp32: path.join(EXAMPLES, "identity_fp32") });
  tmp = await fs.mkdtemp(path.join(os.tmpdir(), "tritium-perf-"));
  server = await startGrpcServer({ modelRepository: repo });
});

after(async () => {
  await server?.close();
  await fs.rm(repo, { recursive: true, force: true });
  await fs.rm(tmp, { recursive: true, force: true });
});

/** Runs tritium-perf to its end. */
const perf = (args: string[]) => runNode(PERF, args);

/** The table's data rows: the lines after the dashed rule, split on runs of spaces. */
function tableRows(stdout: string): string[][] {
  const lines = stdout.trimEnd().split("\n");
  const rule = lines.findIndex((l) => /^-+( +-+)+$/.test(l));
  assert.ok(rule > 0, `no table in:\n${stdout}`);
  return lines.slice(rule + 1).filter((l) => !l.startsWith("*")).map((l) => l.replace(" *", "").trim().split(/ +/));
}

/** Checks a CSV row's arithmetic: numbers, positive throughput, ordered percentiles. */
function assertSaneRow(cells: string[], load: number): void {
  assert.equal(cells.length, 13);
  const v = cells.map(Number);
  assert.ok(v.every((x) => Number.isFinite(x) && x >= 0), cells.join(","));
  assert.equal(v[0], load);
  assert.ok(v[1]! > 0, "throughput");
  assert.ok(v[6]! > 0, "the server reported compute time");
  const [p50, p90, p95, p99] = v.slice(9);
  assert.ok(p50! > 0 && p50! <= p90! && p90! <= p95! && p95! <= p99!, cells.join(","));
}

describe("tritium-perf", () => {
  it("sweeps concurrency over HTTP: progress on stderr, a table on stdout, perf_analyzer's CSV", async () => {
    const csvFile = path.join(tmp, "http.csv");
    const r = await perf(["-m", "simple", "-u", server.url, "--concurrency-range", "1:2", "-p", "300", "-r", "4", "-f", csvFile]);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stderr, /Request concurrency: 1\n {2}Pass \[1\] throughput: [\d.]+ infer\/sec\. Avg latency: \d+ usec/);
    assert.match(r.stderr, /Request concurrency: 2\n/);
    assert.match(r.stdout, /^Concurrency +Inferences\/Second +Client Send +Network\+Server +Server Queue/);
    const rows = tableRows(r.stdout);
    assert.deepEqual(rows.map((cells) => cells[0]), ["1", "2"]);
    for (const cells of rows) assertSaneRow(cells, Number(cells[0]));

    const lines = (await fs.readFile(csvFile, "utf8")).trimEnd().split("\n");
    assert.equal(lines[0], HEADER);
    assert.equal(lines.length, 3);
    const csvRows = lines.slice(1).map((l) => l.split(","));
    assert.deepEqual(csvRows.map((c) => c[0]).sort(), ["1", "2"]);
    for (const cells of csvRows) assertSaneRow(cells, Number(cells[0]));
    // perf_analyzer's order: rows by increasing throughput.
    assert.ok(Number(csvRows[0]![1]) <= Number(csvRows[1]![1]));
    // The table and the CSV are the same measurements.
    for (const cells of csvRows) assert.deepEqual(rows.find((t) => t[0] === cells[0]), cells);
  });

  it("sweeps request rates over gRPC with a batch of 2, the CSV's first column named Request Rate", async () => {
    const csvFile = path.join(tmp, "grpc.csv");
    const r = await perf(["-m", "simple", "-i", "grpc", "-u", server.grpcAddress, "-b", "2", "--request-rate-range", "50:100:50", "-p", "300", "-r", "3", "-f", csvFile]);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stderr, /Request Rate: 50 inference requests per seconds/);
    const lines = (await fs.readFile(csvFile, "utf8")).trimEnd().split("\n");
    assert.equal(lines[0], HEADER.replace("Concurrency", "Request Rate"));
    assert.deepEqual(lines.slice(1).map((l) => l.split(",")[0]).sort(), ["100", "50"]);
    for (const l of lines.slice(1)) assertSaneRow(l.split(","), Number(l.split(",")[0]));
  });

  it("needs --shape for a variable dimension, and sends data from a perf_analyzer JSON file", async () => {
    const missing = await perf(["-m", "identity_fp32", "-u", server.url, "-p", "200", "-r", "3"]);
    assert.equal(missing.code, 1);
    assert.match(missing.stderr, /input 'INPUT0' has a variable dimension .*--shape INPUT0:<dims>/);

    const shaped = await perf(["-m", "identity_fp32", "-u", server.url, "--shape", "INPUT0:4", "--input-data", "zero", "-p", "200", "-r", "3"]);
    assert.equal(shaped.code, 0, shaped.stderr);

    const data = path.join(tmp, "data.json");
    await fs.writeFile(data, JSON.stringify({ data: [{ INPUT0: [1, 2, 3] }, { INPUT0: { content: [4, 5], shape: [2] } }] }));
    const fromFile = await perf(["-m", "identity_fp32", "-u", server.url, "--input-data", data, "-p", "200", "-r", "3"]);
    assert.equal(fromFile.code, 0, fromFile.stderr);
    assert.equal(tableRows(fromFile.stdout).length, 1);
  });

  it("stops with the server's message for an unknown model, and with usage for a missing -m", async () => {
    const unknown = await perf(["-m", "nope", "-u", server.url, "-p", "200"]);
    assert.equal(unknown.code, 1);
    assert.match(unknown.stderr, /error: the server answered 400: Request for unknown model: 'nope' is not found/);
    const usage = await perf(["-u", server.url]);
    assert.equal(usage.code, 2);
    assert.match(usage.stderr, /-m <model> is required[\s\S]*Usage: tritium-perf/);
  });
});
