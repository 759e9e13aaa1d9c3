/**
 * One trace setting in force — the global one, or a model's — with its
 * sampling state, as Triton's `TraceManager::TraceSetting`. An update
 * replaces the scope: its counter restarts, its count is fresh, and traces it
 * still holds are written out.
 *
 * ```
 *   request ──sample()──► every rate-th, while count ≠ 0 (count -1: no limit)
 *                 │
 *                 ▼ collect(json)
 *   buffer ──► <file>.<n>  when log_frequency traces are held, or the count is used up
 *          └─► <file>      at close() when log_frequency is 0 (shutdown or setting change),
 *                          and every APPEND_EVERY traces before that
 * ```
 */
import { invalidReason, type TraceMode, type TraceOverlay, type TraceSetting } from "../settings/trace-settings.js";
import type { TraceFile } from "./trace-file.js";

/** With log_frequency 0, traces held before they are appended to the trace file. */
const APPEND_EVERY = 256;

export class TraceScope {
  /** The setting; `count` goes down as traces are taken, and reads back so (as in Triton). */
  readonly setting: TraceSetting;
  private seen = 0;
  private buffer: string[] = [];

  constructor(
    setting: TraceSetting,
    /** The fields set on this scope itself (empty for a global scope that follows the defaults). */
    readonly overlay: TraceOverlay,
    readonly mode: TraceMode,
    /** Triton mode: where collected traces go. */
    private readonly file: TraceFile | undefined,
  ) {
    this.setting = { ...setting };
  }

  /** True while this scope traces requests. */
  get active(): boolean {
    return invalidReason(this.setting, this.mode) === undefined && this.setting.count !== 0;
  }

  /** Counts one request; true when it is to be traced. */
  sample(): boolean {
    if (!this.active) return false;
    if (++this.seen % this.setting.rate !== 0) return false;
    if (this.setting.count > 0) this.setting.count--;
    return true;
  }

  /** Keeps one trace (Triton mode) until it is time to write. */
  collect(json: string): void {
    if (!this.file) return;
    this.buffer.push(json);
    const f = this.setting.logFrequency;
    // Triton writes the traces out when the count is used up; it tests that
    // as "every request seen was traced", which only holds at rate 1. We
    // write them out whatever the rate.
    if (this.setting.count === 0 || (f !== 0 && this.buffer.length >= f)) {
      this.file.writeIndexed(this.buffer.join(","));
      this.buffer = [];
    } else if (f === 0 && this.buffer.length >= APPEND_EVERY) {
      // Without a log frequency Triton holds every trace until shutdown; a
      // server that runs for weeks cannot. Appending keeps the file one JSON
      // array, so what a reader finds at the end is the same.
      this.file.append(this.buffer.join(","));
      this.buffer = [];
    }
  }

  /** Writes out what the scope still holds: to the next indexed file with a log frequency, else into the trace file. */
  close(): void {
    if (!this.file || this.buffer.length === 0) return;
    const traces = this.buffer.join(",");
    this.buffer = [];
    if (this.setting.logFrequency !== 0) this.file.writeIndexed(traces);
    else this.file.append(traces);
  }
}
