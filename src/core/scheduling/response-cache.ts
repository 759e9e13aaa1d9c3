import { createHash } from "node:crypto";
import type { RequestedOutput } from "../requests/inference.js";
import type { Tensor } from "../tensors/tensor.js";

/**
 * Triton's local response cache: identical requests (same model, version,
 * inputs and requested outputs) are answered without executing. Bounded by
 * bytes, least recently used entries leave first. One cache serves every
 * model that sets `response_cache { enable: true }`.
 */
/**
 * What an entry costs beyond its tensor bytes (the entry and its Map slot;
 * per tensor, the object, its shape array and the ArrayBuffer's own header),
 * measured with heap snapshots. Without it, a cache of small outputs held
 * several times its budget.
 */
const ENTRY_OVERHEAD = 256;
const TENSOR_OVERHEAD = 320;

export class ResponseCache {
  private readonly entries = new Map<string, { outputs: Tensor[]; bytes: number }>();
  private used = 0;

  constructor(readonly capacityBytes: number) {}

  /** The cache key of a request: a hash over everything that decides its answer. */
  static key(model: string, version: number, inputs: readonly Tensor[], outputs: readonly RequestedOutput[] | undefined): string {
    const h = createHash("sha256");
    h.update(`${model}\0${version}\0`);
    for (const t of [...inputs].sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0))) {
      h.update(`${t.name}\0${t.datatype}\0${t.shape.join(",")}\0`);
      h.update(t.data);
    }
    h.update(JSON.stringify((outputs ?? []).map((o) => [o.name, o.classification ?? 0])));
    return h.digest("base64");
  }

  get(key: string): Tensor[] | undefined {
    const e = this.entries.get(key);
    if (!e) return undefined;
    // Re-insert: Map iteration order is the LRU order.
    this.entries.delete(key);
    this.entries.set(key, e);
    // Every hit gets its own bytes: a caller may transfer or change them.
    return e.outputs.map((t) => ({ ...t, shape: [...t.shape], data: t.data.slice() }));
  }

  /** Stores a copy of the outputs (the originals go to the client). */
  put(key: string, outputs: readonly Tensor[]): void {
    const bytes = outputs.reduce((n, t) => n + t.data.byteLength + TENSOR_OVERHEAD + t.name.length, ENTRY_OVERHEAD + key.length);
    if (bytes > this.capacityBytes || this.entries.has(key)) return;
    while (this.used + bytes > this.capacityBytes) {
      const [oldest, e] = this.entries.entries().next().value as [string, { bytes: number }];
      this.entries.delete(oldest);
      this.used -= e.bytes;
    }
    this.entries.set(key, { outputs: outputs.map((t) => ({ ...t, shape: [...t.shape], data: t.data.slice() })), bytes });
    this.used += bytes;
  }

  get size(): number {
    return this.entries.size;
  }

  get usedBytes(): number {
    return this.used;
  }
}
