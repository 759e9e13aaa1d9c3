/**
 * Generates the ONNX models (and their Triton `config.pbtxt` files) used by
 * the example model repository and by the test fixtures.
 *
 * Usage (after `npm run build`):
 *
 * ```sh
 * node dist/scripts/make-models.js [outRoot]
 * ```
 *
 * `outRoot` defaults to the repository root. Files are written to
 * `<outRoot>/examples/model_repository/` and
 * `<outRoot>/test/fixtures/model_repository/`.
 *
 * Output is deterministic: random weights come from a fixed-seed PRNG
 * (mulberry32, seed {@link SEED}), so running the generator twice produces
 * byte-identical files.
 *
 * @module
 */

import { existsSync, readFileSync } from "node:fs";
import { mkdir, rm, writeFile } from "node:fs/promises";
import { dirname, join, relative, resolve } from "node:path";
import { fileURLToPath, pathToFileURL } from "node:url";

import {
  DataType,
  addConstantModel,
  addSubModel,
  attrInt,
  attrInts,
  graph,
  identityModel,
  model,
  node,
  tensor,
  valueInfo,
  writeModel,
} from "./onnx-builder.js";
import type { ModelProto } from "../src/gen/onnx/onnx_pb.js";
import { renderConfig, type ModelFiles } from "./config-text.js";
import { imagePipelineModels } from "./pipeline-models.js";

/** Seed of the PRNG that produces the image classifier's weights. */
export const SEED = 20261125;


// ---------------------------------------------------------------------------
// Deterministic PRNG
// ---------------------------------------------------------------------------

/** mulberry32: a tiny, fast 32-bit PRNG. Returns floats in [0, 1). */
export function mulberry32(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** `count` float32 values drawn uniformly from [-scale, scale). */
function uniform(rand: () => number, count: number, scale: number): Float32Array {
  const out = new Float32Array(count);
  for (let i = 0; i < count; i++) out[i] = (rand() * 2 - 1) * scale;
  return out;
}

// ---------------------------------------------------------------------------
// config.pbtxt rendering
// ---------------------------------------------------------------------------

/** Triton datatypes whose identity fixtures are generated, with their ONNX and config types. */
export const IDENTITY_TYPES: readonly { triton: string; config: string; onnx: DataType }[] = [
  { triton: "BOOL", config: "BOOL", onnx: DataType.BOOL },
  { triton: "UINT8", config: "UINT8", onnx: DataType.UINT8 },
  { triton: "UINT16", config: "UINT16", onnx: DataType.UINT16 },
  { triton: "UINT32", config: "UINT32", onnx: DataType.UINT32 },
  { triton: "UINT64", config: "UINT64", onnx: DataType.UINT64 },
  { triton: "INT8", config: "INT8", onnx: DataType.INT8 },
  { triton: "INT16", config: "INT16", onnx: DataType.INT16 },
  { triton: "INT32", config: "INT32", onnx: DataType.INT32 },
  { triton: "INT64", config: "INT64", onnx: DataType.INT64 },
  { triton: "FP16", config: "FP16", onnx: DataType.FLOAT16 },
  { triton: "FP32", config: "FP32", onnx: DataType.FLOAT },
  { triton: "FP64", config: "FP64", onnx: DataType.DOUBLE },
  { triton: "BYTES", config: "STRING", onnx: DataType.STRING },
  // BF16 is deliberately absent: see the note in identityFixtures().
];

/** Triton's classic "simple" model: INT32 [16] add/sub with a batch dimension. */
function simpleModel(): ModelProto {
  return addSubModel(DataType.INT32, ["batch", 16], { graphName: "simple" });
}

/** The CIFAR-10 class names, written to the classifier's labels.txt. */
const CIFAR10_LABELS = [
  "airplane", "automobile", "bird", "cat", "deer",
  "dog", "frog", "horse", "ship", "truck",
];

/**
 * The pooled ReLU features of the classifier CNNs are all non-negative and
 * share a common level, so each class's weight row is centred (sum 0): the
 * logits then depend on how the features differ from each other, and
 * different images win different classes.
 */
function centreRows(weights: Float32Array, columns: number): void {
  for (let row = 0; row < weights.length / columns; row++) {
    const r = weights.subarray(row * columns, (row + 1) * columns);
    const mean = r.reduce((a, v) => a + v, 0) / columns;
    for (let i = 0; i < columns; i++) r[i] = r[i]! - mean;
  }
}

/**
 * A small CNN with random (fixed-seed) weights:
 * Conv(3→8, 3x3, pad 1) → Relu → MaxPool 2x2 → Conv(8→16, 3x3, pad 1) → Relu
 * → GlobalAveragePool → Flatten → Gemm(16→10) → Softmax.
 *
 * Weights use a He-style uniform init (scaled by fan-in) so that the logits
 * vary noticeably between inputs and the softmax is not flat.
 */
function imageClassifierModel(): ModelProto {
  const rand = mulberry32(SEED);
  const he = (fanIn: number): number => Math.sqrt(6 / fanIn);
  const w1 = uniform(rand, 8 * 3 * 3 * 3, he(3 * 3 * 3));
  const b1 = uniform(rand, 8, 0.1);
  const w2 = uniform(rand, 16 * 8 * 3 * 3, he(8 * 3 * 3));
  const b2 = uniform(rand, 16, 0.1);
  const w3 = uniform(rand, 10 * 16, he(16) * 2);
  centreRows(w3, 16);
  const b3 = uniform(rand, 10, 0.1);
  const F = DataType.FLOAT;
  const conv = [attrInts("kernel_shape", [3, 3]), attrInts("pads", [1, 1, 1, 1]), attrInts("strides", [1, 1])];
  return model(
    graph({
      name: "image_classifier",
      docString: `Tiny random-weight CNN for 32x32 RGB images (mulberry32 seed ${SEED}); not trained.`,
      inputs: [valueInfo("INPUT", F, ["batch", 3, 32, 32])],
      outputs: [valueInfo("OUTPUT", F, ["batch", 10])],
      nodes: [
        node("Conv", ["INPUT", "conv1.weight", "conv1.bias"], ["conv1"], { name: "conv1", attributes: conv }),
        node("Relu", ["conv1"], ["relu1"], { name: "relu1" }),
        node("MaxPool", ["relu1"], ["pool1"], {
          name: "pool1",
          attributes: [attrInts("kernel_shape", [2, 2]), attrInts("strides", [2, 2])],
        }),
        node("Conv", ["pool1", "conv2.weight", "conv2.bias"], ["conv2"], { name: "conv2", attributes: conv }),
        node("Relu", ["conv2"], ["relu2"], { name: "relu2" }),
        node("GlobalAveragePool", ["relu2"], ["gap"], { name: "gap" }),
        node("Flatten", ["gap"], ["flat"], { name: "flatten", attributes: [attrInt("axis", 1)] }),
        node("Gemm", ["flat", "fc.weight", "fc.bias"], ["logits"], {
          name: "fc",
          attributes: [attrInt("transB", 1)],
        }),
        node("Softmax", ["logits"], ["OUTPUT"], { name: "softmax", attributes: [attrInt("axis", 1)] }),
      ],
      initializers: [
        tensor("conv1.weight", F, [8, 3, 3, 3], w1),
        tensor("conv1.bias", F, [8], b1),
        tensor("conv2.weight", F, [16, 8, 3, 3], w2),
        tensor("conv2.bias", F, [16], b2),
        tensor("fc.weight", F, [10, 16], w3),
        tensor("fc.bias", F, [10], b3),
      ],
    }),
  );
}

/**
 * A mid-size CNN for 64x64 RGB images, sized so that one image takes a few
 * milliseconds of ONNX Runtime's CPU time: where batching pays because
 * compute dominates, not the hop to the instance.
 * Conv(3→64) → Relu → MaxPool 2x2 → Conv(64→128) → Relu
 * → Conv(128→128) → Relu → GlobalAveragePool → Flatten → Gemm(128→10) → Softmax,
 * every Conv 3x3 with pad 1; random He-style weights from the fixed seed.
 */
function imageCnnModel(): ModelProto {
  const rand = mulberry32(SEED + 1);
  const he = (fanIn: number): number => Math.sqrt(6 / fanIn);
  const layers = [[3, 64], [64, 128], [128, 128]] as const;
  const weights = layers.map(([cin, cout]) => ({ w: uniform(rand, cout * cin * 9, he(cin * 9)), b: uniform(rand, cout, 0.1) }));
  const fcw = uniform(rand, 10 * 128, he(128) * 2);
  centreRows(fcw, 128);
  const fcb = uniform(rand, 10, 0.1);
  const F = DataType.FLOAT;
  const conv = [attrInts("kernel_shape", [3, 3]), attrInts("pads", [1, 1, 1, 1]), attrInts("strides", [1, 1])];
  const pool = [attrInts("kernel_shape", [2, 2]), attrInts("strides", [2, 2])];
  return model(
    graph({
      name: "image_cnn",
      docString: `Mid-size random-weight CNN for 64x64 RGB images (mulberry32 seed ${SEED + 1}); not trained.`,
      inputs: [valueInfo("INPUT", F, ["batch", 3, 64, 64])],
      outputs: [valueInfo("OUTPUT", F, ["batch", 10])],
      nodes: [
        node("Conv", ["INPUT", "conv1.weight", "conv1.bias"], ["conv1"], { name: "conv1", attributes: conv }),
        node("Relu", ["conv1"], ["relu1"], { name: "relu1" }),
        node("MaxPool", ["relu1"], ["pool1"], { name: "pool1", attributes: pool }),
        node("Conv", ["pool1", "conv2.weight", "conv2.bias"], ["conv2"], { name: "conv2", attributes: conv }),
        node("Relu", ["conv2"], ["relu2"], { name: "relu2" }),
        node("Conv", ["relu2", "conv3.weight", "conv3.bias"], ["conv3"], { name: "conv3", attributes: conv }),
        node("Relu", ["conv3"], ["relu3"], { name: "relu3" }),
        node("GlobalAveragePool", ["relu3"], ["gap"], { name: "gap" }),
        node("Flatten", ["gap"], ["flat"], { name: "flatten", attributes: [attrInt("axis", 1)] }),
        node("Gemm", ["flat", "fc.weight", "fc.bias"], ["logits"], { name: "fc", attributes: [attrInt("transB", 1)] }),
        node("Softmax", ["logits"], ["OUTPUT"], { name: "softmax", attributes: [attrInt("axis", 1)] }),
      ],
      initializers: [
        ...weights.flatMap(({ w, b }, i) => [
          tensor(`conv${i + 1}.weight`, F, [layers[i]![1], layers[i]![0], 3, 3], w),
          tensor(`conv${i + 1}.bias`, F, [layers[i]![1]], b),
        ]),
        tensor("fc.weight", F, [10, 128], fcw),
        tensor("fc.bias", F, [10], fcb),
      ],
    }),
  );
}

function one(m: ModelProto): ReadonlyMap<string, ModelProto> {
  return new Map([["1", m]]);
}

/** The models of `examples/model_repository/`. */
function exampleModels(): ModelFiles[] {
  return [
    {
      name: "simple",
      versions: one(simpleModel()),
      config: renderConfig({
        name: "simple",
        header: [
          "Triton's classic \"simple\" example, as an ONNX model.",
          "OUTPUT0 = INPUT0 + INPUT1, OUTPUT1 = INPUT0 - INPUT1 (element-wise).",
          "max_batch_size > 0: clients send shape [ batch, 16 ] with batch <= 8.",
        ],
        maxBatchSize: 8,
        inputs: [
          { name: "INPUT0", type: "INT32", dims: [16] },
          { name: "INPUT1", type: "INT32", dims: [16] },
        ],
        outputs: [
          { name: "OUTPUT0", type: "INT32", dims: [16] },
          { name: "OUTPUT1", type: "INT32", dims: [16] },
        ],
        cpuInstanceGroup: true,
      }),
    },
    {
      name: "identity_fp32",
      versions: one(identityModel(DataType.FLOAT, ["batch", "n"], { graphName: "identity_fp32" })),
      config: renderConfig({
        name: "identity_fp32",
        header: ["Returns its input unchanged. dims [ -1 ]: any length per batch item."],
        maxBatchSize: 8,
        inputs: [{ name: "INPUT0", type: "FP32", dims: [-1] }],
        outputs: [{ name: "OUTPUT0", type: "FP32", dims: [-1] }],
        cpuInstanceGroup: true,
      }),
    },
    {
      name: "simple_string",
      versions: one(identityModel(DataType.STRING, ["batch", "n"], { graphName: "simple_string" })),
      config: renderConfig({
        name: "simple_string",
        header: [
          "Identity over strings: BYTES in, the same BYTES out.",
          "Triton's BYTES datatype is TYPE_STRING in model configurations.",
        ],
        maxBatchSize: 8,
        inputs: [{ name: "INPUT0", type: "STRING", dims: [-1] }],
        outputs: [{ name: "OUTPUT0", type: "STRING", dims: [-1] }],
        cpuInstanceGroup: true,
      }),
    },
    {
      name: "image_classifier",
      versions: one(imageClassifierModel()),
      config: renderConfig({
        name: "image_classifier",
        header: [
          "A tiny CNN with random (untrained, fixed-seed) weights for 32x32 RGB images,",
          "laid out as CHW floats. OUTPUT holds softmax probabilities over the",
          "10 CIFAR-10 classes named in labels.txt, so the classification extension",
          "(parameters { classification: k }) returns \"score:index:label\" strings.",
        ],
        maxBatchSize: 16,
        inputs: [{ name: "INPUT", type: "FP32", dims: [3, 32, 32] }],
        outputs: [{ name: "OUTPUT", type: "FP32", dims: [10], labelFilename: "labels.txt" }],
        cpuInstanceGroup: true,
      }),
      extraFiles: new Map([["labels.txt", CIFAR10_LABELS.join("\n") + "\n"]]),
    },
    ...imagePipelineModels(CIFAR10_LABELS),
    {
      name: "image_cnn",
      versions: one(imageCnnModel()),
      config: renderConfig({
        name: "image_cnn",
        header: [
          "A mid-size CNN with random (untrained, fixed-seed) weights for 64x64 RGB",
          "images as CHW floats: a few milliseconds of compute per image on one core,",
          "so requests are batched. OUTPUT: softmax over the CIFAR-10 classes.",
        ],
        maxBatchSize: 32,
        inputs: [{ name: "INPUT", type: "FP32", dims: [3, 64, 64] }],
        outputs: [{ name: "OUTPUT", type: "FP32", dims: [10], labelFilename: "labels.txt" }],
        cpuInstanceGroup: true,
        extra: "dynamic_batching { max_queue_delay_microseconds: 500 }\n",
      }),
      extraFiles: new Map([["labels.txt", CIFAR10_LABELS.join("\n") + "\n"]]),
    },
  ];
}

/**
 * One `identity_<type>` fixture per Triton datatype that ONNX Runtime's CPU
 * `Identity` kernel accepts.
 *
 * BF16 is not generated: the native ONNX Runtime loads a bfloat16 Identity
 * model, but onnxruntime-node 1.30's JS wrapper then throws in
 * `InferenceSession.create` while converting the I/O metadata
 * ("Unsupported data type: 16"), and its JS `Tensor` has no bfloat16 type
 * either, so BF16 cannot be served through the ONNX Runtime backend from Node.js.
 */
function identityFixtures(): ModelFiles[] {
  return IDENTITY_TYPES.map(({ triton, config, onnx }) => {
    const name = `identity_${triton.toLowerCase()}`;
    return {
      name,
      versions: one(identityModel(onnx, ["batch", "n"], { graphName: name })),
      config: renderConfig({
        name,
        header: [`Identity for Triton datatype ${triton}: OUTPUT0 = INPUT0.`],
        maxBatchSize: 8,
        inputs: [{ name: "INPUT0", type: config, dims: [-1] }],
        outputs: [{ name: "OUTPUT0", type: config, dims: [-1] }],
        // One instance each keeps a repository of 13 fixtures light for tests.
        cpuInstanceGroup: true,
      }),
    };
  });
}

/**
 * Two stateful models for the sequence batcher, stateless ONNX graphs that
 * compute from what the batcher injects:
 * - `sequence_control`: OUTPUT = (INPUT + START) * READY, and the CORRID and
 *   END control values echoed back, so tests see exactly what was injected.
 * - `sequence_state`: implicit state; OUTPUT_STATE = INPUT_STATE + INPUT and
 *   OUTPUT = OUTPUT_STATE, so OUTPUT is the running sum of the sequence.
 */
function sequenceFixtures(): ModelFiles[] {
  const b = ["batch", 1] as const;
  const control = model(
    graph({
      name: "sequence_control",
      inputs: [
        valueInfo("INPUT", DataType.INT32, b),
        valueInfo("START", DataType.INT32, b),
        valueInfo("READY", DataType.INT32, b),
        valueInfo("END", DataType.INT32, b),
        valueInfo("CORRID", DataType.UINT64, b),
      ],
      outputs: [
        valueInfo("OUTPUT", DataType.INT32, b),
        valueInfo("CORRID_OUT", DataType.UINT64, b),
        valueInfo("END_OUT", DataType.INT32, b),
      ],
      nodes: [
        node("Add", ["INPUT", "START"], ["sum"]),
        node("Mul", ["sum", "READY"], ["OUTPUT"]),
        node("Identity", ["CORRID"], ["CORRID_OUT"]),
        node("Identity", ["END"], ["END_OUT"]),
      ],
    }),
  );
  const state = model(
    graph({
      name: "sequence_state",
      inputs: [valueInfo("INPUT", DataType.INT32, b), valueInfo("INPUT_STATE", DataType.INT32, b)],
      outputs: [valueInfo("OUTPUT", DataType.INT32, b), valueInfo("OUTPUT_STATE", DataType.INT32, b)],
      nodes: [node("Add", ["INPUT_STATE", "INPUT"], ["OUTPUT_STATE"]), node("Identity", ["OUTPUT_STATE"], ["OUTPUT"])],
    }),
  );
  const io = `input [ { name: "INPUT" data_type: TYPE_INT32 dims: [ 1 ] } ]\n`;
  return [
    {
      name: "sequence_control",
      versions: one(control),
      config:
        `# Sequence batcher, direct strategy: OUTPUT = (INPUT + START) * READY;\n` +
        `# CORRID_OUT and END_OUT echo the injected control values.\n` +
        `name: "sequence_control"\nplatform: "onnxruntime_onnx"\nmax_batch_size: 4\n` +
        io +
        `output [\n  { name: "OUTPUT" data_type: TYPE_INT32 dims: [ 1 ] },\n` +
        `  { name: "CORRID_OUT" data_type: TYPE_UINT64 dims: [ 1 ] },\n` +
        `  { name: "END_OUT" data_type: TYPE_INT32 dims: [ 1 ] }\n]\n` +
        `instance_group [ { count: 1 kind: KIND_CPU } ]\n` +
        `sequence_batching {\n  max_sequence_idle_microseconds: 2000000\n  direct { }\n  control_input [\n` +
        `    { name: "START" control [ { kind: CONTROL_SEQUENCE_START int32_false_true: [ 0, 1 ] } ] },\n` +
        `    { name: "READY" control [ { kind: CONTROL_SEQUENCE_READY int32_false_true: [ 0, 1 ] } ] },\n` +
        `    { name: "END" control [ { kind: CONTROL_SEQUENCE_END int32_false_true: [ 0, 1 ] } ] },\n` +
        `    { name: "CORRID" control [ { kind: CONTROL_SEQUENCE_CORRID data_type: TYPE_UINT64 } ] }\n  ]\n}\n`,
    },
    {
      name: "sequence_state",
      versions: one(state),
      config:
        `# Implicit state: OUTPUT is the running sum of INPUT over the sequence.\n` +
        `name: "sequence_state"\nplatform: "onnxruntime_onnx"\nmax_batch_size: 4\n` +
        io +
        `output [ { name: "OUTPUT" data_type: TYPE_INT32 dims: [ 1 ] } ]\n` +
        `instance_group [ { count: 1 kind: KIND_CPU } ]\n` +
        `sequence_batching {\n  max_sequence_idle_microseconds: 500000\n  oldest { max_candidate_sequences: 4 }\n` +
        `  state [ { input_name: "INPUT_STATE" output_name: "OUTPUT_STATE" data_type: TYPE_INT32 dims: [ 1 ]\n` +
        `            initial_state: { data_type: TYPE_INT32 dims: [ 1 ] zero_data: true name: "zero" } } ]\n}\n`,
    },
  ];
}

/** The models of `test/fixtures/model_repository/`. */
function fixtureModels(): ModelFiles[] {
  const versioned = new Map<string, ModelProto>();
  for (const v of [1, 2, 3]) {
    versioned.set(String(v), addConstantModel(DataType.INT32, ["batch", 16], v, { graphName: `versioned_v${v}` }));
  }
  return [
    ...identityFixtures(),
    ...sequenceFixtures(),
    {
      name: "add_sub_fp32",
      versions: one(addSubModel(DataType.FLOAT, [4], { graphName: "add_sub_fp32" })),
      config: renderConfig({
        name: "add_sub_fp32",
        header: [
          "A non-batching model: max_batch_size 0 means the dims below are the",
          "full tensor shape, so clients send exactly [ 4 ] (no batch dimension).",
          "OUTPUT0 = INPUT0 + INPUT1, OUTPUT1 = INPUT0 - INPUT1.",
        ],
        maxBatchSize: 0,
        inputs: [
          { name: "INPUT0", type: "FP32", dims: [4] },
          { name: "INPUT1", type: "FP32", dims: [4] },
        ],
        outputs: [
          { name: "OUTPUT0", type: "FP32", dims: [4] },
          { name: "OUTPUT1", type: "FP32", dims: [4] },
        ],
      }),
    },
    {
      // No config.pbtxt on purpose: the server must auto-complete it from the model.
      name: "autocomplete_simple",
      versions: one(simpleModel()),
    },
    {
      name: "versioned",
      versions: versioned,
      config: renderConfig({
        name: "versioned",
        header: [
          "Three versions; version N computes OUTPUT0 = INPUT0 + N.",
          "No version_policy is given, so Triton's default applies:",
          "version_policy: { latest: { num_versions: 1 } } (only version 3 is served).",
          "The not_a_version/ folder is ignored because its name is not a number.",
        ],
        maxBatchSize: 8,
        inputs: [{ name: "INPUT0", type: "INT32", dims: [16] }],
        outputs: [{ name: "OUTPUT0", type: "INT32", dims: [16] }],
      }),
      extraFiles: new Map([
        [
          "not_a_version/README.txt",
          "This folder's name is not a positive integer, so it is not a model version\n" +
            "and the server must ignore it (as Triton does).\n",
        ],
      ]),
    },
  ];
}

// ---------------------------------------------------------------------------
// Writing
// ---------------------------------------------------------------------------

async function writeText(path: string, text: string): Promise<void> {
  await mkdir(dirname(path), { recursive: true });
  await writeFile(path, text);
}

/** Writes one repository's models; returns the written paths. */
async function writeRepository(repoDir: string, models: readonly ModelFiles[]): Promise<string[]> {
  const written: string[] = [];
  for (const m of models) {
    const dir = join(repoDir, m.name);
    for (const [version, proto] of m.versions) {
      const path = join(dir, version, "model.onnx");
      await writeModel(path, proto);
      written.push(path);
    }
    const configPath = join(dir, "config.pbtxt");
    if (m.config !== undefined) {
      await writeText(configPath, m.config);
      written.push(configPath);
    } else {
      await rm(configPath, { force: true });
    }
    for (const [rel, text] of m.extraFiles ?? []) {
      const path = join(dir, rel);
      await writeText(path, text);
      written.push(path);
    }
  }
  return written;
}

/**
 * Generates all example and fixture models under `outRoot`.
 *
 * @param outRoot - Directory that receives `examples/model_repository/` and
 *   `test/fixtures/model_repository/`.
 * @returns The absolute paths of all files written.
 */
export async function generateModels(outRoot: string): Promise<string[]> {
  const root = resolve(outRoot);
  return [
    ...(await writeRepository(join(root, "examples", "model_repository"), exampleModels())),
    ...(await writeRepository(join(root, "test", "fixtures", "model_repository"), fixtureModels())),
  ];
}

/** Finds the repository root: the nearest ancestor of this file with Tritium's package.json. */
export function findRepoRoot(start = dirname(fileURLToPath(import.meta.url))): string {
  let dir = start;
  for (;;) {
    const pkg = join(dir, "package.json");
    if (existsSync(pkg)) {
      try {
        if ((JSON.parse(readFileSync(pkg, "utf8")) as { name?: unknown }).name === "tritium") return dir;
      } catch {
        // not ours; keep walking up
      }
    }
    const parent = dirname(dir);
    if (parent === dir) throw new Error("make-models: could not find the repository root (package.json)");
    dir = parent;
  }
}

async function main(): Promise<void> {
  const outRoot = resolve(process.argv[2] ?? findRepoRoot());
  const written = await generateModels(outRoot);
  for (const path of written) console.log(relative(outRoot, path));
  console.log(`wrote ${written.length} files under ${outRoot}`);
}

if (process.argv[1] !== undefined && import.meta.url === pathToFileURL(resolve(process.argv[1])).href) {
  main().catch((err: unknown) => {
    console.error(err);
    process.exitCode = 1;
  });
}
