/**
 * What a Python model costs per request (issue 12): one trivial model (its
 * input back as its output) served three ways by the same Tritium process:
 * a Python-backend `model.py` (a python3 process per instance), a `js`
 * model (a worker thread) and the ONNX Identity model (ONNX Runtime in a
 * worker thread), over HTTP with binary tensors, 1 KiB and 4 MiB tensors,
 * concurrency 1 and 16. Every answer is checked. Server CPU counts the
 * server and its Python processes.
 *
 * Targets: Python adds ≤ 1 ms p50 over ONNX Runtime at concurrency 1 (1 KiB),
 * and the 4 MiB case's added cost is at most twice the 1 KiB case's (no
 * per-byte copying through the pipe).
 *
 *   npm run bench:python [-- --write]
 * Environment: BENCH_SECONDS (measured seconds per cell, default 3), BENCH_WARMUP_SECONDS (default 1).
 */
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { binaryRequest, seededFloats, type BenchTensor, type DecodedOutput } from "./payload.js";
import {
  REPOSITORY, cellProblems, costText, environment, environmentLines, memoryText, ms, positiveNumber, problemLines, rate, runCellWithCost, runMain, startTritium, writeReadmeSection,
  type ServerCost,
} from "./harness.js";
import type { LoadResult } from "./load-generator.js";

const SECONDS = positiveNumber(process.env.BENCH_SECONDS, 3, "BENCH_SECONDS");
const WARMUP_SECONDS = positiveNumber(process.env.BENCH_WARMUP_SECONDS, 1, "BENCH_WARMUP_SECONDS");
const WRITE = process.argv.includes("--write");

const IO = `max_batch_size: 8
input [ { name: "INPUT0" data_type: TYPE_FP32 dims: [ -1 ] } ]
output [ { name: "OUTPUT0" data_type: TYPE_FP32 dims: [ -1 ] } ]
instance_group [ { count: 1 kind: KIND_CPU } ]
`;

const PYTHON_MODEL = `import triton_python_backend_utils as pb_utils

class TritonPythonModel:
    def execute(self, requests):
        return [pb_utils.InferenceResponse([pb_utils.Tensor("OUTPUT0", pb_utils.get_input_tensor_by_name(r, "INPUT0").as_numpy())]) for r in requests]
`;

const JS_MODEL = `export default {
  execute(requests) {
    return requests.map((r) => ({ outputs: { OUTPUT0: r.inputs.INPUT0 } }));
  },
};
`;

const MODELS = [
  { name: "identity_py", label: "Python (`model.py`)" },
  { name: "identity_js", label: "JavaScript (`model.js`)" },
  { name: "identity_onnx", label: "ONNX Runtime (`model.onnx`)" },
] as const;

const SIZES = [{ label: "1 KiB", floats: 256 }, { label: "4 MiB", floats: 1 << 20 }] as const;
const CONCURRENCY = [1, 16] as const;

function repository(): string {
  const repo = fs.mkdtempSync(path.join(os.tmpdir(), "tritium-python-bench-"));
  const model = (name: string, header: string, file: string, code: string) => {
    fs.mkdirSync(path.join(repo, name, "1"), { recursive: true });
    fs.writeFileSync(path.join(repo, name, "config.pbtxt"), `name: "${name}"\n${header}\n${IO}`);
    fs.writeFileSync(path.join(repo, name, "1", file), code);
  };
  model("identity_py", `backend: "python"`, "model.py", PYTHON_MODEL);
  model("identity_js", `backend: "js"`, "model.js", JS_MODEL);
  fs.mkdirSync(path.join(repo, "identity_onnx", "1"), { recursive: true });
  fs.copyFileSync(path.join(REPOSITORY, "identity_fp32", "1", "model.onnx"), path.join(repo, "identity_onnx", "1", "model.onnx"));
  fs.writeFileSync(path.join(repo, "identity_onnx", "config.pbtxt"), `name: "identity_onnx"\nplatform: "onnxruntime_onnx"\n${IO}`);
  return repo;
}

interface Cell {
  model: (typeof MODELS)[number];
  size: (typeof SIZES)[number];
  concurrency: number;
  result: LoadResult;
  cost?: ServerCost;
}

async function main(): Promise<number> {
  const env = environment();
  const repo = repository();
  const server = await startTritium({ repository: repo, models: MODELS.map((m) => m.name) });
  const cells: Cell[] = [];
  const problems: string[] = [];
  try {
    for (const size of SIZES) {
      const input: BenchTensor = { name: "INPUT0", datatype: "FP32", shape: [1, size.floats], data: seededFloats(size.floats, 7) };
      const expected = new Map<string, DecodedOutput>([["OUTPUT0", { datatype: "FP32", shape: [1, size.floats], values: input.data }]]);
      const req = binaryRequest([input]);
      for (const concurrency of CONCURRENCY) {
        for (const model of MODELS) {
          process.stderr.write(`  ${model.name} ${size.label} c=${concurrency} ...`);
          const { result, cost } = await runCellWithCost({
            kind: "http", url: `http://127.0.0.1:${server.port}/v2/models/${model.name}/infer`, headers: req.headers, body: req.body, binaryResponse: true, expected,
            concurrency, warmupSeconds: WARMUP_SECONDS, seconds: SECONDS,
          }, server);
          process.stderr.write(` ${rate(result)} req/s\n`);
          problems.push(...cellProblems(`${model.name} ${size.label} c=${concurrency}`, result));
          cells.push({ model, size, concurrency, result, cost });
        }
      }
    }
  } finally {
    await server.stop();
    fs.rmSync(repo, { recursive: true, force: true });
  }
  env.loadEnd = os.loadavg();
  const find = (model: string, size: string, c: number) => cells.find((x) => x.model.name === model && x.size.label === size && x.concurrency === c)!;
  const added = (size: string) => find("identity_py", size, 1).result.p50Ms - find("identity_onnx", size, 1).result.p50Ms;
  const small = added("1 KiB");
  const large = added("4 MiB");
  const rows = cells.map((x) =>
    `| ${x.model.label} | ${x.size.label} | ${x.concurrency} | ${rate(x.result)} | ${ms(x.result.p50Ms)} | ${ms(x.result.p99Ms)} | ${costText(x.cost)} | ${memoryText(x.cost)} |`);
  const out = [
    ...environmentLines(env, `${SECONDS} s measured per cell after ${WARMUP_SECONDS} s warm-up; HTTP, binary tensors both ways, keep-alive`),
    `Server: \`${server.commandLine}\``,
    "",
    "| Model | Tensor | Concurrency | req/s | p50 ms | p99 ms | server CPU µs/req | server RSS MB start → end |",
    "|---|---|--:|--:|--:|--:|--:|--:|",
    ...rows,
    "",
    `Python over ONNX Runtime at concurrency 1, p50: ${ms(small)} ms with 1 KiB (target ≤ 1 ms: ${small <= 1 ? "met" : "**missed**"}), ` +
      `${ms(large)} ms with 4 MiB (${(large / small).toFixed(2)}× the 1 KiB figure; target ≤ 2×: ${large <= 2 * small ? "met" : "**missed**"}).`,
    ...problemLines(problems, []),
  ].join("\n");
  process.stdout.write(`\n${out}\n`);
  if (WRITE) writeReadmeSection("python", "### Python models: per-request cost", out);
  return problems.length ? 1 : 0;
}

runMain(main);
