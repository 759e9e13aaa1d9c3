/**
 * Where Triton-mode traces go (Triton's `TraceManager::TraceFile`):
 *
 * - `append`: into the trace file itself, one JSON array for the server's
 *   life (log_frequency 0: traces arrive at shutdown or when a setting
 *   changes). Triton closes the array only at exit; we keep the file a valid
 *   JSON array after every write, by overwriting the closing `]`.
 * - `writeIndexed`: into `<file>.0`, `<file>.1`, ... one complete JSON array
 *   each (log_frequency N: every N traces).
 *
 * Writes are asynchronous and run one after another in order; `flushed()`
 * resolves when every write asked for so far is on disk.
 */
import fs from "node:fs/promises";

export class TraceFile {
  private index = 0;
  private handle: fs.FileHandle | undefined;
  /** Offset of the closing `]` in the main file; -1 before the first write. */
  private closeAt = -1;
  private chain: Promise<void> = Promise.resolve();
  private closed = false;

  constructor(
    readonly path: string,
    private readonly onError: (message: string) => void,
  ) {}

  /** Appends traces (comma-separated JSON objects) to the main file's array. */
  append(traces: string): void {
    this.enqueue(async () => {
      if (!this.handle) this.handle = await fs.open(this.path, "w");
      const first = this.closeAt < 0;
      const text = Buffer.from(`${first ? "[" : ","}${traces}]`, "utf8");
      const at = first ? 0 : this.closeAt;
      await this.handle.write(text, 0, text.byteLength, at);
      this.closeAt = at + text.byteLength - 1;
    });
  }

  /** Writes traces to the next indexed file as a complete JSON array. */
  writeIndexed(traces: string): void {
    const name = `${this.path}.${this.index++}`;
    this.enqueue(() => fs.writeFile(name, `[${traces}]`));
  }

  /** Resolves when every write asked for so far has finished. */
  flushed(): Promise<void> {
    return this.chain;
  }

  /** Waits for the writes, then closes the main file. */
  async close(): Promise<void> {
    this.closed = true;
    await this.chain;
    const h = this.handle;
    this.handle = undefined;
    await h?.close();
  }

  private enqueue(write: () => Promise<unknown>): void {
    if (this.closed) return;
    this.chain = this.chain.then(write).then(
      () => undefined,
      (e: unknown) => this.onError(`failed writing trace file '${this.path}': ${(e as Error).message}`),
    );
  }
}
