import type { IncomingMessage } from "node:http";
import zlib from "node:zlib";
import { invalidArg, unsupported } from "../../core/errors.js";

/**
 * Reads a request body, refusing it as soon as it passes `limit` bytes
 * (`--http-max-input-size`), before and after decompression.
 */
export async function readBody(req: IncomingMessage, limit: number): Promise<Buffer> {
  const tooLarge = () =>
    invalidArg(`HTTP request size exceeds the maximum allowed value of ${limit} bytes. Use --http-max-input-size to increase the limit.`);
  const declared = Number(req.headers["content-length"] ?? "0");
  if (declared > limit) throw tooLarge();
  const raw = await new Promise<Buffer>((resolve, reject) => {
    const chunks: Buffer[] = [];
    let total = 0;
    const onData = (chunk: Buffer) => {
      total += chunk.byteLength;
      if (total > limit) {
        req.off("data", onData);
        req.resume(); // drain what is left so the connection can answer the error
        reject(tooLarge());
        return;
      }
      chunks.push(chunk);
    };
    req.on("data", onData);
    req.once("end", () => resolve(chunks.length === 1 ? chunks[0]! : Buffer.concat(chunks, total)));
    req.once("error", reject);
    req.once("close", () => {
      if (!req.complete) reject(invalidArg("the client closed the connection before the request body was complete"));
    });
  });
  const encoding = String(req.headers["content-encoding"] ?? "identity").trim().toLowerCase();
  if (encoding === "identity" || encoding === "") return raw;
  const options = { maxOutputLength: limit };
  try {
    if (encoding === "gzip") return zlib.gunzipSync(raw, options);
    if (encoding === "deflate") return zlib.inflateSync(raw, options);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === "ERR_BUFFER_TOO_LARGE") throw tooLarge();
    throw invalidArg(`failed to decompress the request body (${encoding}): ${(e as Error).message}`);
  }
  throw unsupported(`unsupported Content-Encoding '${encoding}'; supported: gzip, deflate`);
}

/** The response encoding to use, from Accept-Encoding, in the client's order of preference. */
export function pickEncoding(accept: string | undefined): "gzip" | "deflate" | undefined {
  if (!accept) return undefined;
  const prefs = accept
    .split(",")
    .map((p) => {
      const [name, ...rest] = p.trim().toLowerCase().split(";");
      const q = rest.map((r) => r.trim()).find((r) => r.startsWith("q="));
      return { name: name!.trim(), q: q ? Number(q.slice(2)) : 1 };
    })
    .filter((p) => p.q > 0 && (p.name === "gzip" || p.name === "deflate"))
    .sort((a, b) => b.q - a.q);
  return prefs[0]?.name as "gzip" | "deflate" | undefined;
}
