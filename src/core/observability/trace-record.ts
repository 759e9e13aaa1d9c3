/**
 * One traced request, built from a `tritium:inference:request` event, and its
 * rendering as Triton's trace JSON (Triton's `src/tracer.cc`):
 *
 * ```
 * {"id":1,"model_name":"simple","model_version":1,"request_id":"r1"},
 * {"id":1,"timestamps":[{"name":"REQUEST_START","ns":8213370261254}]},
 * {"id":1,"timestamps":[{"name":"QUEUE_START","ns":8213370263541}]},
 * {"id":1,"activity":"TENSOR_QUEUE_INPUT","tensor":{"name":"INPUT0","data":"1,2","shape":"1,2","dtype":"INT32"}},
 * {"id":1,"timestamps":[{"name":"COMPUTE_START","ns":...}]},  COMPUTE_INPUT_END, COMPUTE_OUTPUT_START, COMPUTE_END,
 * {"id":1,"activity":"TENSOR_BACKEND_OUTPUT","tensor":{...}},
 * {"id":1,"timestamps":[{"name":"REQUEST_END","ns":...}]}
 * ```
 *
 * Timestamps are `process.hrtime.bigint()` nanoseconds: a monotonic clock,
 * like Triton's steady clock, unrelated to wall time.
 */
import { bf16ToNumber, halfToNumber, type Tensor } from "../tensors/tensor.js";
import { tensorValues } from "../tensors/tensor-values.js";
import type { TraceLevel } from "../settings/trace-settings.js";
import type { InferenceRequestEvent } from "./events.js";

/** Triton's activity names (TRITONSERVER_InferenceTraceActivityString). */
export type TimestampActivity =
  | "REQUEST_START" | "QUEUE_START" | "COMPUTE_START" | "COMPUTE_INPUT_END" | "COMPUTE_OUTPUT_START" | "COMPUTE_END" | "REQUEST_END";
export type TensorActivity = "TENSOR_QUEUE_INPUT" | "TENSOR_BACKEND_OUTPUT";

export interface TraceTimestamp {
  name: TimestampActivity;
  ns: bigint;
}

/** A tensor as Triton's TENSORS level writes it: every field a string. */
export interface TraceTensor {
  activity: TensorActivity;
  name: string;
  data: string;
  shape: string;
  dtype: string;
}

export interface TraceRecord {
  id: number;
  /** The id of the containing ensemble's trace; 0 at the top. */
  parentId: number;
  model: string;
  version: number;
  /** The client's request id ("" when it gave none). */
  requestId: string;
  success: boolean;
  /** Empty unless the level includes TIMESTAMPS. */
  timestamps: TraceTimestamp[];
  /** Empty unless the level includes TENSORS. */
  tensors: TraceTensor[];
}

/** The timestamps of a request, derived from core's event. A request that never ran has no compute timestamps. */
export function requestTimestamps(e: InferenceRequestEvent): TraceTimestamp[] {
  const start = e.requestStartNs;
  const out: TraceTimestamp[] = [
    { name: "REQUEST_START", ns: start },
    { name: "QUEUE_START", ns: e.queueStartNs },
  ];
  const computeNs = e.computeInputNs + e.computeInferNs + e.computeOutputNs;
  if (computeNs > 0) {
    const computeStart = e.queueStartNs + BigInt(e.queueNs);
    const inputEnd = computeStart + BigInt(e.computeInputNs);
    const outputStart = inputEnd + BigInt(e.computeInferNs);
    out.push(
      { name: "COMPUTE_START", ns: computeStart },
      { name: "COMPUTE_INPUT_END", ns: inputEnd },
      { name: "COMPUTE_OUTPUT_START", ns: outputStart },
      { name: "COMPUTE_END", ns: outputStart + BigInt(e.computeOutputNs) },
    );
  }
  out.push({ name: "REQUEST_END", ns: start + BigInt(e.totalNs) });
  return out;
}

/**
 * Builds the record of one traced request. Must run synchronously in the
 * event's subscriber: tensors are read from the event's views and copied
 * into strings here.
 */
export function traceRecord(id: number, e: InferenceRequestEvent, level: readonly TraceLevel[]): TraceRecord {
  const record: TraceRecord = {
    id,
    parentId: 0,
    model: e.model,
    version: Number(e.version),
    requestId: e.id ?? "",
    success: e.success,
    timestamps: level.includes("TIMESTAMPS") ? requestTimestamps(e) : [],
    tensors: [],
  };
  if (level.includes("TENSORS")) {
    for (const t of e.inputs) record.tensors.push(traceTensor("TENSOR_QUEUE_INPUT", t));
    for (const t of e.outputs ?? []) record.tensors.push(traceTensor("TENSOR_BACKEND_OUTPUT", t));
  }
  return record;
}

function traceTensor(activity: TensorActivity, t: Tensor): TraceTensor {
  return { activity, name: t.name, data: tensorData(t), shape: t.shape.join(","), dtype: t.datatype };
}

/**
 * A tensor's elements as Triton's trace writes them: comma-separated, floats
 * with six significant digits (C++ stream defaults), BOOL as 1/0, BYTES as
 * quoted strings. Unlike Triton, INT8/UINT8 are written as numbers (Triton
 * streams them as characters) and FP16/BF16 as their values (Triton leaves
 * them empty).
 */
export function tensorData(t: Tensor): string {
  let values: ArrayLike<unknown>;
  try {
    values = tensorValues(t) as ArrayLike<unknown>;
  } catch {
    return ""; // malformed BYTES: Triton stops writing the tensor's data too
  }
  const parts: string[] = new Array(values.length);
  for (let i = 0; i < values.length; i++) {
    const v = values[i];
    switch (t.datatype) {
      case "FP32": case "FP64": parts[i] = formatFloat(v as number); break;
      case "FP16": parts[i] = formatFloat(halfToNumber(v as number)); break;
      case "BF16": parts[i] = formatFloat(bf16ToNumber(v as number)); break;
      case "BOOL": parts[i] = v ? "1" : "0"; break;
      case "BYTES": parts[i] = JSON.stringify(v); break;
      default: parts[i] = String(v);
    }
  }
  return parts.join(",");
}

/** C++ `ostream << double` with default flags: `%g` with six significant digits. */
export function formatFloat(x: number): string {
  if (Number.isNaN(x)) return "nan";
  if (!Number.isFinite(x)) return x > 0 ? "inf" : "-inf";
  if (x === 0) return Object.is(x, -0) ? "-0" : "0";
  const [mantissa, exp] = x.toExponential(5).split("e") as [string, string];
  const e = Number(exp);
  const trim = (s: string) => (s.includes(".") ? s.replace(/0+$/, "").replace(/\.$/, "") : s);
  if (e < -4 || e >= 6) return `${trim(mantissa)}e${e < 0 ? "-" : "+"}${String(Math.abs(e)).padStart(2, "0")}`;
  return trim(x.toFixed(5 - e));
}

/**
 * The record as Triton's trace JSON: the objects of one trace, comma
 * separated, ready to be placed in the file's top-level array. Input tensors
 * follow QUEUE_START and output tensors COMPUTE_END, where Triton reports them.
 */
export function tritonTraceJson(r: TraceRecord): string {
  const head =
    `{"id":${r.id},"model_name":${JSON.stringify(r.model)},"model_version":${r.version}` +
    (r.requestId !== "" ? `,"request_id":${JSON.stringify(r.requestId)}` : "") +
    (r.parentId !== 0 ? `,"parent_id":${r.parentId}` : "") +
    "}";
  const parts = [head];
  const inputs = r.tensors.filter((t) => t.activity === "TENSOR_QUEUE_INPUT");
  const outputs = r.tensors.filter((t) => t.activity === "TENSOR_BACKEND_OUTPUT");
  const tensor = (t: TraceTensor) =>
    `{"id":${r.id},"activity":"${t.activity}","tensor":{"name":${JSON.stringify(t.name)},"data":${JSON.stringify(t.data)},"shape":"${t.shape}","dtype":"${t.dtype}"}}`;
  let wroteInputs = false;
  let wroteOutputs = false;
  for (const ts of r.timestamps) {
    if (ts.name === "REQUEST_END" && !wroteOutputs) {
      parts.push(...outputs.map(tensor));
      wroteOutputs = true;
    }
    parts.push(`{"id":${r.id},"timestamps":[{"name":"${ts.name}","ns":${ts.ns}}]}`);
    if (ts.name === "QUEUE_START") {
      parts.push(...inputs.map(tensor));
      wroteInputs = true;
    }
  }
  if (!wroteInputs) parts.push(...inputs.map(tensor));
  if (!wroteOutputs) parts.push(...outputs.map(tensor));
  return parts.join(",");
}
