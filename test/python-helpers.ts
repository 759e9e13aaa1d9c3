/**
 * What the Python-backend tests share: the interpreter the server would
 * find for a test's modules (or the reason printed when there is none), and
 * writing a model folder.
 */
import fs from "node:fs/promises";
import path from "node:path";
import { findPython } from "../src/backends/process-host/python-runtime.js";

/** The interpreter that imports `modules`, or why there is none (a test's skip reason). */
export async function pythonWith(modules: readonly string[]): Promise<{ python?: string; skip: string | false }> {
  const python = await findPython(modules);
  if (python) return { python, skip: false };
  return { skip: `no python3 with ${modules.join(" and ")} here (tried python3, /usr/bin/python3); CI installs python3-numpy and python3-torch` };
}

/** Writes `<repo>/<name>/config.pbtxt` and `<repo>/<name>/1/<file>`. */
export async function writeModel(repo: string, name: string, config: string, code: string, file = "model.py"): Promise<void> {
  await fs.mkdir(path.join(repo, name, "1"), { recursive: true });
  await fs.writeFile(path.join(repo, name, "config.pbtxt"), config);
  await fs.writeFile(path.join(repo, name, "1", file), code);
}
