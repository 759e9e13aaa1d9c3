import { create, fromJson, toJson, type DescMessage, type JsonObject, type JsonValue } from "@bufbuild/protobuf";
import { fromText } from "@bufbuild/protobuf/txtpb";
import { ScalarType } from "@bufbuild/protobuf";
import { DataType as PbDataType, ModelConfigSchema, type ModelConfig } from "../../gen/inference/model_config_pb.js";
import { invalidArg } from "../errors.js";

export type { ModelConfig };

/** An empty config, for a model directory that has no config.pbtxt. */
export function emptyModelConfig(): ModelConfig {
  return create(ModelConfigSchema);
}

/**
 * Parses `config.pbtxt` (protobuf text format of Triton's ModelConfig).
 * Errors name the file, the line and column, and the field, as Triton does
 * (`config.pbtxt:3:19: ...`), so that a typo is found without guessing.
 */
export function parseModelConfig(text: string, file: string): ModelConfig {
  try {
    return fromText(ModelConfigSchema, text);
  } catch (e) {
    const message = e instanceof Error ? e.message : String(e);
    const { line, column } = locateTextError(text, message);
    throw invalidArg(`failed to parse model configuration ${file}:${line}:${column}: ${message}`);
  }
}

/**
 * The text-format parser reports what went wrong but not where. The parser
 * consumes input left to right, so a prefix of the text fails with the same
 * message exactly when it contains the offending token: bisect on lines, then
 * on columns within the line.
 */
function locateTextError(text: string, message: string): { line: number; column: number } {
  const sameError = (prefix: string): boolean => {
    try {
      fromText(ModelConfigSchema, prefix);
      return false;
    } catch (e) {
      return e instanceof Error && e.message === message;
    }
  };
  const lines = text.split("\n");
  let lo = 1;
  let hi = lines.length;
  if (!sameError(text)) return { line: lines.length, column: (lines.at(-1) ?? "").length + 1 };
  while (lo < hi) {
    const mid = (lo + hi) >> 1;
    if (sameError(lines.slice(0, mid).join("\n"))) hi = mid;
    else lo = mid + 1;
  }
  const before = lines.slice(0, lo - 1).join("\n") + (lo > 1 ? "\n" : "");
  const lineText = lines[lo - 1] ?? "";
  let c = lineText.length;
  while (c > 0 && sameError(before + lineText.slice(0, c - 1))) c--;
  // c is now the shortest prefix length that still fails the same way: the
  // error token ends at c. Report where that token starts.
  let start = c;
  while (start > 0 && !/[\s{}[\]:,<>]/.test(lineText[start - 1]!)) start--;
  return { line: lo, column: start + 1 };
}

/** Reads a config given as JSON (the load API's `config` parameter). */
export function modelConfigFromJson(json: string, where: string): ModelConfig {
  let value: JsonValue;
  try {
    value = JSON.parse(json) as JsonValue;
  } catch (e) {
    throw invalidArg(`failed to parse model configuration JSON for ${where}: ${(e as Error).message}`);
  }
  try {
    return fromJson(ModelConfigSchema, value, { ignoreUnknownFields: false });
  } catch (e) {
    throw invalidArg(`invalid model configuration JSON for ${where}: ${(e as Error).message}`);
  }
}

/**
 * The config as Triton's `/config` returns it: proto field names, every field
 * printed (defaults included), enums by name, and 64-bit integers as JSON
 * numbers (protobuf JSON would quote them; Triton's clients read numbers).
 */
export function modelConfigToJson(config: ModelConfig): JsonObject {
  const json = toJson(ModelConfigSchema, config, { useProtoFieldName: true, alwaysEmitImplicit: true }) as JsonObject;
  return int64ToNumbers(ModelConfigSchema, json) as JsonObject;
}

const INT64_TYPES = new Set<ScalarType>([ScalarType.INT64, ScalarType.UINT64, ScalarType.SINT64, ScalarType.FIXED64, ScalarType.SFIXED64]);

function int64ToNumbers(desc: DescMessage, json: JsonValue): JsonValue {
  if (json === null || typeof json !== "object" || Array.isArray(json)) return json;
  const out: JsonObject = {};
  // Keys in the order the .proto declares the fields, as Triton's JSON printer
  // writes them (protobuf-es orders by field number: `backend` would come last).
  const order = (key: string) => {
    const i = desc.fields.findIndex((f) => f.name === key || f.jsonName === key);
    return i < 0 ? Number.MAX_SAFE_INTEGER : i;
  };
  const entries = Object.entries(json).sort(([a], [b]) => order(a) - order(b));
  for (const [key, value] of entries) {
    const field = desc.fields.find((f) => f.name === key || f.jsonName === key);
    if (!field || value === null) {
      out[key] = value;
      continue;
    }
    const num = (v: JsonValue) => (typeof v === "string" && /^-?\d+$/.test(v) ? Number(v) : v);
    switch (field.fieldKind) {
      case "scalar":
        out[key] = INT64_TYPES.has(field.scalar) ? num(value) : value;
        break;
      case "list":
        if (field.listKind === "scalar" && INT64_TYPES.has(field.scalar)) out[key] = (value as JsonValue[]).map(num);
        else if (field.listKind === "message") out[key] = (value as JsonValue[]).map((v) => int64ToNumbers(field.message, v));
        else out[key] = value;
        break;
      case "map": {
        const m: JsonObject = {};
        for (const [k, v] of Object.entries(value as JsonObject)) {
          m[k] = field.mapKind === "message" ? int64ToNumbers(field.message, v) : field.mapKind === "scalar" && INT64_TYPES.has(field.scalar) ? num(v) : v;
        }
        out[key] = m;
        break;
      }
      case "message":
        out[key] = int64ToNumbers(field.message, value);
        break;
      default:
        out[key] = value;
    }
  }
  return out;
}

/** `DataType` enum value → its `TYPE_*` name. */
export function configTypeName(dt: PbDataType): string {
  return PbDataType[dt] ?? "TYPE_INVALID";
}
