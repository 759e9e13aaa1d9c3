/**
 * The command line's security flags made into frontend options: restricted
 * API groups (Triton's), API keys and HTTPS (Tritium's own). Errors name the
 * flag at fault, so a misconfigured server refuses to start.
 */
import fs from "node:fs/promises";
import { AccessPolicy, ApiKeys, parseGroups, parseRestrictions } from "../frontends/access.js";
import type { HttpTlsOptions } from "../frontends/http/http-server.js";

type Flags = Record<string, unknown>;

/** The access policies of the HTTP and gRPC frontends. */
export async function accessPolicies(flags: Flags): Promise<{ http: AccessPolicy; grpc: AccessPolicy }> {
  const keyFile = flags["api-key-file"] as string | undefined;
  const keys = keyFile ? await ApiKeys.fromFile(keyFile) : undefined;
  const keyGroups = keys ? parseGroups(String(flags["api-key-apis"]), "api-key-apis") : new Set<never>();
  return {
    http: new AccessPolicy(parseRestrictions((flags["http-restricted-api"] as string[] | undefined) ?? [], "http-restricted-api"), keys, keyGroups),
    grpc: new AccessPolicy(parseRestrictions((flags["grpc-restricted-protocol"] as string[] | undefined) ?? [], "grpc-restricted-protocol", "triton-grpc-protocol-"), keys, keyGroups),
  };
}

/** `--http-ssl*`: the PEM files read, or undefined when HTTPS is off. */
export async function httpTls(flags: Flags): Promise<HttpTlsOptions | undefined> {
  const mutual = flags["http-ssl-mutual"] as boolean;
  if (!(flags["http-ssl"] as boolean) && !mutual) return undefined;
  const read = async (flag: string, required: boolean): Promise<Buffer | undefined> => {
    const file = flags[flag] as string | undefined;
    if (!file) {
      if (required) throw new Error(`--${flag} must be specified when HTTPS is enabled`);
      return undefined;
    }
    try {
      return await fs.readFile(file);
    } catch (e) {
      throw new Error(`--${flag}: cannot read '${file}': ${(e as Error).message}`);
    }
  };
  return { cert: (await read("http-ssl-cert", true))!, key: (await read("http-ssl-key", true))!, ca: await read("http-ssl-root-cert", mutual), mutual };
}
