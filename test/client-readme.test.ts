/**
 * The client package's README: every `js` example runs, as written but for
 * the server's address, against a real Tritium, and prints the `text` block
 * that follows it.
 */
import assert from "node:assert/strict";
import fs from "node:fs/promises";
import path from "node:path";
import { after, before, describe, it } from "node:test";
import { fileURLToPath } from "node:url";
import { EXAMPLES, ROOT, startGrpcServer, tempRepository, type GrpcTestServer, runNode } from "./helpers.js";

const README = path.join(ROOT, "packages", "client", "README.md");
// Beside the compiled tests, inside the repository, so that `@tritium/client` resolves through node_modules.
const HERE = path.dirname(fileURLToPath(import.meta.url));

/** Each `js` block with the `text` block right after it. */
function examples(markdown: string): { title: string; code: string; output: string }[] {
  const out: { title: string; code: string; output: string }[] = [];
  const re = /^## (.+)$|^```js\n([\s\S]*?)^```\n\n```text\n([\s\S]*?)^```$/gm;
  let title = "";
  for (const m of markdown.matchAll(re)) {
    if (m[1] !== undefined) title = m[1];
    else out.push({ title, code: m[2]!, output: m[3]! });
  }
  return out;
}

const runModule = (file: string) => runNode(file);

let repo: string;
let server: GrpcTestServer;

before(async () => {
  repo = await tempRepository(Object.fromEntries(["simple", "simple_string", "image_classifier"].map((m) => [m, path.join(EXAMPLES, m)])));
  server = await startGrpcServer({ modelRepository: repo });
});

after(async () => {
  await server?.close();
  await fs.rm(repo, { recursive: true, force: true });
});

describe("client README examples", async () => {
  const found = examples(await fs.readFile(README, "utf8"));

  it("has runnable examples for inference, errors, cancellation, streaming and models", () => {
    assert.deepEqual(found.map((e) => e.title), ["Inference", "Classification, BYTES and errors", "Cancellation", "Streaming", "Models, statistics, settings, shared memory"]);
  });

  for (const [n, example] of found.entries()) {
    it(`"${example.title}" prints what the README says`, async () => {
      const code = example.code.replaceAll("localhost:8000", server.url).replaceAll("localhost:8001", server.grpcAddress);
      const file = path.join(HERE, `client-readme-example-${n}.mjs`);
      await fs.writeFile(file, code);
      try {
        const r = await runModule(file);
        assert.equal(r.code, 0, r.stderr);
        assert.equal(r.stdout, example.output);
      } finally {
        await fs.rm(file, { force: true });
      }
    });
  }
});
