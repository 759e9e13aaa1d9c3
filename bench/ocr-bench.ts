/**
 * The OCR pipeline (examples/ocr_repository) served by Tritium against the
 * same pipeline hand-rolled in one `node:http` route (the example's own
 * model class, `session.run` on the main thread), at concurrency 1 and 4:
 * req/s, p50/p99, server CPU per request and memory. Both get the same
 * body (examples/ocr-sample.png as base64 JSON) and every answer's boxes
 * and scores are checked against Tritium's first answer.
 *
 *   npm run bench:ocr [-- --write]
 * Environment: BENCH_SECONDS (measured seconds per cell, default 5), BENCH_WARMUP_SECONDS (default 2).
 */
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { decodeResponse, type DecodedOutput } from "./payload.js";
import {
  ROOT, cellProblems, costText, environment, environmentLines, httpCall, memoryText, ms, positiveNumber, problemLines, ratio, runCellWithCost, runMain,
  startForkedServer, startTritium, writeReadmeSection, type ServerCost, type ServerHandle,
} from "./harness.js";
import type { LoadResult } from "./load-generator.js";

const SECONDS = positiveNumber(process.env.BENCH_SECONDS, 5, "BENCH_SECONDS");
const WARMUP_SECONDS = positiveNumber(process.env.BENCH_WARMUP_SECONDS, 2, "BENCH_WARMUP_SECONDS");
const WRITE = process.argv.includes("--write");
const OCR_REPOSITORY = path.join(ROOT, "examples", "ocr_repository");
const IMAGE = path.join(ROOT, "examples", "ocr-sample.png");
const CONCURRENCY = [1, 4] as const;

/** Completed requests per second, unrounded: an OCR request takes tens of milliseconds. */
const perSecond = (r: LoadResult) => (r.wallSeconds > 0 ? r.completed / r.wallSeconds : 0);

interface Cell {
  server: string;
  concurrency: number;
  result: LoadResult;
  cost?: ServerCost;
}

async function main(): Promise<number> {
  const env = environment();
  const png = fs.readFileSync(IMAGE);
  const body = Buffer.from(JSON.stringify({ inputs: [{ name: "IMAGE", datatype: "BYTES", shape: [1], data: [png.toString("base64")] }] }), "utf8");
  const headers = { "Content-Type": "application/json", "Content-Length": String(body.byteLength) };
  const tritium = await startTritium({ repository: OCR_REPOSITORY, models: ["ocr", "ocr_det", "ocr_rec"] });
  const cells: Cell[] = [];
  const problems: string[] = [];
  let lines: unknown[] = [];
  let handwritten: ServerHandle | undefined;
  try {
    // Tritium's own first answer is what every later answer, from either server, must repeat.
    const first = await httpCall(tritium.port, "POST", "/v2/models/ocr/infer", body.toString("utf8"));
    if (first.status !== 200) throw new Error(`Tritium's first OCR answer: ${first.status} ${first.body}`);
    const decoded = decodeResponse(Buffer.from(first.body, "utf8"), undefined);
    lines = Array.from(decoded.get("TEXT")!.values);
    const expected = new Map<string, DecodedOutput>(["BOX", "SCORE"].map((n) => [n, decoded.get(n)!]));
    handwritten = await startForkedServer("ocr-handwritten-server.js", [OCR_REPOSITORY]);
    for (const concurrency of CONCURRENCY) {
      for (const server of [tritium, handwritten]) {
        process.stderr.write(`  ${server.name} c=${concurrency} ...`);
        const { result, cost } = await runCellWithCost({
          kind: "http", url: `http://127.0.0.1:${server.port}/v2/models/ocr/infer`, headers, body, binaryResponse: false, expected,
          concurrency, warmupSeconds: WARMUP_SECONDS, seconds: SECONDS,
        }, server);
        process.stderr.write(` ${perSecond(result).toFixed(1)} req/s\n`);
        problems.push(...cellProblems(`${server.name} c=${concurrency}`, result));
        cells.push({ server: server.name, concurrency, result, cost });
      }
    }
  } finally {
    const stops = await Promise.all([tritium.stop(), handwritten?.stop()]);
    problems.push(...stops.filter((p): p is string => p !== undefined));
  }
  env.loadEnd = os.loadavg();
  const find = (server: string, c: number) => cells.find((x) => x.server === server && x.concurrency === c)?.result;
  const rows = cells.map((x) =>
    `| ${x.server} | ${x.concurrency} | ${perSecond(x.result).toFixed(1)} | ${ms(x.result.p50Ms)} | ${ms(x.result.p99Ms)} | ${costText(x.cost)} | ${memoryText(x.cost)} |`);
  const speedup = CONCURRENCY.map((c) => {
    const t = find("Tritium", c);
    const h = find("hand-written server", c);
    return t && h ? `c=${c}: ${ratio(perSecond(t), perSecond(h))}` : `c=${c}: —`;
  });
  const out = [
    ...environmentLines(env, `${SECONDS} s measured per cell after ${WARMUP_SECONDS} s warm-up; HTTP JSON, the image as base64, keep-alive`),
    `Image: \`examples/ocr-sample.png\` (560×280, ${lines.length} lines: ${lines.map((l) => `"${String(l)}"`).join(", ")}). Tritium: \`${tritium.commandLine}\`.`,
    "The hand-written server runs the example's own model class with `session.run` on its main thread (`bench/ocr-handwritten-server.ts`).",
    "",
    "| Server | Concurrency | req/s | p50 ms | p99 ms | server CPU µs/req | server RSS MB start → end |",
    "|---|--:|--:|--:|--:|--:|--:|",
    ...rows,
    "",
    `Tritium's throughput over the hand-written server's: ${speedup.join(", ")}.`,
    ...problemLines(problems, []),
  ].join("\n");
  process.stdout.write(`\n${out}\n`);
  if (WRITE) writeReadmeSection("ocr", "### OCR pipeline: Tritium against a hand-rolled route", out);
  return problems.length ? 1 : 0;
}

runMain(main);
