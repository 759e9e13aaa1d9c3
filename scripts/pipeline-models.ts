/**
 * The example image pipeline (scripts/make-models.ts writes it into
 * examples/model_repository): two JavaScript models and the ensemble that
 * joins them to the ONNX classifier.
 */
import { renderConfig, type ModelFiles } from "./config-text.js";

/**
 * The seed of Triton's own documentation, in Tritium's terms: an ensemble
 * (`image_pipeline`) of JavaScript pre-processing (`image_preprocess`: HWC
 * bytes → CHW floats), the ONNX classifier, and JavaScript top-3 with labels
 * (`image_top3`). The JavaScript models are plain files written here.
 */
export function imagePipelineModels(labels: readonly string[]): ModelFiles[] {
  const preprocess = `// HWC RGB bytes (as an image decoder gives them) → the CHW floats in [0, 1] image_classifier takes.
export default class {
  execute(requests) {
    return requests.map((r) => {
      const { data, shape } = r.inputs.IMAGE;
      const [batch, h, w, c] = shape;
      const out = new Float32Array(data.length);
      for (let b = 0; b < batch; b++) {
        const base = b * h * w * c;
        for (let y = 0; y < h; y++) for (let x = 0; x < w; x++) for (let k = 0; k < c; k++) {
          out[base + k * h * w + y * w + x] = data[base + (y * w + x) * c + k] / 255;
        }
      }
      return { outputs: { INPUT: { shape: [batch, c, h, w], data: out } } };
    });
  }
}
`;
  const top3 = `// Scores → the 3 best classes as "score:index:label" strings, labels from this model's labels.txt.
import { readFileSync } from "node:fs";
import { join } from "node:path";

export default class {
  initialize(args) {
    this.labels = readFileSync(join(args.model_repository, "labels.txt"), "utf8").trim().split("\\n");
  }
  execute(requests) {
    return requests.map((r) => {
      const { data, shape } = r.inputs.SCORES;
      const [batch, n] = shape;
      const classes = [];
      for (let b = 0; b < batch; b++) {
        const row = Array.from(data.subarray(b * n, (b + 1) * n), (score, index) => ({ score, index }));
        row.sort((x, y) => y.score - x.score || x.index - y.index);
        for (const { score, index } of row.slice(0, 3)) classes.push(\`\${score.toFixed(6)}:\${index}:\${this.labels[index]}\`);
      }
      return { outputs: { CLASSES: { shape: [batch, 3], data: classes } } };
    });
  }
}
`;
  const pipeline = `# Triton's classic ensemble: pre-processing, the classifier, post-processing.
# IMAGE: 32x32 RGB bytes, HWC. CLASSES: the 3 best as "score:index:label".

name: "image_pipeline"
platform: "ensemble"
max_batch_size: 16
input [ { name: "IMAGE" data_type: TYPE_UINT8 dims: [ 32, 32, 3 ] } ]
output [ { name: "CLASSES" data_type: TYPE_STRING dims: [ 3 ] } ]
ensemble_scheduling {
  step [
    {
      model_name: "image_preprocess"
      model_version: -1
      input_map { key: "IMAGE" value: "IMAGE" }
      output_map { key: "INPUT" value: "PIXELS" }
    },
    {
      model_name: "image_classifier"
      model_version: -1
      input_map { key: "INPUT" value: "PIXELS" }
      output_map { key: "OUTPUT" value: "SCORES" }
    },
    {
      model_name: "image_top3"
      model_version: -1
      input_map { key: "SCORES" value: "SCORES" }
      output_map { key: "CLASSES" value: "CLASSES" }
    }
  ]
}
`;
  return [
    {
      name: "image_preprocess",
      versions: new Map(),
      config: renderConfig({
        name: "image_preprocess",
        header: ["JavaScript pre-processing for image_classifier (1/model.js): HWC bytes → CHW floats in [0, 1]."],
        runtime: `backend: "js"`,
        maxBatchSize: 16,
        inputs: [{ name: "IMAGE", type: "UINT8", dims: [32, 32, 3] }],
        outputs: [{ name: "INPUT", type: "FP32", dims: [3, 32, 32] }],
        cpuInstanceGroup: true,
      }),
      extraFiles: new Map([["1/model.js", preprocess]]),
    },
    {
      name: "image_top3",
      versions: new Map(),
      config: renderConfig({
        name: "image_top3",
        header: ["JavaScript post-processing for image_classifier (1/model.js): the 3 best classes with their labels."],
        runtime: `backend: "js"`,
        maxBatchSize: 16,
        inputs: [{ name: "SCORES", type: "FP32", dims: [10] }],
        outputs: [{ name: "CLASSES", type: "STRING", dims: [3] }],
        cpuInstanceGroup: true,
      }),
      extraFiles: new Map([["1/model.js", top3], ["labels.txt", labels.join("\n") + "\n"]]),
    },
    {
      name: "image_pipeline",
      versions: new Map(),
      config: pipeline,
      // An ensemble's version folder holds no model file, but must exist.
      extraFiles: new Map([["1/.keep", ""]]),
    },
  ];
}
