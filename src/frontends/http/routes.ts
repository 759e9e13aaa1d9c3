import type { ApiGroup } from "../access.js";

/**
 * The HTTP routes of KServe v2 and Triton's extensions. `${V}` must be
 * numeric, as in Triton's route regex; model names are one path segment.
 */
export type RouteName =
  | "server_metadata" | "health_live" | "health_ready"
  | "model_metadata" | "model_ready" | "model_config" | "model_infer" | "model_generate" | "model_generate_stream" | "model_stats" | "all_stats"
  | "repository_index" | "repository_load" | "repository_unload"
  | "shm_status" | "shm_register" | "shm_unregister"
  | "cuda_shm_status" | "cuda_shm_register" | "cuda_shm_unregister"
  | "trace_setting" | "model_trace_setting" | "logging";

/** Each route's group, for `--http-restricted-api` and API keys (Triton's grouping). */
export const ROUTE_GROUP: Record<RouteName, ApiGroup> = {
  health_live: "health", health_ready: "health", model_ready: "health",
  server_metadata: "metadata", model_metadata: "metadata",
  model_infer: "inference", model_generate: "inference", model_generate_stream: "inference",
  model_config: "model-config",
  model_stats: "statistics", all_stats: "statistics",
  repository_index: "model-repository", repository_load: "model-repository", repository_unload: "model-repository",
  shm_status: "shared-memory", shm_register: "shared-memory", shm_unregister: "shared-memory",
  cuda_shm_status: "shared-memory", cuda_shm_register: "shared-memory", cuda_shm_unregister: "shared-memory",
  trace_setting: "trace", model_trace_setting: "trace",
  logging: "logging",
};

export interface RouteMatch {
  route: RouteName;
  method: "GET" | "POST";
  model?: string;
  version?: string;
  /** Shared memory routes: `/region/{r}`. */
  region?: string;
}

const MODEL = "/v2/models/([^/]+)(?:/versions/([0-9]+))?";
const TABLE: { re: RegExp; route: RouteName; method: "GET" | "POST" }[] = [
  { re: /^\/v2\/?$/, route: "server_metadata", method: "GET" },
  { re: /^\/v2\/health\/live$/, route: "health_live", method: "GET" },
  { re: /^\/v2\/health\/ready$/, route: "health_ready", method: "GET" },
  { re: /^\/v2\/models\/stats$/, route: "all_stats", method: "GET" },
  { re: new RegExp(`^${MODEL}$`), route: "model_metadata", method: "GET" },
  { re: new RegExp(`^${MODEL}/ready$`), route: "model_ready", method: "GET" },
  { re: new RegExp(`^${MODEL}/config$`), route: "model_config", method: "GET" },
  { re: new RegExp(`^${MODEL}/infer$`), route: "model_infer", method: "POST" },
  { re: new RegExp(`^${MODEL}/generate$`), route: "model_generate", method: "POST" },
  { re: new RegExp(`^${MODEL}/generate_stream$`), route: "model_generate_stream", method: "POST" },
  { re: new RegExp(`^${MODEL}/stats$`), route: "model_stats", method: "GET" },
  { re: /^\/v2\/repository(?:\/[^/]+)?\/index$/, route: "repository_index", method: "POST" },
  { re: /^\/v2\/repository(?:\/[^/]+)?\/models\/([^/]+)\/load$/, route: "repository_load", method: "POST" },
  { re: /^\/v2\/repository(?:\/[^/]+)?\/models\/([^/]+)\/unload$/, route: "repository_unload", method: "POST" },
  { re: /^\/v2\/systemsharedmemory(?:\/region\/([^/]+))?\/status$/, route: "shm_status", method: "GET" },
  { re: /^\/v2\/systemsharedmemory(?:\/region\/([^/]+))?\/register$/, route: "shm_register", method: "POST" },
  { re: /^\/v2\/systemsharedmemory(?:\/region\/([^/]+))?\/unregister$/, route: "shm_unregister", method: "POST" },
  { re: /^\/v2\/cudasharedmemory(?:\/region\/([^/]+))?\/status$/, route: "cuda_shm_status", method: "GET" },
  { re: /^\/v2\/cudasharedmemory(?:\/region\/([^/]+))?\/register$/, route: "cuda_shm_register", method: "POST" },
  { re: /^\/v2\/cudasharedmemory(?:\/region\/([^/]+))?\/unregister$/, route: "cuda_shm_unregister", method: "POST" },
  // Trace settings exist for the server and per model, not per version (a version path is 404, as in Triton).
  { re: /^\/v2\/trace\/setting$/, route: "trace_setting", method: "GET" },
  { re: /^\/v2\/trace\/setting$/, route: "trace_setting", method: "POST" },
  { re: /^\/v2\/models\/([^/]+)\/trace\/setting$/, route: "model_trace_setting", method: "GET" },
  { re: /^\/v2\/models\/([^/]+)\/trace\/setting$/, route: "model_trace_setting", method: "POST" },
  { re: /^\/v2\/logging$/, route: "logging", method: "GET" },
  { re: /^\/v2\/logging$/, route: "logging", method: "POST" },
];

/**
 * Matches a path (query string already removed). Returns the route, or
 * "method" when the path exists under another verb (→ 405), or undefined (→ 404).
 */
export function matchRoute(method: string, path: string): RouteMatch | "method" | undefined {
  let wrongMethod = false;
  for (const r of TABLE) {
    const m = r.re.exec(path);
    if (!m) continue;
    if (r.method !== method) {
      wrongMethod = true;
      continue;
    }
    const match: RouteMatch = { route: r.route, method: r.method };
    if (m[1] !== undefined) match[r.route.includes("shm_") ? "region" : "model"] = safeDecode(m[1]);
    if (m[2] !== undefined) match.version = m[2];
    return match;
  }
  return wrongMethod ? "method" : undefined;
}

function safeDecode(s: string): string {
  try {
    return decodeURIComponent(s);
  } catch {
    return s;
  }
}
