/**
 * What every worker-thread instance does around its batches, whatever runs
 * in the thread: count the batches it has accepted so that release waits for
 * them (a counter, not a promise chain: a chain's value would keep every
 * finished batch's results reachable for as long as the instance lives), and
 * replace a thread that has died before the next batch.
 */
import { internal } from "../../core/errors.js";

/** The batches an instance has accepted; release waits for them and refuses new ones. */
export class AcceptedBatches {
  private count = 0;
  private idle: (() => void) | undefined;
  private released: Promise<void> | undefined;

  /** Runs a batch, unless release has begun (then it fails naming `instance`). */
  run<T>(instance: string, batch: () => Promise<T>): Promise<T> {
    if (this.released) return Promise.reject(internal(`model instance '${instance}' has been released`));
    this.count++;
    return batch().finally(() => {
      if (--this.count === 0) this.idle?.();
    });
  }

  /** Once: waits for the batches already accepted, then runs `end`. */
  release(end: () => Promise<void>): Promise<void> {
    this.released ??= (async () => {
      if (this.count > 0) await new Promise<void>((resolve) => (this.idle = resolve));
      await end();
    })();
    return this.released;
  }
}

/** Something that runs in a thread which may die. */
export interface Mortal {
  readonly alive: boolean;
  terminate(): Promise<void>;
}

/** The live thread of an instance, started afresh (once, however many batches ask) after the last one died. */
export class Replaceable<T extends Mortal> {
  private replacing: Promise<T> | undefined;

  /** `start` makes a new thread and resolves once it is ready; without it a dead thread stays dead. */
  constructor(private current: T, private readonly start?: () => Promise<T>) {}

  get(): T {
    return this.current;
  }

  async live(): Promise<T> {
    if (this.current.alive || !this.start) return this.current;
    this.replacing ??= (async () => {
      try {
        const fresh = await this.start!();
        const dead = this.current;
        this.current = fresh;
        void dead.terminate();
        return fresh;
      } finally {
        this.replacing = undefined;
      }
    })();
    return this.replacing;
  }
}
