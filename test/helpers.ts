import fs from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { createServer, type CreateServerOptions } from "../src/index.js";
import type { InferenceServer } from "../src/core/server.js";
import { HttpFrontend } from "../src/frontends/http/http-server.js";

/** Repository root (tests run from dist/test). */
export const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..", "..");
export const EXAMPLES = path.join(ROOT, "examples", "model_repository");
export const FIXTURES = path.join(ROOT, "test", "fixtures", "model_repository");

/** A real server (core + HTTP frontend) on an ephemeral loopback port. */
export interface TestServer {
  core: InferenceServer;
  url: string;
  close(): Promise<void>;
}

export async function startServer(options: Partial<CreateServerOptions> & { modelRepository: string | string[] }): Promise<TestServer> {
  const core = await createServer({ quiet: true, ...options });
  const http = new HttpFrontend(core, { address: "127.0.0.1", port: 0 });
  const port = await http.listen();
  return {
    core,
    url: `http://127.0.0.1:${port}`,
    async close() {
      const closing = http.close();
      await core.stop();
      http.closeAllConnections();
      await closing;
    },
  };
}

/** Copies models from a repository into a fresh temporary repository. */
export async function tempRepository(models: Record<string, string>): Promise<string> {
  const dir = await fs.mkdtemp(path.join(os.tmpdir(), "tritium-repo-"));
  for (const [name, from] of Object.entries(models)) {
    await fs.cp(from, path.join(dir, name), { recursive: true });
  }
  return dir;
}

export async function postJson(url: string, body: unknown, headers: Record<string, string> = {}): Promise<{ status: number; json: any; headers: Headers }> {
  const res = await fetch(url, { method: "POST", body: typeof body === "string" ? body : JSON.stringify(body), headers: { "Content-Type": "application/json", ...headers } });
  const text = await res.text();
  return { status: res.status, json: text ? JSON.parse(text) : undefined, headers: res.headers };
}

export async function getJson(url: string): Promise<{ status: number; json: any; text: string }> {
  const res = await fetch(url);
  const text = await res.text();
  let json: any;
  try {
    json = text ? JSON.parse(text) : undefined;
  } catch {
    json = undefined;
  }
  return { status: res.status, json, text };
}
