/**
 * A one-way queue of byte records between two threads, over one
 * SharedArrayBuffer: one thread writes, the other reads. Neither side
 * allocates or clones per record, and a reader that is already awake (the
 * other thread's event loop is busy, or the reader is draining a backlog)
 * costs the writer no wake-up at all. Only a reader that has gone to sleep is
 * woken, with `Atomics.notify`; it sleeps with `Atomics.waitAsync`, so its
 * event loop stays free for everything else (timers, `postMessage`, ONNX
 * Runtime's own `setImmediate`).
 *
 * Layout: a 64-byte control block (Int32 words: head, tail, sleeping, closed),
 * then `capacity` bytes of records. head and tail count bytes written and
 * read since the start, modulo 2^32; capacity is a power of two, so a
 * position is the counter masked. A record is an 8-byte header (its length)
 * and its bytes, padded to 8; a record never wraps: a SKIP header fills the
 * end of the buffer and the record starts again at 0.
 */

const HEAD = 0;
const TAIL = 1;
const SLEEPING = 2;
const CLOSED = 3;
const CONTROL_BYTES = 64;
const HEADER = 8;
/** Header length of a filler that sends the reader back to position 0. */
const SKIP = 0xffffffff;

const align8 = (n: number) => (n + 7) & ~7;

export class ByteRing {
  /** The shared memory, to hand to the other thread (`ByteRing.attach`). */
  readonly shared: SharedArrayBuffer;
  /** Largest record that `reserve` can ever return space for. */
  readonly maxRecord: number;
  private readonly ctl: Int32Array;
  private readonly data: Uint8Array;
  private readonly view: DataView;
  private readonly mask: number;
  private readonly capacity: number;

  private constructor(shared: SharedArrayBuffer) {
    this.shared = shared;
    this.capacity = shared.byteLength - CONTROL_BYTES;
    if (this.capacity <= 0 || (this.capacity & (this.capacity - 1)) !== 0) throw new RangeError("ring capacity must be a power of two");
    this.mask = this.capacity - 1;
    this.ctl = new Int32Array(shared, 0, CONTROL_BYTES / 4);
    this.data = new Uint8Array(shared, CONTROL_BYTES, this.capacity);
    this.view = new DataView(shared, CONTROL_BYTES, this.capacity);
    // A quarter of the ring, so several records of the largest size can be in flight.
    this.maxRecord = this.capacity / 4 - HEADER;
  }

  /** A new ring of `capacity` bytes (a power of two). */
  static create(capacity: number): ByteRing {
    return new ByteRing(new SharedArrayBuffer(CONTROL_BYTES + capacity));
  }

  /** The other thread's handle on a ring made by `create`. */
  static attach(shared: SharedArrayBuffer): ByteRing {
    return new ByteRing(shared);
  }

  // -------------------------------------------------------------------------
  // Writer

  /**
   * Space for a record of `length` bytes, as a view to fill; `commit` then
   * publishes it. Undefined when the record is larger than `maxRecord` or the
   * reader has not yet freed enough space.
   */
  reserve(length: number): Uint8Array | undefined {
    if (length > this.maxRecord) return undefined;
    const need = HEADER + align8(length);
    const head = Atomics.load(this.ctl, HEAD);
    const used = (head - Atomics.load(this.ctl, TAIL)) >>> 0;
    const pos = head & this.mask;
    const toEnd = this.capacity - pos;
    const skip = need > toEnd ? toEnd : 0;
    if (used + skip + need > this.capacity) return undefined;
    const start = (pos + skip) & this.mask;
    return this.data.subarray(start + HEADER, start + HEADER + length);
  }

  /** Publishes the record last reserved, `length` bytes long, and wakes a sleeping reader. */
  commit(length: number): void {
    const need = HEADER + align8(length);
    let head = Atomics.load(this.ctl, HEAD);
    const pos = head & this.mask;
    if (need > this.capacity - pos) {
      this.view.setUint32(pos, SKIP, true);
      head = (head + this.capacity - pos) | 0;
    }
    this.view.setUint32(head & this.mask, length, true);
    Atomics.store(this.ctl, HEAD, (head + need) | 0);
    // Seq-cst store of head, then load of the flag: a reader that set the flag
    // before this load is woken; one that sets it after sees the new head.
    if (Atomics.load(this.ctl, SLEEPING) === 1) {
      Atomics.store(this.ctl, SLEEPING, 0);
      Atomics.notify(this.ctl, SLEEPING);
    }
  }

  // -------------------------------------------------------------------------
  // Reader

  /** The oldest unread record, as a view valid until `release`; undefined when empty. */
  peek(): Uint8Array | undefined {
    let tail = Atomics.load(this.ctl, TAIL);
    if (tail === Atomics.load(this.ctl, HEAD)) return undefined;
    let pos = tail & this.mask;
    let length = this.view.getUint32(pos, true);
    if (length === SKIP) {
      tail = (tail + this.capacity - pos) | 0;
      Atomics.store(this.ctl, TAIL, tail);
      pos = 0;
      length = this.view.getUint32(0, true);
    }
    return this.data.subarray(pos + HEADER, pos + HEADER + length);
  }

  /** Frees the record `peek` returned. */
  release(record: Uint8Array): void {
    const tail = Atomics.load(this.ctl, TAIL);
    Atomics.store(this.ctl, TAIL, (tail + HEADER + align8(record.byteLength)) | 0);
  }

  /**
   * Resolves when a record may be waiting (or the ring is closed); undefined
   * when one already is, so the caller reads again at once without a turn of
   * its event loop.
   */
  waitForRecord(): Promise<unknown> | undefined {
    Atomics.store(this.ctl, SLEEPING, 1);
    if (Atomics.load(this.ctl, HEAD) !== Atomics.load(this.ctl, TAIL) || this.closed) {
      Atomics.store(this.ctl, SLEEPING, 0);
      return undefined;
    }
    const w = Atomics.waitAsync(this.ctl, SLEEPING, 1);
    return w.async ? w.value : undefined;
  }

  /** Marks the ring closed and wakes a reader waiting on it, so its wait ends. */
  close(): void {
    Atomics.store(this.ctl, CLOSED, 1);
    Atomics.store(this.ctl, SLEEPING, 0);
    Atomics.notify(this.ctl, SLEEPING);
  }

  get closed(): boolean {
    return Atomics.load(this.ctl, CLOSED) === 1;
  }
}
