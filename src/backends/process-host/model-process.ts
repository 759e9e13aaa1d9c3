/**
 * One model instance in a child process of its own (Python and PyTorch
 * models: both run `python/tritium_host.py`). The server owns the process: it
 * starts it, talks to it in frames over its stdin/stdout, fails the calls in
 * flight when it dies, and ends it on close.
 *
 * A frame: u32 header length, u32 payload length (little-endian), a JSON
 * header with `type` and `id`, then the payload (tensor bytes, laid out as
 * the header says). A payload of {@link SHM_THRESHOLD} bytes or more travels
 * in the writer's shared-memory file instead (see shm-files.ts), at the
 * header's `shm: {offset, length}`; the reader answers with a `release`
 * frame for it. The child answers each call with a frame of the same id.
 */
import { spawn, type ChildProcessWithoutNullStreams } from "node:child_process";
import { TritonError, internal, isErrorCode } from "../../core/errors.js";
import { endsWithin } from "../instance-life.js";
import { SHM_THRESHOLD, ShmChannel, shmDir } from "./shm-files.js";

/** How long `close` waits for the process to finish cleanly before killing it. */
const CLOSE_TIMEOUT_MS = 10_000;

export interface Frame {
  header: { type: string; id: number; [key: string]: unknown };
  payload: Buffer;
}

/** Sends one answer to a request the process made; several for a streamed one. */
export type Reply = (header: Record<string, unknown>, payload?: readonly Uint8Array[]) => void;

export interface ModelProcessOptions {
  /** The program and its arguments, e.g. `python3 python/tritium_host.py`. */
  command: string;
  args: string[];
  env: NodeJS.ProcessEnv;
  /** Names the instance in error messages. */
  label: string;
  /** Lines the process writes to stderr (its prints, its logger). */
  onLog: (line: string) => void;
  /** A request the process makes of the server (BLS); its answers go back as `<type>_result` frames with the same id. */
  onRequest?: (frame: Frame, reply: Reply) => void;
  /** Frames that answer no call and ask nothing (a decoupled model's responses). */
  onNotice?: (frame: Frame) => void;
}

let processes = 0;

/** The error a child's `error` frame carries (its code where the model gave one). */
export function frameError(label: string, header: Record<string, unknown>): TritonError {
  const code = isErrorCode(header.code) ? header.code : "INTERNAL";
  return new TritonError(code, `${label}: ${String(header.error)}`);
}

export class ModelProcess {
  private readonly child: ChildProcessWithoutNullStreams;
  private readonly pending = new Map<number, { resolve: (f: Frame) => void; reject: (e: TritonError) => void }>();
  private nextId = 1;
  /** Bytes received and not yet framed: kept as chunks, joined once a whole frame is there. */
  private chunks: Buffer[] = [];
  private received = 0;
  private dead: TritonError | undefined;
  private closing = false;
  private readonly exited: Promise<void>;
  private readonly shm = new ShmChannel(`p${process.pid}-${++processes}`);
  /** Names the instance in error messages. */
  readonly label: string;

  constructor(private readonly options: ModelProcessOptions) {
    this.label = options.label;
    this.child = spawn(options.command, options.args, {
      env: { ...options.env, TRITIUM_SHM_DIR: shmDir(), TRITIUM_SHM_IN: this.shm.outName, TRITIUM_SHM_OUT: this.shm.inName, TRITIUM_SHM_THRESHOLD: String(SHM_THRESHOLD) },
      stdio: ["pipe", "pipe", "pipe"],
    });
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
        this.shm.close();
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
  call(header: Omit<Frame["header"], "id">, payload: readonly Uint8Array[] = []): Promise<Frame> {
    return this.send(header, payload).reply;
  }

  /** The same, with the frame's id (which the child's notices about it carry). */
  send(header: Omit<Frame["header"], "id">, payload: readonly Uint8Array[] = []): { id: number; reply: Promise<Frame> } {
    if (this.dead) return { id: -1, reply: Promise.reject(this.dead) };
    const id = this.nextId++;
    if (this.pending.size === 0) this.hold(true);
    const reply = new Promise<Frame>((resolve, reject) => {
      this.pending.set(id, { resolve, reject });
      this.write({ ...header, id }, payload);
    });
    return { id, reply };
  }

  /** Sends a frame that expects no answer (e.g. a cancellation). */
  tell(header: Frame["header"]): void {
    if (!this.dead) this.write(header, []);
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

  /** Ends the process at once; the calls in flight fail with `reason` when given. */
  async terminate(reason?: TritonError): Promise<void> {
    if (reason) this.fail(reason);
    this.closing = true;
    // Until its exit is seen: an awaited end must keep the server's event loop running.
    this.hold(true);
    if (this.child.exitCode === null && this.child.signalCode === null) this.child.kill("SIGKILL");
    await this.exited;
  }

  private receive(chunk: Buffer): void {
    this.chunks.push(chunk);
    this.received += chunk.byteLength;
    for (;;) {
      if (this.received < 8) return;
      let head = this.chunks[0]!;
      if (head.byteLength < 8) head = this.join();
      const hl = head.readUInt32LE(0);
      const need = 8 + hl + head.readUInt32LE(4);
      if (this.received < need) return;
      if (head.byteLength < need) head = this.join();
      const header = JSON.parse(head.toString("utf8", 8, 8 + hl)) as Frame["header"];
      // The payload is copied out when it shares its chunk with later frames, so the chunk can go.
      let payload = head.byteLength === need ? head.subarray(8 + hl) : Buffer.from(head.subarray(8 + hl, need));
      if (head.byteLength === need) this.chunks.shift();
      else this.chunks[0] = head.subarray(need);
      this.received -= need;
      const shm = header.shm as { offset: number; length: number } | undefined;
      if (shm) {
        payload = this.shm.read(shm.offset, shm.length);
        this.write({ type: "release", id: 0, offset: shm.offset }, []);
      }
      this.dispatch(header, payload);
    }
  }

  private join(): Buffer {
    const all = Buffer.concat(this.chunks);
    this.chunks = [all];
    return all;
  }

  private dispatch(header: Frame["header"], payload: Buffer): void {
    if (header.type === "release") return this.shm.release(header.offset as number);
    if (header.type === "bls") {
      const reply: Reply = (h, p = []) => this.write({ ...h, type: `${header.type}_result`, id: header.id }, p);
      if (!this.options.onRequest) return reply({ error: "the server takes no requests from this process", code: "UNSUPPORTED" });
      this.options.onRequest({ header, payload }, reply);
      return;
    }
    if (header.id === -1) {
      this.options.onNotice?.({ header, payload });
      return;
    }
    const p = this.pending.get(header.id);
    this.pending.delete(header.id);
    if (this.pending.size === 0 && !this.closing) this.hold(false);
    if (!p) return;
    if (header.type === "error") p.reject(frameError(this.options.label, header));
    else p.resolve({ header, payload });
  }

  private write(header: Record<string, unknown>, payload: readonly Uint8Array[]): void {
    if (this.dead) return;
    let size = 0;
    for (const p of payload) size += p.byteLength;
    if (size >= SHM_THRESHOLD) {
      header = { ...header, shm: this.shm.write(payload, size) };
      payload = [];
      size = 0;
    }
    const h = Buffer.from(JSON.stringify(header), "utf8");
    const prefix = Buffer.allocUnsafe(8);
    prefix.writeUInt32LE(h.byteLength, 0);
    prefix.writeUInt32LE(size, 4);
    this.child.stdin.write(size ? Buffer.concat([prefix, h, ...payload]) : Buffer.concat([prefix, h]));
  }

  private fail(e: TritonError): void {
    this.dead ??= e;
    const all = [...this.pending.values()];
    this.pending.clear();
    for (const p of all) p.reject(this.dead);
  }
}
