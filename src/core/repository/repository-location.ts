/**
 * Where a `--model-repository` lives. A local folder is read in place; an
 * object-store repository (`s3://`) is mirrored into a local folder, brought
 * up to date before each scan of the repositories (start, poll, load,
 * index), so the rest of the server only ever reads local files.
 */
import { unsupported } from "../errors.js";

export interface RepositoryLocation {
  /** As given on the command line (what logs and the options table show). */
  readonly spec: string;
  /** The local folder the server scans. */
  readonly path: string;
  /** Whether `path` is a copy that `sync` refreshes. */
  readonly remote: boolean;
  /** Brings `path` up to date with the store (a local folder: nothing to do). */
  sync(): Promise<void>;
}

/** Opens a repository given as a local path or an `s3://` URL; other stores are refused by name. */
export async function openRepository(spec: string): Promise<RepositoryLocation> {
  if (spec.startsWith("s3://")) {
    const { S3Mirror } = await import("./s3-mirror.js");
    return S3Mirror.open(spec);
  }
  const scheme = /^([a-z][a-z0-9+.-]*):\/\//i.exec(spec)?.[1];
  if (scheme) {
    const names: Record<string, string> = { gs: "Google Cloud Storage", as: "Azure Storage" };
    throw unsupported(`model repository '${spec}': ${names[scheme.toLowerCase()] ?? `'${scheme}://'`} repositories are not supported yet (local folders and s3:// are)`);
  }
  return { spec, path: spec, remote: false, sync: async () => {} };
}
