/**
 * Where the large payloads between the server and its model processes go:
 * one file each under a directory of this server's own in `/dev/shm` (memory,
 * not disk), written once and unlinked by whoever reads it. The pipe then
 * carries only the file's name: a 4 MiB tensor crosses as one copy into the
 * file (which the Python side maps in place) instead of 64 pipe-sized pieces
 * each woken for and reassembled.
 *
 * Node.js cannot map a file, so the server's side reads and writes with one
 * system call each; the model process's side maps.
 */
import fs from "node:fs";
import os from "node:os";
import path from "node:path";

/** Payloads at least this large go through a file; smaller ones are cheaper inline in the pipe. */
export const SHM_THRESHOLD = 64 * 1024;

let dir: string | undefined;

/** The directory (made on first use, removed when the server exits). */
export function shmDir(): string {
  if (dir) return dir;
  const base = fs.existsSync("/dev/shm") ? "/dev/shm" : os.tmpdir();
  const made = fs.mkdtempSync(path.join(base, `tritium-${process.pid}-`));
  process.once("exit", () => fs.rmSync(made, { recursive: true, force: true }));
  dir = made;
  return made;
}

/** Writes `parts` into a new file `name` of the directory. */
export function writeShmFile(name: string, parts: readonly Uint8Array[]): void {
  const fd = fs.openSync(path.join(shmDir(), name), "wx", 0o600);
  try {
    for (const part of parts) {
      for (let done = 0; done < part.byteLength; ) done += fs.writeSync(fd, part, done);
    }
  } finally {
    fs.closeSync(fd);
  }
}

/** Reads file `name` of the directory and removes it. */
export function takeShmFile(name: string): Buffer {
  if (name.includes("/") || name.includes("\\") || name.startsWith(".")) throw new Error(`bad shared-memory file name '${name}'`);
  const file = path.join(shmDir(), name);
  try {
    return fs.readFileSync(file);
  } finally {
    fs.rmSync(file, { force: true });
  }
}

/** Removes the files whose names start with `prefix` (a dead process's, never read). */
export function removeShmFiles(prefix: string): void {
  if (!dir) return;
  for (const f of fs.readdirSync(dir)) if (f.startsWith(prefix)) fs.rmSync(path.join(dir, f), { force: true });
}
