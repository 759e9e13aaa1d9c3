/**
 * Which Python interpreter runs a model's processes. In order:
 * 1. the model's `EXECUTION_ENV_PATH` parameter (Triton's): an environment
 *    directory, or a `.tar.gz` of one as conda-pack makes it (unpacked once
 *    into a cache); `$$TRITON_MODEL_DIRECTORY` stands for the model's folder;
 * 2. the model's `python_runtime` parameter (Tritium's): an interpreter;
 * 3. `--backend-config=<backend>,python-runtime=<interpreter>`;
 * 4. the first of `python3` on the PATH and Debian's `/usr/bin/python3` that
 *    can import what the backend needs (numpy; torch for PyTorch models).
 * A named interpreter is taken as it is: if it lacks a module, the model's
 * load fails with Python's own ImportError.
 */
import { execFile } from "node:child_process";
import { createHash } from "node:crypto";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { promisify } from "node:util";
import { invalidArg } from "../../core/errors.js";
import type { BackendModelContext } from "../../core/backend.js";

const run = promisify(execFile);
const CANDIDATES = ["python3", "/usr/bin/python3"];
const probes = new Map<string, Promise<boolean>>();

/** Whether `python` can import every one of `modules` (asked once per interpreter and module list). */
function canImport(python: string, modules: readonly string[]): Promise<boolean> {
  const key = `${python}\0${modules.join(",")}`;
  let probe = probes.get(key);
  if (!probe) {
    probe = run(python, ["-c", modules.map((m) => `import ${m}`).join("; ")], { timeout: 60_000 }).then(() => true, () => false);
    probes.set(key, probe);
  }
  return probe;
}

/** Unpacks a packed environment once (per archive and modification time) and gives its directory. */
async function unpacked(archive: string, model: string): Promise<string> {
  let stat: fs.Stats;
  try {
    stat = fs.statSync(archive);
  } catch {
    throw invalidArg(`model '${model}': EXECUTION_ENV_PATH '${archive}' does not exist`);
  }
  const key = createHash("sha256").update(`${archive}\0${stat.mtimeMs}\0${stat.size}`).digest("hex").slice(0, 16);
  const dir = path.join(os.tmpdir(), "tritium-python-envs", key);
  if (fs.existsSync(path.join(dir, ".unpacked"))) return dir;
  fs.rmSync(dir, { recursive: true, force: true });
  fs.mkdirSync(dir, { recursive: true });
  try {
    await run("tar", ["-xzf", archive, "-C", dir], { timeout: 600_000 });
  } catch (e) {
    throw invalidArg(`model '${model}': cannot unpack EXECUTION_ENV_PATH '${archive}': ${(e as Error).message}`);
  }
  fs.writeFileSync(path.join(dir, ".unpacked"), "");
  return dir;
}

/** The first of `python3` and Debian's `/usr/bin/python3` that imports `modules`, if any does. */
export async function findPython(modules: readonly string[]): Promise<string | undefined> {
  for (const python of CANDIDATES) if (await canImport(python, modules)) return python;
  return undefined;
}

/**
 * The interpreter for a model of `backend` that needs `modules`.
 * Fails with a message that says how to get one.
 */
export async function pythonRuntime(backend: string, ctx: BackendModelContext, modules: readonly string[]): Promise<string> {
  const model = ctx.name;
  const param = (key: string) => ctx.config.parameters[key]?.stringValue || undefined;
  const envPath = param("EXECUTION_ENV_PATH")?.replaceAll("$$TRITON_MODEL_DIRECTORY", ctx.modelDir);
  if (envPath) {
    const dir = /\.(tar\.gz|tgz)$/.test(envPath) ? await unpacked(envPath, model) : envPath;
    const python = ["bin/python3", "bin/python"].map((p) => path.join(dir, p)).find((p) => fs.existsSync(p));
    if (!python) throw invalidArg(`model '${model}': EXECUTION_ENV_PATH '${envPath}' has no bin/python3`);
    return python;
  }
  const named = param("python_runtime") ?? ctx.backendConfig["python-runtime"];
  if (named) return named;
  const found = await findPython(modules);
  if (found) return found;
  const what = modules.join(" and ");
  throw invalidArg(
    `model '${model}': no Python interpreter that can import ${what} was found (tried ${CANDIDATES.join(", ")}); ` +
      `install ${modules.map((m) => `python3-${m}`).join(" ")} (Debian) or name one with --backend-config=${backend},python-runtime=<path> ` +
      `or the model parameter python_runtime`,
  );
}
