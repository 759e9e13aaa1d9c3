/**
 * Log lines in Triton's format, so that operators' log parsers keep working:
 *   I1125 22:50:01.123456 4242 server.ts:120] "message"
 * Tables (model, backend, option) are printed as a heading line followed by
 * the table, as Triton does. `json` (Tritium's) writes one JSON object per
 * line instead: {"time","level","pid","file","message"}.
 */
import fs from "node:fs";

export type LogLevel = "I" | "W" | "E" | "V";
export type LogFormat = "default" | "ISO8601" | "json";

export interface LoggerOptions {
  info: boolean;
  warning: boolean;
  error: boolean;
  verbose: number;
  format: LogFormat;
  /** `--log-file`: append to this file instead of stderr ("" = stderr). Fixed for the logger's life. */
  file: string;
}

const LEVEL_NAMES: Record<LogLevel, string> = { I: "INFO", W: "WARNING", E: "ERROR", V: "VERBOSE" };

export class Logger {
  options: LoggerOptions;
  private readonly write: (line: string) => void;
  /** The log file's descriptor, owned by this logger (closed by close()). */
  private fd: number | undefined;

  constructor(options: Partial<LoggerOptions> = {}, write?: (line: string) => void) {
    this.options = { info: true, warning: true, error: true, verbose: 0, format: "default", file: "", ...options };
    if (!write && this.options.file) {
      // Synchronous appends: lines stay whole and in order, and none is lost on a crash.
      const fd = fs.openSync(this.options.file, "a");
      this.fd = fd;
      write = (l) => {
        if (this.fd !== undefined) fs.writeSync(fd, l);
      };
    }
    this.write = write ?? ((l) => process.stderr.write(l));
  }

  /** Closes the log file, if any; later lines are dropped. */
  close(): void {
    if (this.fd === undefined) return;
    const fd = this.fd;
    this.fd = undefined;
    fs.closeSync(fd);
  }

  info(source: string, msg: string): void {
    if (this.options.info) this.emit("I", source, msg);
  }
  warn(source: string, msg: string): void {
    if (this.options.warning) this.emit("W", source, msg);
  }
  error(source: string, msg: string): void {
    if (this.options.error) this.emit("E", source, msg);
  }
  verbose(level: number, source: string, msg: string): void {
    if (this.options.verbose >= level) this.emit("V", source, msg);
  }
  /** A heading line followed by a table, as Triton prints its start-up tables. */
  table(source: string, table: string): void {
    if (!this.options.info) return;
    if (this.options.format === "json") this.write(this.json("I", source, table));
    else this.write(`${this.prefix("I", source)}\n${table}\n`);
  }

  private json(level: LogLevel, source: string, msg: string): string {
    return `${JSON.stringify({ time: new Date().toISOString(), level: LEVEL_NAMES[level], pid: process.pid, file: source, message: msg })}\n`;
  }

  private emit(level: LogLevel, source: string, msg: string): void {
    if (this.options.format === "json") return this.write(this.json(level, source, msg));
    // Single-line messages are JSON-quoted as in current Triton releases.
    const body = msg.includes("\n") ? msg : JSON.stringify(msg);
    this.write(`${this.prefix(level, source)} ${body}\n`);
  }

  private prefix(level: LogLevel, source: string): string {
    const d = new Date();
    const p2 = (n: number) => String(n).padStart(2, "0");
    if (this.options.format === "ISO8601") {
      const iso = `${d.getUTCFullYear()}-${p2(d.getUTCMonth() + 1)}-${p2(d.getUTCDate())}T${p2(d.getUTCHours())}:${p2(d.getUTCMinutes())}:${p2(d.getUTCSeconds())}Z`;
      return `${iso} ${level} ${process.pid} ${source}]`;
    }
    const micros = String(d.getUTCMilliseconds() * 1000 + Math.floor(Number(process.hrtime.bigint() % 1000n))).padStart(6, "0");
    return `${level}${p2(d.getUTCMonth() + 1)}${p2(d.getUTCDate())} ${p2(d.getUTCHours())}:${p2(d.getUTCMinutes())}:${p2(d.getUTCSeconds())}.${micros} ${process.pid} ${source}]`;
  }
}

/**
 * Renders rows as Triton's bordered table: `+`, `-`, `|`, one space of padding.
 * Cells wider than `maxCell` are hard-wrapped, as Triton wraps to its terminal.
 */
export function renderTable(header: string[], rows: string[][], maxCell = 60): string {
  const wrap = (s: string): string[] => {
    const lines: string[] = [];
    for (let i = 0; i < Math.max(1, s.length); i += maxCell) lines.push(s.slice(i, i + maxCell));
    return lines;
  };
  const widths = header.map((h, i) => Math.min(maxCell, Math.max(h.length, ...rows.map((r) => (r[i] ?? "").length))));
  const sep = "+" + widths.map((w) => "-".repeat(w + 2)).join("+") + "+";
  const line = (cells: string[]): string[] => {
    const wrapped = cells.map(wrap);
    const height = Math.max(...wrapped.map((w) => w.length));
    const out: string[] = [];
    for (let r = 0; r < height; r++) {
      out.push("|" + widths.map((w, i) => " " + (wrapped[i]![r] ?? "").padEnd(w) + " ").join("|") + "|");
    }
    return out;
  };
  return [sep, ...line(header), sep, ...rows.flatMap(line), sep].join("\n");
}
