/**
 * Where the large payloads between the server and a model process go: two
 * files per process in a directory of this server's own under `/dev/shm`
 * (memory, not disk), one written by each side, each living as long as the
 * process. A payload takes a range of its writer's file and the pipe carries
 * only `{offset, length}`; the reader gives the range back (a `release`
 * frame) once it is done with it, and the writer reuses it.
 *
 * Why files that stay: on a virtual machine a page fault costs microseconds,
 * and a fresh 4 MiB buffer is a thousand of them. Writing into pages the
 * file already has, and reading from a mapping already made, costs a copy at
 * memory speed. Node.js cannot map a file, so the server's side reads and
 * writes with one system call each; the Python side maps the server's file,
 * so its input tensors are views of the bytes the server wrote.
 */
import fs from "node:fs";
import os from "node:os";
import path from "node:path";

/** Payloads at least this large go through the files; smaller ones are cheaper inline in the pipe. */
export const SHM_THRESHOLD = 64 * 1024;

/** Ranges start at multiples of this, so either side can view a tensor in place. */
const ALIGN = 64;

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

/** Ranges of a file in use, first fit; the file grows when nothing fits. */
export class RangeAllocator {
  /** [start, end) in use, by start. */
  private readonly used: [number, number][] = [];

  allocate(length: number): number {
    let at = 0;
    let i = 0;
    for (; i < this.used.length; i++) {
      const [start, end] = this.used[i]!;
      if (start - at >= length) break;
      at = Math.ceil(end / ALIGN) * ALIGN;
    }
    this.used.splice(i, 0, [at, at + length]);
    return at;
  }

  free(offset: number): void {
    const i = this.used.findIndex(([start]) => start === offset);
    if (i >= 0) this.used.splice(i, 1);
  }
}

/** The server's side of one process's two files. */
export class ShmChannel {
  /** The file this side writes (the process reads and maps it). */
  readonly outName: string;
  /** The file the process writes. */
  readonly inName: string;
  private out: number | undefined;
  private readonly inPath: string;
  private inFd: number | undefined;
  private readonly ranges = new RangeAllocator();

  constructor(readonly prefix: string) {
    this.outName = `${prefix}-s`;
    this.inName = `${prefix}-c`;
    this.out = fs.openSync(path.join(shmDir(), this.outName), "w+", 0o600);
    this.inPath = path.join(shmDir(), this.inName);
  }

  /** Copies `parts` into a free range of this side's file; the process releases it when done. */
  write(parts: readonly Uint8Array[], length: number): { offset: number; length: number } {
    if (this.out === undefined) throw new Error(`shared-memory file ${this.outName} is closed`);
    const offset = this.ranges.allocate(length);
    let at = offset;
    for (const part of parts) {
      for (let done = 0; done < part.byteLength; ) done += fs.writeSync(this.out, part, done, part.byteLength - done, at + done);
      at += part.byteLength;
    }
    return { offset, length };
  }

  /** The process is done with a range this side wrote. */
  release(offset: number): void {
    this.ranges.free(offset);
  }

  /** Copies a range of the process's file out (the caller then tells the process to release it). */
  read(offset: number, length: number): Buffer {
    this.inFd ??= fs.openSync(this.inPath, "r");
    const data = Buffer.allocUnsafeSlow(length);
    for (let done = 0; done < length; ) {
      const n = fs.readSync(this.inFd, data, done, length - done, offset + done);
      if (n === 0) throw new Error(`shared-memory file ${this.inName} ends before ${offset + length}`);
      done += n;
    }
    return data;
  }

  /** Closes and removes both files. */
  close(): void {
    for (const fd of [this.out, this.inFd]) if (fd !== undefined) fs.closeSync(fd);
    this.out = this.inFd = undefined;
    for (const name of [this.outName, this.inName]) fs.rmSync(path.join(shmDir(), name), { force: true });
  }
}
