/**
 * One model instance in a child process of its own (Python models today,
 * PyTorch ones next: both run `python/tritium_host.py`). The server owns the
 * process: it starts it, talks to it in frames over its stdin/stdout, fails
 * the calls in flight when it dies, and ends it on close.
 *
 * A frame: u32 header length, u32 payload length (little-endian), a JSON
 * header with `type` and `id`, then the payload (tensor bytes, laid out as
 * the header says). The child answers each call with a frame of the same id.
 */
import { spawn, type ChildProcessWithoutNullStreams } from "node:child_process";
import { TritonError, internal } from "../../core/errors.js";
import { endsWithin } from "../instance-life.js";

/** How long `close` waits for the process to finish cleanly before killing it. */
const CLOSE_TIMEOUT_MS = 10_000;

export interface Frame {
  header: { type: string; id: number; [key: string]: unknown };
  payload: Buffer;
}

export interface ModelProcessOptions {
  /** The program and its arguments, e.g. `python3 python/tritium_host.py`. */
  command: string;
  args: string[];
  env: NodeJS.ProcessEnv;
  /** Names the instance in error messages. */
  label: string;
  /** Lines the process writes to stderr (its prints, its logger). */
  onLog: (line: string) => void;
  /** A request the process makes of the server (BLS); its answer is sent back as `<type>_result` with the same id. */
  onRequest?: (frame: Frame) => Promise<{ header: Record<string, unknown>; payload?: Buffer }>;
  /** Frames that answer no call and ask nothing (a decoupled model's responses). */
  onNotice?: (frame: Frame) => void;
}

export class ModelProcess {
  private readonly child: ChildProcessWithoutNullStreams;
  private readonly pending = new Map<number, { resolve: (f: Frame) => void; reject: (e: TritonError) => void }>();
  private nextId = 1;
  private buffered: Buffer = Buffer.alloc(0);
  private dead: TritonError | undefined;
  private closing = false;
  private readonly exited: Promise<void>;

  constructor(private readonly options: ModelProcessOptions) {
    this.child = spawn(options.command, options.args, { env: options.env, stdio: ["pipe", "pipe", "pipe"] });
    this.child.stdout.on("data", (chunk: Buffer) => this.receive(chunk));
    let line = "";
    this.child.stderr.setEncoding("utf8");
    this.child.stderr.on("data", (text: string) => {
      const lines = (line + text).split("\n");
      line = lines.pop() ?? "";
      for (const l of lines) if (l) options.onLog(l);
    });
    // A child that dies while a frame is being written would otherwise raise EPIPE on the server.
    this.child.stdin.on("error", () => undefined);
    this.exited = new Promise((resolve) => {
      this.child.once("error", (e) => {
        this.fail(internal(`${options.label}: cannot start '${options.command}': ${e.message}`));
        resolve();
      });
      this.child.once("exit", (code, signal) => {
        this.fail(this.closing
          ? internal(`${options.label}: the instance has been released`)
          : internal(`${options.label}: the model process exited unexpectedly (${signal ? `signal ${signal}` : `exit code ${code}`})`));
        resolve();
      });
    });
    this.hold(false);
  }

  /** An idle instance must not keep the server's process alive; one with calls in flight must. */
  private hold(on: boolean): void {
    if (on) this.child.ref();
    else this.child.unref();
    for (const s of [this.child.stdout, this.child.stderr, this.child.stdin]) {
      const handle = s as unknown as { ref?: () => void; unref?: () => void };
      if (on) handle.ref?.();
      else handle.unref?.();
    }
  }

  get alive(): boolean {
    return !this.dead && !this.closing;
  }

  /** Sends a frame and resolves with the child's answer to it; an `error` answer rejects with its message. */
  call(header: Omit<Frame["header"], "id">, payload: Buffer = Buffer.alloc(0)): Promise<Frame> {
    return this.send(header, payload).reply;
  }

  /** The same, with the frame's id (which the child's notices about it carry). */
  send(header: Omit<Frame["header"], "id">, payload: Buffer = Buffer.alloc(0)): { id: number; reply: Promise<Frame> } {
    if (this.dead) return { id: -1, reply: Promise.reject(this.dead) };
    const id = this.nextId++;
    if (this.pending.size === 0) this.hold(true);
    const reply = new Promise<Frame>((resolve, reject) => {
      this.pending.set(id, { resolve, reject });
      this.write({ ...header, id }, payload);
    });
    return { id, reply };
  }

  /** Asks the process to finish (`close`: the model's finalize) and end; kills it if it does not in time. */
  async close(): Promise<void> {
    if (this.closing) return this.exited;
    this.hold(true);
    const closed = this.call({ type: "close" }).catch(() => undefined);
    this.closing = true;
    if (!(await endsWithin(closed.then(() => this.exited), CLOSE_TIMEOUT_MS))) this.child.kill("SIGKILL");
    this.child.stdin.end();
    await this.exited;
  }

  /** Ends the process at once. */
  async terminate(): Promise<void> {
    this.closing = true;
    // Until its exit is seen: an awaited end must keep the server's event loop running.
    this.hold(true);
    if (this.child.exitCode === null && this.child.signalCode === null) this.child.kill("SIGKILL");
    await this.exited;
  }

  private receive(chunk: Buffer): void {
    this.buffered = this.buffered.byteLength ? Buffer.concat([this.buffered, chunk]) : chunk;
    for (;;) {
      if (this.buffered.byteLength < 8) return;
      const hl = this.buffered.readUInt32LE(0);
      const pl = this.buffered.readUInt32LE(4);
      if (this.buffered.byteLength < 8 + hl + pl) return;
      const header = JSON.parse(this.buffered.toString("utf8", 8, 8 + hl)) as Frame["header"];
      // The payload is copied out: the buffer it came in is reused for the frames after it.
      const payload = Buffer.from(this.buffered.subarray(8 + hl, 8 + hl + pl));
      this.buffered = this.buffered.subarray(8 + hl + pl);
      if (header.type === "bls") {
        this.answer(header, payload);
        continue;
      }
      if (header.id === -1) {
        this.options.onNotice?.({ header, payload });
        continue;
      }
      const p = this.pending.get(header.id);
      this.pending.delete(header.id);
      if (this.pending.size === 0 && !this.closing) this.hold(false);
      if (!p) continue;
      if (header.type === "error") p.reject(internal(`${this.options.label}: ${String(header.message)}`));
      else p.resolve({ header, payload });
    }
  }

  /** Runs the process's own request and writes the answer it waits for. */
  private answer(header: Frame["header"], payload: Buffer): void {
    const reply = (h: Record<string, unknown>, p: Buffer = Buffer.alloc(0)) => this.write({ ...h, type: `${header.type}_result`, id: header.id }, p);
    if (!this.options.onRequest) return reply({ error: "the server takes no requests from this process" });
    this.options.onRequest({ header, payload }).then(
      (r) => reply(r.header, r.payload),
      (e: unknown) => reply({ error: e instanceof Error ? e.message : String(e) }),
    );
  }

  private write(header: Record<string, unknown>, payload: Buffer): void {
    const h = Buffer.from(JSON.stringify(header), "utf8");
    const prefix = Buffer.alloc(8);
    prefix.writeUInt32LE(h.byteLength, 0);
    prefix.writeUInt32LE(payload.byteLength, 4);
    this.child.stdin.write(Buffer.concat([prefix, h, payload]));
  }

  private fail(e: TritonError): void {
    this.dead ??= e;
    const all = [...this.pending.values()];
    this.pending.clear();
    for (const p of all) p.reject(this.dead);
  }
}
