/**
 * An `s3://` model repository mirrored into a local folder, with Triton's
 * URL forms and environment:
 *
 * - `s3://bucket/path` (AWS, region from `AWS_DEFAULT_REGION` or `AWS_REGION`),
 * - `s3://host:port/bucket/path` and `s3://https://host:port/bucket/path`
 *   (an S3-compatible store, addressed path-style; plain http unless https),
 * - credentials from the SDK's usual chain (`AWS_ACCESS_KEY_ID`,
 *   `AWS_SECRET_ACCESS_KEY`, `AWS_SESSION_TOKEN`, profiles, roles),
 * - the copy under `TRITON_AWS_MOUNT_DIRECTORY` when set, else a temporary folder.
 *
 * A sync lists the prefix and downloads only objects whose ETag changed,
 * deletes local files whose objects are gone, and never writes outside the
 * mirror, whatever the keys say.
 */
import fs from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { GetObjectCommand, ListObjectsV2Command, S3Client, type S3ClientConfig } from "@aws-sdk/client-s3";
import { TritonError, invalidArg } from "../errors.js";
import type { RepositoryLocation } from "./repository-location.js";

/** The parts of an `s3://` repository URL. */
export interface S3Url {
  endpoint?: string;
  bucket: string;
  /** The key prefix of the repository, '' or ending in '/'. */
  prefix: string;
}

/** Parses Triton's `s3://[http[s]://][host:port/]bucket[/path]`. */
export function parseS3Url(spec: string): S3Url {
  let rest = spec.slice("s3://".length);
  let scheme: string | undefined;
  const explicit = /^(https?):\/\//.exec(rest);
  if (explicit) {
    scheme = explicit[1];
    rest = rest.slice(explicit[0].length);
  }
  const parts = rest.split("/").filter((p) => p !== "");
  let endpoint: string | undefined;
  // A first segment with a port names the store's host, as in Triton.
  if (scheme || /:\d+$/.test(parts[0] ?? "")) {
    endpoint = `${scheme ?? "http"}://${parts.shift()}`;
  }
  const bucket = parts.shift();
  if (!bucket) throw invalidArg(`model repository '${spec}': no bucket; expected s3://[host:port/]bucket[/path]`);
  return { endpoint, bucket, prefix: parts.length ? `${parts.join("/")}/` : "" };
}

export class S3Mirror implements RepositoryLocation {
  readonly remote = true;
  /** Local file (relative, '/'-separated) → ETag of the object it was copied from. */
  private readonly copied = new Map<string, string>();
  private syncing: Promise<void> | undefined;

  private constructor(
    readonly spec: string,
    readonly path: string,
    private readonly url: S3Url,
    private readonly client: S3Client,
  ) {}

  static async open(spec: string): Promise<S3Mirror> {
    const url = parseS3Url(spec);
    const config: S3ClientConfig = { region: process.env.AWS_DEFAULT_REGION ?? process.env.AWS_REGION ?? "us-east-1" };
    if (url.endpoint) {
      config.endpoint = url.endpoint;
      config.forcePathStyle = true;
    }
    const mount = process.env.TRITON_AWS_MOUNT_DIRECTORY;
    const dir = mount ? path.join(mount, url.bucket, url.prefix) : await fs.mkdtemp(path.join(os.tmpdir(), "tritium-s3-"));
    await fs.mkdir(dir, { recursive: true });
    return new S3Mirror(spec, dir, url, new S3Client(config));
  }

  /** Concurrent callers share one sync; a caller that comes after it has begun waits for the next. */
  sync(): Promise<void> {
    const next = (this.syncing ?? Promise.resolve()).catch(() => undefined).then(() => this.syncOnce());
    this.syncing = next;
    return next;
  }

  private async syncOnce(): Promise<void> {
    const where = `model repository '${this.spec}'`;
    const objects = new Map<string, { key: string; etag: string }>();
    try {
      let token: string | undefined;
      do {
        const page = await this.client.send(new ListObjectsV2Command({ Bucket: this.url.bucket, Prefix: this.url.prefix, ContinuationToken: token }));
        for (const o of page.Contents ?? []) {
          if (!o.Key || o.Key.endsWith("/")) continue; // folder markers
          const rel = o.Key.slice(this.url.prefix.length);
          if (!isSafeRelative(rel)) throw invalidArg(`${where}: object key '${o.Key}' would leave the repository; refusing to mirror it`);
          objects.set(rel, { key: o.Key, etag: o.ETag ?? `${o.Size}:${String(o.LastModified?.getTime())}` });
        }
        token = page.IsTruncated ? page.NextContinuationToken : undefined;
      } while (token);
      for (const [rel, o] of objects) {
        if (this.copied.get(rel) === o.etag) continue;
        await this.download(o.key, rel);
        this.copied.set(rel, o.etag);
      }
    } catch (e) {
      if (e instanceof TritonError) throw e;
      throw invalidArg(`failed to read ${where}: ${(e as Error).message}`);
    }
    for (const rel of [...this.copied.keys()]) {
      if (objects.has(rel)) continue;
      await fs.rm(path.join(this.path, rel), { force: true });
      this.copied.delete(rel);
    }
    await removeEmptyFolders(this.path, true);
  }

  /** Writes beside the target, then renames, so a scan never reads half an object. */
  private async download(key: string, rel: string): Promise<void> {
    const target = path.join(this.path, rel);
    await fs.mkdir(path.dirname(target), { recursive: true });
    const res = await this.client.send(new GetObjectCommand({ Bucket: this.url.bucket, Key: key }));
    const bytes = await res.Body!.transformToByteArray();
    const partial = `${target}.tritium-partial`;
    await fs.writeFile(partial, bytes);
    await fs.rename(partial, target);
  }
}

function isSafeRelative(rel: string): boolean {
  if (rel === "" || rel.includes("\0") || rel.includes("\\") || path.posix.isAbsolute(rel)) return false;
  return rel.split("/").every((p) => p !== ".." && p !== ".");
}

async function removeEmptyFolders(dir: string, root: boolean): Promise<boolean> {
  const entries = await fs.readdir(dir, { withFileTypes: true }).catch(() => []);
  let empty = true;
  for (const e of entries) {
    if (e.isDirectory() && (await removeEmptyFolders(path.join(dir, e.name), false))) continue;
    empty = false;
  }
  if (empty && !root) await fs.rmdir(dir).catch(() => undefined);
  return empty;
}
