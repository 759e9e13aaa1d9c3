import fs from "node:fs/promises";
import path from "node:path";
import type { ModelConfig } from "../../gen/inference/model_config_pb.js";

/** A model directory found in one of the repositories. */
export interface RepositoryModel {
  name: string;
  /** `<repo>/<name>` */
  dir: string;
  repository: string;
}

export interface RepositoryScan {
  models: Map<string, RepositoryModel>;
  /** Names found in more than one repository: served by none, reported with every path. */
  duplicates: Map<string, string[]>;
}

/**
 * Lists the models of every `--model-repository`. A model name that appears in
 * two repositories is ambiguous; like Triton, we serve neither copy.
 */
export async function scanRepositories(repositories: readonly string[]): Promise<RepositoryScan> {
  const found = new Map<string, RepositoryModel[]>();
  for (const repo of repositories) {
    let entries;
    try {
      entries = await fs.readdir(repo, { withFileTypes: true });
    } catch (e) {
      throw new Error(`failed to read model repository '${repo}': ${(e as Error).message}`);
    }
    for (const e of entries) {
      if (!e.isDirectory() || e.name.startsWith(".")) continue;
      const list = found.get(e.name) ?? [];
      list.push({ name: e.name, dir: path.join(repo, e.name), repository: repo });
      found.set(e.name, list);
    }
  }
  const models = new Map<string, RepositoryModel>();
  const duplicates = new Map<string, string[]>();
  for (const [name, list] of [...found].sort(([a], [b]) => a.localeCompare(b))) {
    if (list.length === 1) models.set(name, list[0]!);
    else duplicates.set(name, list.map((m) => m.dir));
  }
  return { models, duplicates };
}

/**
 * Numeric version folders of a model directory, ascending. Folders whose
 * names are not plain positive integers (or start with 0) are ignored.
 */
export async function listVersions(modelDir: string): Promise<number[]> {
  const entries = await fs.readdir(modelDir, { withFileTypes: true });
  return entries
    .filter((e) => e.isDirectory() && /^[1-9][0-9]*$/.test(e.name))
    .map((e) => Number(e.name))
    .filter((v) => Number.isSafeInteger(v))
    .sort((a, b) => a - b);
}

/** The versions to serve under the config's `version_policy` (default: latest 1). */
export function selectVersions(available: readonly number[], config: ModelConfig): number[] {
  const policy = config.versionPolicy?.policyChoice;
  switch (policy?.case) {
    case "all":
      return [...available];
    case "specific": {
      const wanted = new Set(policy.value.versions.map(Number));
      return available.filter((v) => wanted.has(v));
    }
    case "latest":
      return available.slice(-Math.max(1, policy.value.numVersions));
    default:
      return available.slice(-1);
  }
}

/** Versions named by a `specific` policy that have no folder: Triton fails the load for these. */
export function missingSpecificVersions(available: readonly number[], config: ModelConfig): number[] {
  const policy = config.versionPolicy?.policyChoice;
  if (policy?.case !== "specific") return [];
  const have = new Set(available);
  return policy.value.versions.map(Number).filter((v) => !have.has(v));
}

/**
 * A fingerprint of everything in a model directory (paths, sizes, mtimes):
 * poll mode reloads a model when it changes.
 */
export async function fingerprint(dir: string): Promise<string> {
  const parts: string[] = [];
  const walk = async (d: string, rel: string) => {
    let entries;
    try {
      entries = await fs.readdir(d, { withFileTypes: true });
    } catch {
      return;
    }
    for (const e of entries.sort((a, b) => a.name.localeCompare(b.name))) {
      const p = path.join(d, e.name);
      if (e.isDirectory()) await walk(p, `${rel}${e.name}/`);
      else {
        try {
          const st = await fs.stat(p);
          parts.push(`${rel}${e.name}:${st.size}:${st.mtimeMs}`);
        } catch {
          // removed while we looked: the next poll sees the settled state
        }
      }
    }
  };
  await walk(dir, "");
  return parts.join("\n");
}

/** Bytes of the files of one version folder: the memory estimate of a loaded version. */
export async function versionBytes(dir: string, version: number): Promise<number> {
  let total = 0;
  const walk = async (d: string) => {
    for (const e of await fs.readdir(d, { withFileTypes: true }).catch(() => [])) {
      const p = path.join(d, e.name);
      if (e.isDirectory()) await walk(p);
      else total += (await fs.stat(p).catch(() => ({ size: 0 }))).size;
    }
  };
  await walk(path.join(dir, String(version)));
  return total;
}
