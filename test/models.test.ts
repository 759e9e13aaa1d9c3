/**
 * The model generator (scripts/make-models.ts) is deterministic, and the
 * committed example and fixture repositories are exactly what it writes.
 */
import assert from "node:assert/strict";
import fs from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { after, before, describe, it } from "node:test";
import { generateModels } from "../scripts/make-models.js";
import { ROOT } from "./helpers.js";

const REPOSITORIES = [path.join("examples", "model_repository"), path.join("test", "fixtures", "model_repository")];

/** Every file under `root`'s model repositories, relative to `root`, sorted. */
async function listFiles(root: string): Promise<string[]> {
  const out: string[] = [];
  const walk = async (rel: string) => {
    for (const e of await fs.readdir(path.join(root, rel), { withFileTypes: true })) {
      const p = path.join(rel, e.name);
      if (e.isDirectory()) await walk(p);
      else out.push(p);
    }
  };
  for (const r of REPOSITORIES) await walk(r);
  return out.sort();
}

describe("model generator", () => {
  let first: string;
  let second: string;
  let written: string[];

  before(async () => {
    first = await fs.mkdtemp(path.join(os.tmpdir(), "tritium-models-a-"));
    second = await fs.mkdtemp(path.join(os.tmpdir(), "tritium-models-b-"));
    written = await generateModels(first);
    await generateModels(second);
  });
  after(async () => {
    await Promise.all([first, second].filter(Boolean).map((d) => fs.rm(d, { recursive: true, force: true })));
  });

  it("reports the absolute path of every file it writes", async () => {
    const files = await listFiles(first);
    assert.deepEqual(written.map((p) => path.relative(first, p)).sort(), files);
    assert.ok(written.every((p) => path.isAbsolute(p)));
  });

  it("writes byte-identical files on two runs", async () => {
    const a = await listFiles(first);
    assert.deepEqual(await listFiles(second), a);
    for (const f of a) {
      const [x, y] = await Promise.all([fs.readFile(path.join(first, f)), fs.readFile(path.join(second, f))]);
      assert.ok(x.equals(y), `${f} differs between two runs`);
    }
  });

  it("matches the committed example and fixture repositories file for file, byte for byte", async () => {
    const generated = await listFiles(first);
    const committed = await listFiles(ROOT);
    assert.deepEqual(committed, generated, "committed repositories hold files the generator does not write, or lack some it does");
    for (const f of generated) {
      const [x, y] = await Promise.all([fs.readFile(path.join(first, f)), fs.readFile(path.join(ROOT, f))]);
      assert.ok(x.equals(y), `${f} differs from the committed file: run npm run gen:models`);
    }
  });

  it("writes the models the tests and examples rely on", async () => {
    const files = await listFiles(first);
    for (const m of ["simple", "identity_fp32", "simple_string", "image_classifier"]) {
      assert.ok(files.includes(path.join("examples", "model_repository", m, "1", "model.onnx")), m);
      assert.ok(files.includes(path.join("examples", "model_repository", m, "config.pbtxt")), m);
    }
    assert.ok(files.includes(path.join("examples", "model_repository", "image_classifier", "labels.txt")));
    for (const t of ["bool", "uint8", "uint16", "uint32", "uint64", "int8", "int16", "int32", "int64", "fp16", "fp32", "fp64", "bytes"]) {
      assert.ok(files.includes(path.join("test", "fixtures", "model_repository", `identity_${t}`, "1", "model.onnx")), t);
    }
    const fixtures = path.join("test", "fixtures", "model_repository");
    assert.ok(!files.includes(path.join(fixtures, "autocomplete_simple", "config.pbtxt")), "autocomplete_simple has no config on purpose");
    for (const v of ["1", "2", "3"]) assert.ok(files.includes(path.join(fixtures, "versioned", v, "model.onnx")), v);
  });
});
