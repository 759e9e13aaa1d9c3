/**
 * The logging extension (`GET/POST /v2/logging`, gRPC `LogSettings`): the
 * running {@link Logger}'s settings in Triton's JSON shape, and updates to
 * them that take effect at once.
 *
 * Both frontends turn their wire form into a {@link LogSettingsUpdate} with
 * Triton's messages for values of the wrong type, then call the same core
 * method, which validates the whole update before applying any of it.
 *
 * @example
 * const update = logSettingsUpdateFromJson({ log_verbose_level: 1 });
 * applyLogSettings(logger, update);
 * logSettingsOf(logger); // { log_file: "", log_info: true, ..., log_verbose_level: 1, log_format: "default" }
 */
import { invalidArg, unsupported } from "../errors.js";
import type { LogFormat, Logger } from "../observability/logger.js";

/** The settings as Triton reports them, keys in Triton's order. */
export interface LogSettings {
  log_file: string;
  log_info: boolean;
  log_warning: boolean;
  log_error: boolean;
  log_verbose_level: number;
  log_format: LogFormat;
}

/** A change: only the settings present are changed. */
export interface LogSettingsUpdate {
  /** Present only to be refused: the log file cannot change at run time (as in Triton). */
  log_file?: string;
  log_info?: boolean;
  log_warning?: boolean;
  log_error?: boolean;
  log_verbose_level?: number;
  /** `default`, `ISO8601`, or Tritium's `json` (JSON lines). */
  log_format?: string;
}

/** The formats `log_format` accepts: Triton's two, and JSON lines. */
export const LOG_FORMATS: readonly LogFormat[] = ["default", "ISO8601", "json"];

/** The logger's current settings. */
export function logSettingsOf(logger: Logger): LogSettings {
  const o = logger.options;
  return {
    log_file: o.file,
    log_info: o.info,
    log_warning: o.warning,
    log_error: o.error,
    log_verbose_level: o.verbose,
    log_format: o.format,
  };
}

/**
 * Validates an update and applies it to the logger; nothing changes when any
 * part of it is refused. Messages are Triton's.
 */
export function applyLogSettings(logger: Logger, update: LogSettingsUpdate): void {
  if (update.log_file !== undefined) throw unsupported("log file location can not be updated through network protocol");
  const level = update.log_verbose_level;
  if (level !== undefined && !(Number.isInteger(level) && level >= 0 && level <= 0xffffffff)) {
    throw invalidArg(`expect int32 for 'log_verbose_level'`);
  }
  const format = update.log_format;
  if (format !== undefined && !LOG_FORMATS.includes(format as LogFormat)) throw invalidArg(`invalid argument for log_format, got: ${format}`);
  const o = logger.options;
  if (update.log_info !== undefined) o.info = update.log_info;
  if (update.log_warning !== undefined) o.warning = update.log_warning;
  if (update.log_error !== undefined) o.error = update.log_error;
  if (level !== undefined) o.verbose = level;
  if (format !== undefined) o.format = format as LogFormat;
}

type Kind = "boolean" | "uint" | "string";
const KINDS: Record<Exclude<keyof LogSettingsUpdate, "log_file">, Kind> = {
  log_info: "boolean",
  log_warning: "boolean",
  log_error: "boolean",
  log_verbose_level: "uint",
  log_format: "string",
};

/**
 * The HTTP body of `POST /v2/logging`. As in Triton, `null` leaves a setting
 * unchanged, unknown keys are ignored, and a value of the wrong JSON type is
 * refused with TritonJson's message (Triton answers those with 500; we answer
 * 400, since the client sent them).
 */
export function logSettingsUpdateFromJson(body: Record<string, unknown>): LogSettingsUpdate {
  const update: LogSettingsUpdate = {};
  if (body.log_file !== undefined && body.log_file !== null) update.log_file = String(body.log_file);
  for (const [name, kind] of Object.entries(KINDS) as [keyof typeof KINDS, Kind][]) {
    const v = body[name];
    if (v === undefined || v === null) continue;
    switch (kind) {
      case "boolean":
        if (typeof v !== "boolean") throw invalidArg("attempt to access JSON non-boolean as boolean");
        break;
      case "uint":
        if (typeof v !== "number" || !Number.isInteger(v) || v < 0) throw invalidArg("attempt to access JSON non-unsigned-integer as unsigned-integer");
        break;
      case "string":
        if (typeof v !== "string") throw invalidArg("attempt to access JSON non-string as string");
    }
    (update as Record<string, unknown>)[name] = v;
  }
  return update;
}

/** One setting of gRPC's `LogSettingsRequest`: the `parameter_choice` oneof as @bufbuild/protobuf shapes it. */
export interface LogSettingChoice {
  case: "boolParam" | "uint32Param" | "stringParam" | undefined;
  value?: boolean | number | string;
}

const GRPC_CASE: Record<Kind, { case: LogSettingChoice["case"]; expect: string }> = {
  boolean: { case: "boolParam", expect: "boolean" },
  uint: { case: "uint32Param", expect: "int32" },
  string: { case: "stringParam", expect: "string" },
};

/** The settings of gRPC's `LogSettingsRequest`, with Triton's messages (`expect boolean for 'log_info'`). */
export function logSettingsUpdateFromGrpc(settings: Record<string, { parameterChoice: LogSettingChoice }>): LogSettingsUpdate {
  const update: LogSettingsUpdate = {};
  if (settings.log_file !== undefined) update.log_file = String(settings.log_file.parameterChoice.value ?? "");
  for (const [name, kind] of Object.entries(KINDS) as [keyof typeof KINDS, Kind][]) {
    const setting = settings[name];
    if (setting === undefined) continue;
    const want = GRPC_CASE[kind];
    if (setting.parameterChoice.case !== want.case) throw invalidArg(`expect ${want.expect} for '${name}'`);
    (update as Record<string, unknown>)[name] = setting.parameterChoice.value;
  }
  return update;
}
