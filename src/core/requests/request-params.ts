import { invalidArg } from "../errors.js";
import type { InferenceRequest } from "./inference.js";
import { requestIdPrefix } from "./request-validator.js";

/**
 * The reserved request parameters that steer scheduling (Triton's sequence
 * and schedule-policy extensions), read once and checked.
 */
export interface SchedulingParams {
  /** 0: the model's default level. */
  priority: number;
  /** Queue timeout in microseconds; undefined: the policy's default. */
  timeoutUs?: number;
  /** undefined when the request is not part of a sequence (0 or ""). */
  sequenceId?: bigint | string;
  sequenceStart: boolean;
  sequenceEnd: boolean;
}

export function schedulingParams(req: InferenceRequest): SchedulingParams {
  const p = req.parameters ?? {};
  const fail = (msg: string) => invalidArg(requestIdPrefix(req.id) + msg + ` for model '${req.model_name}'`);
  const out: SchedulingParams = { priority: 0, sequenceStart: false, sequenceEnd: false };
  if (p.priority !== undefined) {
    const v = Number(p.priority);
    if (typeof p.priority === "boolean" || typeof p.priority === "string" || !Number.isInteger(v) || v < 0) throw fail("parameter 'priority' must be a non-negative integer");
    out.priority = v;
  }
  if (p.timeout !== undefined) {
    const v = Number(p.timeout);
    if (typeof p.timeout === "boolean" || typeof p.timeout === "string" || !Number.isFinite(v) || v < 0) throw fail("parameter 'timeout' must be a non-negative number of microseconds");
    out.timeoutUs = v;
  }
  const id = p.sequence_id;
  if (id !== undefined) {
    if (typeof id === "string") {
      if (id !== "") out.sequenceId = id;
    } else if (typeof id === "number" || typeof id === "bigint") {
      if (typeof id === "number" && !Number.isInteger(id)) throw fail("parameter 'sequence_id' must be an unsigned 64-bit integer or a string");
      const big = BigInt(id);
      if (big < 0n || big > 0xffffffffffffffffn) throw fail("parameter 'sequence_id' must be an unsigned 64-bit integer or a string");
      if (big !== 0n) out.sequenceId = big;
    } else {
      throw fail("parameter 'sequence_id' must be an unsigned 64-bit integer or a string");
    }
  }
  for (const key of ["sequence_start", "sequence_end"] as const) {
    const v = p[key];
    if (v === undefined) continue;
    if (typeof v !== "boolean") throw fail(`parameter '${key}' must be a boolean`);
    if (key === "sequence_start") out.sequenceStart = v;
    else out.sequenceEnd = v;
  }
  if ((out.sequenceStart || out.sequenceEnd) && out.sequenceId === undefined) {
    throw fail("sequence_start and sequence_end need a non-zero 'sequence_id'");
  }
  return out;
}
