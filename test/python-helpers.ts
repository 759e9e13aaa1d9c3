/**
 * What the Python-backend tests share: finding an interpreter with the
 * modules a test needs (as the server does: python3, then Debian's), the
 * reason printed when there is none, and writing a model folder.
 */
import { spawnSync } from "node:child_process";
import fs from "node:fs/promises";
import path from "node:path";

/** The first interpreter that imports `modules`, or why none does (a test's skip reason). */
export function pythonWith(modules: readonly string[]): { python?: string; skip: string | false } {
  let why = "";
  for (const python of ["python3", "/usr/bin/python3"]) {
    const probe = spawnSync(python, ["-c", modules.map((m) => `import ${m}`).join("; ")], { encoding: "utf8", timeout: 60_000 });
    if (probe.status === 0) return { python, skip: false };
    why = (probe.stderr || probe.error?.message || "").trim().split("\n").pop() ?? "";
  }
  return { skip: `no python3 with ${modules.join(" and ")} here (${why}); CI installs python3-numpy and python3-torch` };
}

/** Writes `<repo>/<name>/config.pbtxt` and `<repo>/<name>/1/<file>`. */
export async function writeModel(repo: string, name: string, config: string, code: string, file = "model.py"): Promise<void> {
  await fs.mkdir(path.join(repo, name, "1"), { recursive: true });
  await fs.writeFile(path.join(repo, name, "config.pbtxt"), config);
  await fs.writeFile(path.join(repo, name, "1", file), code);
}
