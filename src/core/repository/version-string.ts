import { invalidArg } from "../errors.js";

const INT64_MAX = 2n ** 63n - 1n;

/**
 * Reads a client's model version string as Triton does (C++ `std::stol`):
 * leading white space, a sign and digits, anything after them ignored; an
 * empty string means "let the server choose" (undefined). Triton's clients
 * compare the start of these messages, so they are Triton's, word for word.
 */
export function parseVersionString(version: string): number | undefined {
  if (version === "") return undefined;
  const m = /^[\s]*([+-]?\d+)/.exec(version);
  const value = m ? BigInt(m[1]!) : undefined;
  if (value === undefined || value > INT64_MAX || value < -INT64_MAX - 1n) {
    throw invalidArg(`failed to get model version from specified version string '${version}' (details: stol), version should be an integral value > 0`);
  }
  if (value < 0n) throw invalidArg(`invalid model version specified '${version}' , version should be an integral value > 0`);
  return Number(value);
}
