import { unavailable } from "../errors.js";

/**
 * Queue policy of one priority level (Triton's ModelQueuePolicy).
 * Timeouts are microseconds; 0 means none.
 */
export interface QueuePolicy {
  timeoutAction: "REJECT" | "DELAY";
  defaultTimeoutUs: number;
  allowTimeoutOverride: boolean;
  /** 0: unlimited. */
  maxQueueSize: number;
}

export interface QueueOptions {
  /** Number of priority levels; 0 or 1 means a single FIFO queue. */
  priorityLevels: number;
  /** Level for requests that give no priority (1 is highest). */
  defaultPriorityLevel: number;
  defaultPolicy: QueuePolicy;
  /** Policies by level; a level without one uses the default. */
  levelPolicies: ReadonlyMap<number, QueuePolicy>;
}

/** What the queue needs to know of an item. */
export interface Queued {
  /** process.hrtime.bigint() at enqueue. */
  enqueuedNs: bigint;
  /** Assigned by the queue. */
  level?: number;
  /** Absolute deadline (ns); undefined: none. */
  deadlineNs?: bigint;
}

export const NO_POLICY: QueuePolicy = { timeoutAction: "REJECT", defaultTimeoutUs: 0, allowTimeoutOverride: false, maxQueueSize: 0 };

/**
 * The requests of a model waiting for an instance, by priority level (1 is
 * served first), FIFO within a level. A request whose queue timeout passes
 * is rejected (REJECT) or moved behind every request that has not timed out
 * (DELAY), as Triton's dynamic batcher does.
 */
export class RequestQueue<T extends Queued> {
  private readonly levels: T[][];
  /** DELAY-ed requests whose timeout passed: served after all others. */
  private readonly delayed: T[] = [];
  private readonly levelCount: number;

  constructor(private readonly options: QueueOptions) {
    this.levelCount = Math.max(1, options.priorityLevels);
    this.levels = Array.from({ length: this.levelCount }, () => []);
  }

  get length(): number {
    let n = this.delayed.length;
    for (const l of this.levels) n += l.length;
    return n;
  }

  /**
   * Adds a request. `priority` (request parameter; 0 = default) and
   * `timeoutUs` (request parameter, honoured only when the policy allows
   * overriding, and only to shorten) pick its level and deadline.
   * Throws UNAVAILABLE "Exceeds maximum queue size" when its level is full.
   */
  push(item: T, priority: number, timeoutUs: number | undefined, model: string): void {
    // 0, or a level the model does not have, means the default level (Triton's SetPriority).
    let level = priority > 0 && priority <= this.levelCount ? priority : this.options.defaultPriorityLevel || 1;
    level = Math.min(Math.max(1, level), this.levelCount);
    const policy = this.policy(level);
    const queue = this.levels[level - 1]!;
    if (policy.maxQueueSize > 0 && queue.length >= policy.maxQueueSize) {
      throw unavailable(`Exceeds maximum queue size for model '${model}'`);
    }
    let timeout = policy.defaultTimeoutUs;
    if (timeoutUs !== undefined && timeoutUs > 0 && policy.allowTimeoutOverride && (timeout === 0 || timeoutUs < timeout)) {
      timeout = timeoutUs;
    }
    item.level = level;
    if (timeout > 0) item.deadlineNs = item.enqueuedNs + BigInt(Math.round(timeout * 1000));
    queue.push(item);
  }

  /** Items in the order they will be served. */
  *ordered(): Iterable<T> {
    for (const l of this.levels) yield* l;
    yield* this.delayed;
  }

  first(): T | undefined {
    for (const l of this.levels) if (l.length) return l[0];
    return this.delayed[0];
  }

  /** Removes the given items (taken for a batch, or cancelled). */
  remove(items: readonly T[]): void {
    const set = new Set(items);
    for (const l of [...this.levels, this.delayed]) {
      if (l.length === 0) continue;
      let w = 0;
      for (let r = 0; r < l.length; r++) if (!set.has(l[r]!)) l[w++] = l[r]!;
      l.length = w;
    }
  }

  /**
   * Applies timeouts at `nowNs`: returns the requests to reject; DELAY-ed
   * ones move to the back.
   */
  expire(nowNs: bigint): T[] {
    const rejected: T[] = [];
    for (const [i, l] of this.levels.entries()) {
      const policy = this.policy(i + 1);
      const keep: T[] = [];
      for (const item of l) {
        if (item.deadlineNs !== undefined && item.deadlineNs <= nowNs) {
          item.deadlineNs = undefined;
          if (policy.timeoutAction === "DELAY") this.delayed.push(item);
          else rejected.push(item);
        } else keep.push(item);
      }
      if (keep.length !== l.length) this.levels[i] = keep;
    }
    return rejected;
  }

  /** The earliest deadline among queued requests, to arm a timer for it. */
  nextDeadline(): bigint | undefined {
    let next: bigint | undefined;
    for (const l of this.levels) for (const item of l) if (item.deadlineNs !== undefined && (next === undefined || item.deadlineNs < next)) next = item.deadlineNs;
    return next;
  }

  private policy(level: number): QueuePolicy {
    return this.options.levelPolicies.get(level) ?? this.options.defaultPolicy;
  }
}
