/**
 * Triton's PyTorch backend: TorchScript `model.pt` files made by
 * scripts/make-torch-models.py (seeded), served over real HTTP, answers
 * compared with PyTorch's own on the same inputs. Skipped, with the reason
 * printed, where no python3 has torch.
 */
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import fs from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { after, before, describe, it } from "node:test";
import { ROOT, getJson, postJson, startServer, type TestServer } from "./helpers.js";
import { pythonWith } from "./python-helpers.js";

const { skip, python } = await pythonWith(["numpy", "torch"]);
if (skip) console.log(`# skipping the PyTorch backend tests: ${skip}`);

type Expected = Record<string, { inputs: Record<string, [number[], number[]]>; outputs: Record<string, [number[], number[]]> }>;

const close = (got: number[], want: number[], what: string) => {
  assert.equal(got.length, want.length, `${what}: length`);
  for (const [i, w] of want.entries()) assert.ok(Math.abs(got[i]! - w) <= 1e-5 * Math.max(1, Math.abs(w)), `${what}[${i}]: ${got[i]} vs ${w}`);
};

describe("pytorch backend", { skip, timeout: 180_000 }, () => {
  let repo: string;
  let s: TestServer;
  let expected: Expected;

  before(async () => {
    repo = await fs.mkdtemp(path.join(os.tmpdir(), "tritium-torch-"));
    execFileSync(python!, [path.join(ROOT, "scripts", "make-torch-models.py"), repo], { stdio: ["ignore", "ignore", "inherit"] });
    expected = JSON.parse(await fs.readFile(path.join(repo, "expected.json"), "utf8")) as Expected;
    await fs.rm(path.join(repo, "expected.json"));
    // The same network three more times: on a GPU this machine lacks, on KIND_AUTO, and with a config that lists no tensors.
    const copy = async (name: string, config: (text: string) => string) => {
      await fs.cp(path.join(repo, "torch_several"), path.join(repo, name), { recursive: true });
      const file = path.join(repo, name, "config.pbtxt");
      await fs.writeFile(file, config((await fs.readFile(file, "utf8")).replace('"torch_several"', `"${name}"`)));
    };
    await copy("torch_gpu", (t) => `${t}instance_group [ { kind: KIND_GPU gpus: [ 0 ] } ]\n`);
    await copy("torch_auto", (t) => `${t}instance_group [ { kind: KIND_AUTO } ]\n`);
    await copy("torch_bare", () => `name: "torch_bare"\nplatform: "pytorch_libtorch"\nmax_batch_size: 0\n`);
    s = await startServer({ modelRepository: repo, strictReadiness: false });
  });
  after(async () => {
    await s?.close();
    if (repo) await fs.rm(repo, { recursive: true, force: true });
  });

  const infer = (model: string, inputs: Record<string, [number[], number[]]>, datatype: Record<string, string> = {}) =>
    postJson(`${s.url}/v2/models/${model}/infer`, {
      inputs: Object.entries(inputs).map(([name, [shape, data]]) => ({ name, shape, datatype: datatype[name] ?? "FP32", data })),
    });

  it("answers as PyTorch does: a traced CNN, a scripted model with control flow, several outputs, dict outputs", async () => {
    for (const model of ["torch_cnn", "torch_branchy", "torch_several", "torch_named", "torch_throws"]) {
      const want = expected[model]!;
      const r = await infer(model, want.inputs);
      assert.equal(r.status, 200, `${model}: ${JSON.stringify(r.json)}`);
      for (const [name, [shape, values]] of Object.entries(want.outputs)) {
        const out = (r.json.outputs as { name: string; shape: number[]; data: number[] }[]).find((o) => o.name === name);
        assert.ok(out, `${model}: output ${name}`);
        assert.deepEqual(out.shape, shape, `${model} ${name} shape`);
        close(out.data, values, `${model} ${name}`);
      }
    }
  });

  it("feeds inputs by forward()'s argument names whatever the config's order, and follows the model's branches", async () => {
    const r = await infer("torch_branchy", { x: [[4], [1, 2, 3, 4]], threshold: [[1], [50]] });
    assert.equal(r.status, 200, JSON.stringify(r.json));
    assert.deepEqual(r.json.outputs[0].data, [-2, -1, 0, 1]);
  });

  it("runs concurrent requests as dynamic batches, each answered with its own slice", async () => {
    const [[, flat]] = Object.values(expected.torch_cnn!.inputs) as [[number[], number[]]];
    const [, probs] = expected.torch_cnn!.outputs.OUTPUT__0!;
    const image = (k: number) => flat.slice(k * 3072, (k + 1) * 3072);
    const answers = await Promise.all(Array.from({ length: 16 }, (_, i) => infer("torch_cnn", { INPUT__0: [[1, 3, 32, 32], image(i % 2)] })));
    for (const [i, r] of answers.entries()) {
      assert.equal(r.status, 200, JSON.stringify(r.json));
      close(r.json.outputs[0].data, probs.slice((i % 2) * 10, (i % 2) * 10 + 10), `request ${i}`);
    }
    const stats = (await getJson(`${s.url}/v2/models/torch_cnn/stats`)).json as { model_stats: { execution_count: number; inference_count: number }[] };
    assert.ok(Number(stats.model_stats[0]!.execution_count) < Number(stats.model_stats[0]!.inference_count), "some requests ran together");
  });

  it("fails a request whose forward() raises, with PyTorch's message", async () => {
    const r = await infer("torch_throws", { x: [[2], [1, -1]] });
    assert.equal(r.status, 500);
    assert.match(r.json.error, /model 'torch_throws' instance 'torch_throws_0_0': forward\(\) failed: .*negative input$/);
    assert.equal((await infer("torch_throws", { x: [[2], [16, 25]] })).status, 200);
  });

  it("gives Triton's errors for a wrong input name, datatype or shape", async () => {
    const name = await infer("torch_throws", { y: [[2], [1, 2]] });
    assert.equal(name.status, 400);
    assert.match(name.json.error, /unexpected inference input 'y' for model 'torch_throws'/);
    const dtype = await infer("torch_throws", { x: [[2], [1, 2]] }, { x: "INT32" });
    assert.equal(dtype.status, 400);
    assert.match(dtype.json.error, /inference input 'x' data-type is 'INT32', but model 'torch_throws' expects 'FP32'/);
    const shape = await infer("torch_throws", { x: [[3], [1, 2, 3]] });
    assert.equal(shape.status, 400);
    assert.match(shape.json.error, /unexpected shape for input 'x' for model 'torch_throws'/);
  });

  it("refuses KIND_GPU on a machine without a GPU, runs KIND_AUTO on the CPU, and refuses a config that lists no tensors", async () => {
    const index = (await postJson(`${s.url}/v2/repository/index`, {})).json as { name: string; state: string; reason: string }[];
    const state = (m: string) => index.find((x) => x.name === m)!;
    assert.equal(state("torch_gpu").state, "UNAVAILABLE");
    assert.match(state("torch_gpu").reason, /model 'torch_gpu': instance_group\[0\] has kind KIND_GPU but this machine has no usable GPU \(nvidia-smi lists none\)/);
    assert.equal(state("torch_auto").state, "READY");
    const r = await infer("torch_auto", expected.torch_several!.inputs);
    assert.equal(r.status, 200, JSON.stringify(r.json));
    assert.equal(state("torch_bare").state, "UNAVAILABLE");
    assert.match(state("torch_bare").reason, /torch_bare\/config\.pbtxt must list 'input': the PyTorch backend cannot auto-complete/);
  });
});
