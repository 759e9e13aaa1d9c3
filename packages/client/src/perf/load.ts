/**
 * Load generators: a fixed number of requests always outstanding
 * (concurrency mode), or requests started on a fixed schedule whatever the
 * answers (request-rate mode). Each completed request leaves a record; the
 * measurement reads the records that completed inside its window.
 */
import type { InferTiming } from "../http-client.js";
import type { HttpClient, GrpcClient } from "../index.js";
import type { InputSets } from "./inputs.js";

/** One completed request, times in nanoseconds of `performance.now()`. */
export interface RequestRecord {
  start: number;
  end: number;
  /** Client time building the request. */
  encodeNs: number;
  /** Client time reading the answer. */
  decodeNs: number;
}

const now = (): number => performance.now() * 1e6;

/** A running load: its records so far, and the first failure, which stops it. */
export abstract class Load {
  readonly records: RequestRecord[] = [];
  failure?: Error;
  protected stopped = false;
  #next = 0;
  readonly #inFlight = new Set<Promise<void>>();

  constructor(
    private readonly client: HttpClient | GrpcClient,
    private readonly model: string,
    private readonly modelVersion: string | undefined,
    private readonly inputs: InputSets,
  ) {}

  /** Sends one request (cycling through the input sets) and records it when it completes. */
  protected send(): Promise<void> {
    const inputs = this.inputs[this.#next++ % this.inputs.length]!;
    const timing: InferTiming = { encodeNs: 0, decodeNs: 0 };
    const start = now();
    const done = this.client.infer(this.model, inputs, { modelVersion: this.modelVersion }, timing).then(
      () => {
        this.records.push({ start, end: now(), encodeNs: timing.encodeNs, decodeNs: timing.decodeNs });
      },
      (e: Error) => {
        this.failure ??= e;
        this.stopped = true;
      },
    );
    this.#inFlight.add(done);
    void done.finally(() => this.#inFlight.delete(done));
    return done;
  }

  /** Drops records that ended before `t` (the measurement has read them). */
  forget(t: number): void {
    let keep = 0;
    while (keep < this.records.length && this.records[keep]!.end < t) keep++;
    this.records.splice(0, keep);
  }

  /** Starts generating. */
  abstract start(): void;

  /** Stops generating and waits for the requests in flight. */
  async stop(): Promise<void> {
    this.stopped = true;
    await Promise.all([...this.#inFlight]);
  }
}

/** `n` workers, each sending its next request when its last is answered. */
export class ConcurrencyLoad extends Load {
  constructor(client: HttpClient | GrpcClient, model: string, version: string | undefined, inputs: InputSets, private readonly concurrency: number) {
    super(client, model, version, inputs);
  }

  start(): void {
    for (let i = 0; i < this.concurrency; i++) {
      void (async () => {
        while (!this.stopped) await this.send();
      })();
    }
  }
}

/** Requests started every 1/rate seconds, answered or not (perf_analyzer's constant distribution). */
export class RequestRateLoad extends Load {
  #timer?: NodeJS.Timeout;

  constructor(client: HttpClient | GrpcClient, model: string, version: string | undefined, inputs: InputSets, private readonly rate: number) {
    super(client, model, version, inputs);
  }

  start(): void {
    const interval = 1000 / this.rate;
    const t0 = performance.now();
    let sent = 0;
    // Timers fire late under load: each tick sends every request whose time has come, so the rate holds on average.
    const tick = () => {
      if (this.stopped) return;
      const due = Math.floor((performance.now() - t0) / interval) + 1;
      while (sent < due) {
        void this.send();
        sent++;
      }
      this.#timer = setTimeout(tick, Math.max(0, t0 + sent * interval - performance.now()));
    };
    tick();
  }

  override async stop(): Promise<void> {
    clearTimeout(this.#timer);
    await super.stop();
  }
}
