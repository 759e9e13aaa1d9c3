import type { BackendInstance } from "../backend.js";
import type { BatchRequest, BatchResult } from "../requests/inference.js";
import { invalidArg } from "../errors.js";

/** Resources one instance needs to execute (`instance_group.rate_limiter`). */
export interface InstanceResources {
  resources: { name: string; global: boolean; count: number }[];
  /** Weight among waiting instances: priority 2 gets half the turns of priority 1. */
  priority: number;
}

interface Waiter {
  need: InstanceResources;
  device: number;
  grant: () => void;
  /** Turns already taken by this instance, scaled by its priority. */
  key: string;
}

/**
 * Triton's rate limiter (`--rate-limit=execution_count`): an instance runs a
 * batch only when the resources it declares are free. Resource totals come
 * from `--rate-limit-resource=<name>:<count>[:<device>]`, or, when a resource
 * is not listed, from the largest amount any one instance asks for (so
 * every instance can run, one at a time). Global resources are shared by
 * all devices; others are per device (everything is device 0 here).
 */
export class RateLimiter {
  /** Units of each resource in all; `available` is what is free now. */
  private readonly total = new Map<string, number>();
  private readonly available = new Map<string, number>();
  private readonly waiting: Waiter[] = [];
  private readonly turns = new Map<string, number>();

  constructor(private readonly explicit: ReadonlyMap<string, number>) {}

  /** Registers what an instance may ask for, so totals cover it. */
  register(need: InstanceResources, device = 0): void {
    for (const r of need.resources) {
      const k = this.key(r, device);
      const explicit = this.explicit.get(r.name);
      if (explicit !== undefined && r.count > explicit) {
        throw invalidArg(`rate limiter resource '${r.name}' has ${explicit} units but an instance needs ${r.count}`);
      }
      // Raising the total frees only the added units: units held right now stay held.
      const before = this.total.get(k) ?? 0;
      const after = explicit ?? Math.max(before, r.count);
      if (after > before) {
        this.total.set(k, after);
        this.available.set(k, (this.available.get(k) ?? 0) + (after - before));
      }
    }
  }

  /** Waits for the resources; resolves with the function that gives them back. */
  acquire(need: InstanceResources, instanceKey: string, device = 0): Promise<() => void> {
    return new Promise((resolve) => {
      const waiter: Waiter = {
        need,
        device,
        key: instanceKey,
        grant: () => resolve(() => this.giveBack(need, device)),
      };
      this.waiting.push(waiter);
      this.grantWaiting();
    });
  }

  private giveBack(need: InstanceResources, device: number): void {
    for (const r of need.resources) {
      const k = this.key(r, device);
      this.available.set(k, (this.available.get(k) ?? 0) + r.count);
    }
    this.grantWaiting();
  }

  private grantWaiting(): void {
    // Fewest weighted turns first: priority acts as a weight between instances.
    this.waiting.sort((a, b) => this.weight(a) - this.weight(b));
    for (let i = 0; i < this.waiting.length; ) {
      const w = this.waiting[i]!;
      if (!w.need.resources.every((r) => (this.available.get(this.key(r, w.device)) ?? 0) >= r.count)) {
        i++;
        continue;
      }
      for (const r of w.need.resources) {
        const k = this.key(r, w.device);
        this.available.set(k, this.available.get(k)! - r.count);
      }
      this.turns.set(w.key, (this.turns.get(w.key) ?? 0) + 1);
      this.waiting.splice(i, 1);
      w.grant();
    }
  }

  private weight(w: Waiter): number {
    return (this.turns.get(w.key) ?? 0) * Math.max(1, w.need.priority);
  }

  private key(r: { name: string; global: boolean }, device: number): string {
    return r.global ? `g:${r.name}` : `d${device}:${r.name}`;
  }
}

/** An instance that takes its resources from the rate limiter around every execution. */
export class RateLimitedInstance implements BackendInstance {
  constructor(
    private readonly inner: BackendInstance,
    private readonly limiter: RateLimiter,
    private readonly need: InstanceResources,
  ) {
    limiter.register(need);
  }

  get name(): string {
    return this.inner.name;
  }

  async execute(requests: BatchRequest[]): Promise<BatchResult> {
    const release = await this.limiter.acquire(this.need, this.inner.name);
    try {
      return await this.inner.execute(requests);
    } finally {
      release();
    }
  }

  release(): Promise<void> {
    return this.inner.release();
  }
}

/** `--rate-limit-resource=<name>:<count>[:<device>]` entries → totals by name. */
export function parseRateLimitResources(entries: readonly string[]): Map<string, number> {
  const out = new Map<string, number>();
  for (const e of entries) {
    const [name, count] = e.split(":");
    const n = Number(count);
    if (!name || !Number.isInteger(n) || n < 0) throw invalidArg(`--rate-limit-resource expects <name>:<count>[:<device>], got '${e}'`);
    out.set(name, n);
  }
  return out;
}
