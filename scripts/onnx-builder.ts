/**
 * A small, dependency-free helper for building ONNX models from TypeScript.
 *
 * Tritium has no Python `onnx` package available, so every ONNX model used by
 * the examples and the tests is written with these helpers on top of the
 * generated ONNX schema subset (`src/gen/onnx/onnx_pb.ts`).
 *
 * The output is deterministic: no timestamps, no random names, no map fields,
 * and tensor payloads are always encoded little-endian regardless of the host.
 * Building the same graph twice yields byte-identical files.
 *
 * @example
 * ```ts
 * import { DataType, valueInfo, node, graph, model, writeModel } from "./onnx-builder.js";
 *
 * const g = graph({
 *   name: "add",
 *   inputs: [valueInfo("A", DataType.FLOAT, ["batch", 4]), valueInfo("B", DataType.FLOAT, ["batch", 4])],
 *   outputs: [valueInfo("C", DataType.FLOAT, ["batch", 4])],
 *   nodes: [node("Add", ["A", "B"], ["C"])],
 * });
 * await writeModel("/tmp/add/1/model.onnx", model(g));
 * ```
 *
 * @module
 */

import { create, toBinary } from "@bufbuild/protobuf";
import { mkdir, writeFile } from "node:fs/promises";
import { dirname } from "node:path";
import { bf16ToNumber, halfToNumber, numberToBf16, numberToHalf } from "../src/core/tensors/tensor.js";

import {
  AttributeProtoSchema,
  AttributeProto_AttributeType,
  GraphProtoSchema,
  ModelProtoSchema,
  NodeProtoSchema,
  OperatorSetIdProtoSchema,
  StringStringEntryProtoSchema,
  TensorProtoSchema,
  TensorProto_DataType,
  TensorShapeProtoSchema,
  TensorShapeProto_DimensionSchema,
  TypeProtoSchema,
  TypeProto_TensorSchema,
  ValueInfoProtoSchema,
} from "../src/gen/onnx/onnx_pb.js";
import type {
  AttributeProto,
  GraphProto,
  ModelProto,
  NodeProto,
  TensorProto,
  TypeProto,
  ValueInfoProto,
} from "../src/gen/onnx/onnx_pb.js";

/** ONNX tensor element types (`TensorProto.DataType`), re-exported for convenience. */
export const DataType = TensorProto_DataType;
/** An ONNX tensor element type value (e.g. `DataType.FLOAT` = 1). */
export type DataType = TensorProto_DataType;

/** ONNX IR version written by {@link model} unless overridden (IR 8 = ONNX 1.10+). */
export const DEFAULT_IR_VERSION = 8;
/** Default-domain opset written by {@link model} unless overridden. */
export const DEFAULT_OPSET = 17;
/** `producer_name` written by {@link model} unless overridden. */
export const DEFAULT_PRODUCER = "tritium-onnx-builder";

/**
 * Mapping from Triton datatype names (as used by the KServe v2 protocol) to
 * ONNX element types. Every Triton datatype has an ONNX counterpart; `BYTES`
 * maps to ONNX `STRING`.
 */
export const ONNX_TYPE_BY_TRITON: Readonly<Record<string, DataType>> = Object.freeze({
  BOOL: TensorProto_DataType.BOOL,
  UINT8: TensorProto_DataType.UINT8,
  UINT16: TensorProto_DataType.UINT16,
  UINT32: TensorProto_DataType.UINT32,
  UINT64: TensorProto_DataType.UINT64,
  INT8: TensorProto_DataType.INT8,
  INT16: TensorProto_DataType.INT16,
  INT32: TensorProto_DataType.INT32,
  INT64: TensorProto_DataType.INT64,
  FP16: TensorProto_DataType.FLOAT16,
  FP32: TensorProto_DataType.FLOAT,
  FP64: TensorProto_DataType.DOUBLE,
  BYTES: TensorProto_DataType.STRING,
  BF16: TensorProto_DataType.BFLOAT16,
});

/**
 * One dimension of a tensor shape:
 * - a non-negative `number` is a fixed size (`dim_value`),
 * - a `string` is a symbolic size (`dim_param`, e.g. `"batch"`),
 * - `null` is a dimension of unknown size with no name.
 */
export type Dim = number | string | null;

// ---------------------------------------------------------------------------
// Types and value infos
// ---------------------------------------------------------------------------

/**
 * Builds a tensor `TypeProto`.
 *
 * @param elemType - ONNX element type.
 * @param dims - The shape; `undefined` leaves the rank unknown (no `shape` field).
 */
export function tensorType(elemType: DataType, dims?: readonly Dim[]): TypeProto {
  const tensor = create(TypeProto_TensorSchema, { elemType });
  if (dims !== undefined) {
    tensor.shape = create(TensorShapeProtoSchema, {
      dim: dims.map((d) => {
        if (d === null) return create(TensorShapeProto_DimensionSchema);
        if (typeof d === "string") {
          return create(TensorShapeProto_DimensionSchema, { value: { case: "dimParam", value: d } });
        }
        if (!Number.isInteger(d) || d < 0) {
          throw new Error(`tensorType: invalid fixed dimension ${d} (use a string or null for dynamic dims)`);
        }
        return create(TensorShapeProto_DimensionSchema, { value: { case: "dimValue", value: BigInt(d) } });
      }),
    });
  }
  return create(TypeProtoSchema, { value: { case: "tensorType", value: tensor } });
}

/**
 * Builds a `ValueInfoProto` describing a named tensor (graph input, output, or
 * intermediate value).
 *
 * @param name - Tensor name.
 * @param elemType - ONNX element type.
 * @param dims - Shape, see {@link Dim}; `undefined` leaves the rank unknown.
 * @param docString - Optional human-readable description.
 */
export function valueInfo(name: string, elemType: DataType, dims?: readonly Dim[], docString = ""): ValueInfoProto {
  return create(ValueInfoProtoSchema, { name, type: tensorType(elemType, dims), docString });
}

// ---------------------------------------------------------------------------
// Attributes
// ---------------------------------------------------------------------------

/** An integer attribute (`INT`), e.g. `attrInt("axis", 1)`. */
export function attrInt(name: string, value: number | bigint): AttributeProto {
  return create(AttributeProtoSchema, { name, type: AttributeProto_AttributeType.INT, i: BigInt(value) });
}

/** An integer-list attribute (`INTS`), e.g. `attrInts("pads", [1, 1, 1, 1])`. */
export function attrInts(name: string, values: readonly (number | bigint)[]): AttributeProto {
  return create(AttributeProtoSchema, {
    name,
    type: AttributeProto_AttributeType.INTS,
    ints: values.map((v) => BigInt(v)),
  });
}

/** A float attribute (`FLOAT`, stored as float32), e.g. `attrFloat("alpha", 1.0)`. */
export function attrFloat(name: string, value: number): AttributeProto {
  return create(AttributeProtoSchema, { name, type: AttributeProto_AttributeType.FLOAT, f: Math.fround(value) });
}

/** A float-list attribute (`FLOATS`, stored as float32). */
export function attrFloats(name: string, values: readonly number[]): AttributeProto {
  return create(AttributeProtoSchema, {
    name,
    type: AttributeProto_AttributeType.FLOATS,
    floats: values.map((v) => Math.fround(v)),
  });
}

/** A string attribute (`STRING`, UTF-8 encoded), e.g. `attrString("auto_pad", "SAME_UPPER")`. */
export function attrString(name: string, value: string): AttributeProto {
  return create(AttributeProtoSchema, {
    name,
    type: AttributeProto_AttributeType.STRING,
    s: new TextEncoder().encode(value),
  });
}

/** A string-list attribute (`STRINGS`, UTF-8 encoded). */
export function attrStrings(name: string, values: readonly string[]): AttributeProto {
  const enc = new TextEncoder();
  return create(AttributeProtoSchema, {
    name,
    type: AttributeProto_AttributeType.STRINGS,
    strings: values.map((v) => enc.encode(v)),
  });
}

/** A tensor attribute (`TENSOR`), e.g. the `value` of a `Constant` node. */
export function attrTensor(name: string, value: TensorProto): AttributeProto {
  return create(AttributeProtoSchema, { name, type: AttributeProto_AttributeType.TENSOR, t: value });
}

// ---------------------------------------------------------------------------
// Nodes
// ---------------------------------------------------------------------------

/** Optional parts of a node; see {@link node}. */
export interface NodeOptions {
  /** Node name (optional in ONNX, but helps when reading error messages). */
  name?: string;
  /** Node attributes, built with the `attr*` helpers. */
  attributes?: readonly AttributeProto[];
  /** Operator domain; `""` (the default) is the standard ONNX domain. */
  domain?: string;
  /** Human-readable description. */
  docString?: string;
}

/**
 * Builds a `NodeProto`.
 *
 * @param opType - Operator name, e.g. `"Conv"`.
 * @param inputs - Input tensor names (use `""` for an omitted optional input).
 * @param outputs - Output tensor names.
 * @param options - Name, attributes, domain, doc string.
 *
 * @example
 * ```ts
 * node("Conv", ["X", "W", "B"], ["Y"], { name: "conv1", attributes: [attrInts("pads", [1, 1, 1, 1])] })
 * ```
 */
export function node(
  opType: string,
  inputs: readonly string[],
  outputs: readonly string[],
  options: NodeOptions = {},
): NodeProto {
  return create(NodeProtoSchema, {
    opType,
    input: [...inputs],
    output: [...outputs],
    name: options.name ?? "",
    domain: options.domain ?? "",
    attribute: [...(options.attributes ?? [])],
    docString: options.docString ?? "",
  });
}

// ---------------------------------------------------------------------------
// Tensors (initializers / constants)
// ---------------------------------------------------------------------------

/**
 * Data accepted by {@link tensor}:
 * - numeric element types: any array-like of numbers (typed array or plain
 *   array); 64-bit integer types also accept bigints (`BigInt64Array`, ...);
 * - `FLOAT16` / `BFLOAT16`: a `Uint16Array` is taken as raw bit patterns, any
 *   other numeric array-like is converted from float values (round to nearest even);
 * - `BOOL`: booleans or numbers (non-zero = true);
 * - `STRING`: strings (UTF-8 encoded) or raw byte strings (`Uint8Array[]`).
 */
export type TensorData =
  | ArrayLike<number>
  | ArrayLike<bigint>
  | ArrayLike<boolean>
  | readonly string[]
  | readonly Uint8Array[];

/** Size in bytes of one element of each fixed-size ONNX element type. */
const ELEMENT_SIZE: Partial<Record<DataType, number>> = {
  [TensorProto_DataType.FLOAT]: 4,
  [TensorProto_DataType.UINT8]: 1,
  [TensorProto_DataType.INT8]: 1,
  [TensorProto_DataType.UINT16]: 2,
  [TensorProto_DataType.INT16]: 2,
  [TensorProto_DataType.INT32]: 4,
  [TensorProto_DataType.INT64]: 8,
  [TensorProto_DataType.BOOL]: 1,
  [TensorProto_DataType.FLOAT16]: 2,
  [TensorProto_DataType.DOUBLE]: 8,
  [TensorProto_DataType.UINT32]: 4,
  [TensorProto_DataType.UINT64]: 8,
  [TensorProto_DataType.BFLOAT16]: 2,
};

/**
 * Builds a `TensorProto` (for initializers or `Constant` values).
 *
 * Fixed-size element types are stored in `raw_data` as little-endian bytes;
 * `STRING` tensors are stored in `string_data` (ONNX does not allow raw_data
 * for strings).
 *
 * @param name - Tensor name (the initializer name referenced by nodes).
 * @param dataType - ONNX element type.
 * @param dims - Fixed shape; `[]` is a scalar.
 * @param data - Elements in row-major order; see {@link TensorData}.
 * @throws If the element count does not match `dims` or the type is unsupported.
 */
export function tensor(name: string, dataType: DataType, dims: readonly number[], data: TensorData): TensorProto {
  const count = dims.reduce((a, d) => {
    if (!Number.isInteger(d) || d < 0) throw new Error(`tensor ${name}: invalid dim ${d}`);
    return a * d;
  }, 1);
  if (data.length !== count) {
    throw new Error(`tensor ${name}: shape [${dims.join(",")}] needs ${count} elements, got ${data.length}`);
  }
  const t = create(TensorProtoSchema, { name, dataType, dims: dims.map((d) => BigInt(d)) });

  if (dataType === TensorProto_DataType.STRING) {
    const enc = new TextEncoder();
    t.stringData = Array.from(data as ArrayLike<string | Uint8Array>, (v) => {
      if (typeof v === "string") return enc.encode(v);
      if (v instanceof Uint8Array) return v.slice();
      throw new Error(`tensor ${name}: STRING elements must be strings or Uint8Arrays`);
    });
    return t;
  }

  const size = ELEMENT_SIZE[dataType];
  if (size === undefined) throw new Error(`tensor ${name}: unsupported data type ${dataType}`);
  const raw = new Uint8Array(count * size);
  const view = new DataView(raw.buffer);
  const values = data as ArrayLike<number | bigint | boolean>;
  const num = (i: number): number => Number(values[i]);
  const big = (i: number): bigint => {
    const v = values[i];
    return typeof v === "bigint" ? v : BigInt(Number(v));
  };
  const LE = true;
  for (let i = 0; i < count; i++) {
    const off = i * size;
    switch (dataType) {
      case TensorProto_DataType.FLOAT: view.setFloat32(off, num(i), LE); break;
      case TensorProto_DataType.DOUBLE: view.setFloat64(off, num(i), LE); break;
      case TensorProto_DataType.UINT8: view.setUint8(off, num(i)); break;
      case TensorProto_DataType.INT8: view.setInt8(off, num(i)); break;
      case TensorProto_DataType.UINT16: view.setUint16(off, num(i), LE); break;
      case TensorProto_DataType.INT16: view.setInt16(off, num(i), LE); break;
      case TensorProto_DataType.UINT32: view.setUint32(off, num(i), LE); break;
      case TensorProto_DataType.INT32: view.setInt32(off, num(i), LE); break;
      case TensorProto_DataType.INT64: view.setBigInt64(off, big(i), LE); break;
      case TensorProto_DataType.UINT64: view.setBigUint64(off, big(i), LE); break;
      case TensorProto_DataType.BOOL: view.setUint8(off, values[i] ? 1 : 0); break;
      case TensorProto_DataType.FLOAT16:
        view.setUint16(off, data instanceof Uint16Array ? data[i]! : float32ToFloat16Bits(num(i)), LE);
        break;
      case TensorProto_DataType.BFLOAT16:
        view.setUint16(off, data instanceof Uint16Array ? data[i]! : float32ToBfloat16Bits(num(i)), LE);
        break;
      default:
        throw new Error(`tensor ${name}: unsupported data type ${dataType}`);
    }
  }
  t.rawData = raw;
  return t;
}

// ---------------------------------------------------------------------------
// Half-precision conversion
// ---------------------------------------------------------------------------

// The conversions live in core (src/core/tensors/tensor.ts); the builder exports them
// under the names its callers use.
export const float32ToFloat16Bits = numberToHalf;
export const float16BitsToNumber = halfToNumber;
export const float32ToBfloat16Bits = numberToBf16;
export const bfloat16BitsToNumber = bf16ToNumber;

// ---------------------------------------------------------------------------
// Graphs and models
// ---------------------------------------------------------------------------

/** The parts of a graph; see {@link graph}. */
export interface GraphSpec {
  /** Graph name. */
  name: string;
  /** Graph inputs (built with {@link valueInfo}); initializers need not be listed. */
  inputs: readonly ValueInfoProto[];
  /** Graph outputs. */
  outputs: readonly ValueInfoProto[];
  /** Nodes in topological order. */
  nodes: readonly NodeProto[];
  /** Constant tensors (weights), built with {@link tensor}. */
  initializers?: readonly TensorProto[];
  /** Optional type/shape annotations for intermediate values. */
  valueInfo?: readonly ValueInfoProto[];
  /** Human-readable description. */
  docString?: string;
}

/** Builds a `GraphProto` from its parts. */
export function graph(spec: GraphSpec): GraphProto {
  return create(GraphProtoSchema, {
    name: spec.name,
    input: [...spec.inputs],
    output: [...spec.outputs],
    node: [...spec.nodes],
    initializer: [...(spec.initializers ?? [])],
    valueInfo: [...(spec.valueInfo ?? [])],
    docString: spec.docString ?? "",
  });
}

/** Model-level options; see {@link model}. */
export interface ModelOptions {
  /** ONNX IR version (default {@link DEFAULT_IR_VERSION}). */
  irVersion?: number;
  /** Default-domain opset version (default {@link DEFAULT_OPSET}). */
  opset?: number;
  /** Extra opset imports for other domains, e.g. `{ "com.microsoft": 1 }`. */
  extraOpsets?: Readonly<Record<string, number>>;
  /** `producer_name` (default {@link DEFAULT_PRODUCER}). */
  producerName?: string;
  /** `producer_version` (default `""`). */
  producerVersion?: string;
  /** `model_version` (default 0 = unset). */
  modelVersion?: number;
  /** Human-readable description. */
  docString?: string;
  /** `metadata_props` key/value pairs, written in the given order. */
  metadata?: readonly (readonly [string, string])[];
}

/** Wraps a graph into a `ModelProto` with IR version and opset imports. */
export function model(g: GraphProto, options: ModelOptions = {}): ModelProto {
  const opsetImport = [
    create(OperatorSetIdProtoSchema, { domain: "", version: BigInt(options.opset ?? DEFAULT_OPSET) }),
    ...Object.entries(options.extraOpsets ?? {})
      .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))
      .map(([domain, version]) => create(OperatorSetIdProtoSchema, { domain, version: BigInt(version) })),
  ];
  return create(ModelProtoSchema, {
    irVersion: BigInt(options.irVersion ?? DEFAULT_IR_VERSION),
    opsetImport,
    producerName: options.producerName ?? DEFAULT_PRODUCER,
    producerVersion: options.producerVersion ?? "",
    modelVersion: BigInt(options.modelVersion ?? 0),
    docString: options.docString ?? "",
    graph: g,
    metadataProps: (options.metadata ?? []).map(([key, value]) => create(StringStringEntryProtoSchema, { key, value })),
  });
}

/** Serializes a model to the ONNX protobuf wire format (deterministic). */
export function serializeModel(m: ModelProto): Uint8Array {
  return toBinary(ModelProtoSchema, m);
}

/** Serializes a model and writes it to `path`, creating parent directories. */
export async function writeModel(path: string, m: ModelProto): Promise<void> {
  await mkdir(dirname(path), { recursive: true });
  await writeFile(path, serializeModel(m));
}

// ---------------------------------------------------------------------------
// Ready-made graphs (shared by the model generator and the tests)
// ---------------------------------------------------------------------------

/** Options for the ready-made model helpers. */
export interface SimpleModelOptions {
  /** Input name(s); defaults to `INPUT0` (and `INPUT1`). */
  inputNames?: readonly string[];
  /** Output name(s); defaults to `OUTPUT0` (and `OUTPUT1`). */
  outputNames?: readonly string[];
  /** Graph name (default derived from the op). */
  graphName?: string;
  /** Model options passed to {@link model}. */
  modelOptions?: ModelOptions;
}

/**
 * A one-node `Identity` model: `OUTPUT0 = INPUT0`.
 *
 * @param elemType - Element type of input and output.
 * @param dims - ONNX shape, e.g. `["batch", "n"]` for a batched variable-length vector.
 */
export function identityModel(elemType: DataType, dims: readonly Dim[], options: SimpleModelOptions = {}): ModelProto {
  const [input = "INPUT0"] = options.inputNames ?? [];
  const [output = "OUTPUT0"] = options.outputNames ?? [];
  return model(
    graph({
      name: options.graphName ?? "identity",
      inputs: [valueInfo(input, elemType, dims)],
      outputs: [valueInfo(output, elemType, dims)],
      nodes: [node("Identity", [input], [output], { name: "identity" })],
    }),
    options.modelOptions,
  );
}

/**
 * Triton's classic "simple" graph: `OUTPUT0 = INPUT0 + INPUT1`,
 * `OUTPUT1 = INPUT0 - INPUT1`, all tensors sharing one type and shape.
 *
 * @param elemType - Element type of all four tensors (must support Add/Sub).
 * @param dims - ONNX shape, e.g. `["batch", 16]`.
 */
export function addSubModel(elemType: DataType, dims: readonly Dim[], options: SimpleModelOptions = {}): ModelProto {
  const [in0 = "INPUT0", in1 = "INPUT1"] = options.inputNames ?? [];
  const [out0 = "OUTPUT0", out1 = "OUTPUT1"] = options.outputNames ?? [];
  return model(
    graph({
      name: options.graphName ?? "add_sub",
      inputs: [valueInfo(in0, elemType, dims), valueInfo(in1, elemType, dims)],
      outputs: [valueInfo(out0, elemType, dims), valueInfo(out1, elemType, dims)],
      nodes: [
        node("Add", [in0, in1], [out0], { name: "add" }),
        node("Sub", [in0, in1], [out1], { name: "sub" }),
      ],
    }),
    options.modelOptions,
  );
}

/**
 * `OUTPUT0 = INPUT0 + constant` where the constant is a scalar initializer
 * named `ADDEND` (broadcast over the input).
 *
 * @param elemType - Element type (must support Add).
 * @param dims - ONNX shape of input and output.
 * @param addend - The constant added to every element.
 */
export function addConstantModel(
  elemType: DataType,
  dims: readonly Dim[],
  addend: number,
  options: SimpleModelOptions = {},
): ModelProto {
  const [input = "INPUT0"] = options.inputNames ?? [];
  const [output = "OUTPUT0"] = options.outputNames ?? [];
  return model(
    graph({
      name: options.graphName ?? "add_constant",
      inputs: [valueInfo(input, elemType, dims)],
      outputs: [valueInfo(output, elemType, dims)],
      nodes: [node("Add", [input, "ADDEND"], [output], { name: "add_constant" })],
      initializers: [tensor("ADDEND", elemType, [], [addend])],
    }),
    options.modelOptions,
  );
}
