/**
 * Who may call what, for both network frontends: Triton's restricted API
 * groups (`--http-restricted-api`, `--grpc-restricted-protocol`: a group
 * answers only requests that carry a given header) and Tritium's API keys
 * (`--api-key-file`: hashed keys, required on the groups `--api-key-apis`
 * names). Frontends map each route or RPC to its group and ask
 * {@link AccessPolicy.check}; the keys never reach a log or a trace.
 */
import { createHash, timingSafeEqual } from "node:crypto";
import fs from "node:fs/promises";

/** Triton's API (HTTP) / protocol (gRPC) groups. */
export const API_GROUPS = ["health", "metadata", "inference", "shared-memory", "model-config", "model-repository", "statistics", "trace", "logging"] as const;
export type ApiGroup = (typeof API_GROUPS)[number];

/** A group's required header: its name (lower case) and value. */
export interface Restriction {
  header: string;
  value: string;
}

const isGroup = (s: string): s is ApiGroup => (API_GROUPS as readonly string[]).includes(s);

/**
 * Parses Triton's `<api>,<api>,...:<key>=<value>` values of `flag`. gRPC
 * headers are named `triton-grpc-protocol-<key>` (`prefix`), HTTP headers
 * `<key>`. A group may be restricted once only, as in Triton.
 */
export function parseRestrictions(values: readonly string[], flag: string, prefix = ""): Map<ApiGroup, Restriction> {
  const out = new Map<ApiGroup, Restriction>();
  for (const value of values) {
    const colon = value.lastIndexOf(":");
    const eq = value.indexOf("=", colon);
    if (colon <= 0 || eq < 0 || eq === colon + 1) {
      throw new Error(`--${flag}: '${value}' must be <api>,<api>,...:<key>=<value>`);
    }
    const restriction = { header: `${prefix}${value.slice(colon + 1, eq)}`.toLowerCase(), value: value.slice(eq + 1) };
    for (const name of value.slice(0, colon).split(",").map((s) => s.trim())) {
      if (!isGroup(name)) throw new Error(`--${flag}: unknown API '${name}'; known: ${API_GROUPS.join(", ")}`);
      if (out.has(name)) throw new Error(`--${flag}: API '${name}' is restricted more than once`);
      out.set(name, restriction);
    }
  }
  return out;
}

/** Parses `--api-key-apis`: group names, or `all`. */
export function parseGroups(value: string, flag: string): Set<ApiGroup> {
  const names = value.split(",").map((s) => s.trim()).filter(Boolean);
  if (names.includes("all")) return new Set(API_GROUPS);
  for (const n of names) if (!isGroup(n)) throw new Error(`--${flag}: unknown API '${n}'; known: all, ${API_GROUPS.join(", ")}`);
  return new Set(names as ApiGroup[]);
}

const sha256 = (s: string) => createHash("sha256").update(s, "utf8").digest();

/**
 * The accepted API keys, as SHA-256 digests: a file holds one per line (64
 * hex digits; blank lines and `#` comments ignored), so the file never
 * holds a usable key.
 */
export class ApiKeys {
  private constructor(private readonly digests: readonly Buffer[]) {}

  /** Reads `--api-key-file`; errors name the file and line. */
  static async fromFile(file: string): Promise<ApiKeys> {
    let text: string;
    try {
      text = await fs.readFile(file, "utf8");
    } catch (e) {
      throw new Error(`--api-key-file: cannot read '${file}': ${(e as Error).message}`);
    }
    const digests: Buffer[] = [];
    for (const [i, raw] of text.split(/\r?\n/).entries()) {
      const line = raw.trim();
      if (line === "" || line.startsWith("#")) continue;
      if (!/^[0-9a-fA-F]{64}$/.test(line)) throw new Error(`--api-key-file: '${file}' line ${i + 1} is not a SHA-256 digest (64 hex digits)`);
      digests.push(Buffer.from(line, "hex"));
    }
    if (digests.length === 0) throw new Error(`--api-key-file: '${file}' holds no key digest`);
    return new ApiKeys(digests);
  }

  /** Keys given as they are (the in-process API and tests). */
  static of(keys: readonly string[]): ApiKeys {
    return new ApiKeys(keys.map(sha256));
  }

  /** Whether `key` is one of them: every digest is compared in constant time, so timing tells nothing. */
  accepts(key: string | undefined): boolean {
    if (key === undefined || key === "") return false;
    const digest = sha256(key);
    let ok = false;
    for (const d of this.digests) ok = timingSafeEqual(d, digest) || ok;
    return ok;
  }
}

/** Why a request was refused. */
export type Refusal = { kind: "restricted"; header: string } | { kind: "api-key" };

/** The message a client gets for a missing or wrong API key (the same for both, so it tells nothing). */
export const API_KEY_MESSAGE = "a valid API key is required: send it as 'Authorization: Bearer <key>' or 'X-API-Key: <key>'";

/** The restrictions and keys of one frontend. */
export class AccessPolicy {
  constructor(
    private readonly restricted: ReadonlyMap<ApiGroup, Restriction> = new Map(),
    private readonly keys?: ApiKeys,
    private readonly keyGroups: ReadonlySet<ApiGroup> = new Set(),
  ) {}

  /** Nothing restricted and no keys: every request may pass without a look at its headers. */
  get open(): boolean {
    return this.restricted.size === 0 && (!this.keys || this.keyGroups.size === 0);
  }

  /** Checks a request to `group`; `header` reads one of its headers (lower-case name). */
  check(group: ApiGroup, header: (name: string) => string | undefined): Refusal | undefined {
    const r = this.restricted.get(group);
    if (r && header(r.header) !== r.value) return { kind: "restricted", header: r.header };
    if (this.keys && this.keyGroups.has(group) && !this.keys.accepts(presentedKey(header))) return { kind: "api-key" };
    return undefined;
  }
}

/** The key of `Authorization: Bearer <key>`, else of `X-API-Key`. */
function presentedKey(header: (name: string) => string | undefined): string | undefined {
  const auth = header("authorization");
  const bearer = auth === undefined ? undefined : /^Bearer\s+(\S+)\s*$/i.exec(auth)?.[1];
  return bearer ?? header("x-api-key");
}
