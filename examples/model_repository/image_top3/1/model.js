// Scores → the 3 best classes as "score:index:label" strings, labels from this model's labels.txt.
import { readFileSync } from "node:fs";
import { join } from "node:path";

export default class {
  initialize(args) {
    this.labels = readFileSync(join(args.model_repository, "labels.txt"), "utf8").trim().split("\n");
  }
  execute(requests) {
    return requests.map((r) => {
      const { data, shape } = r.inputs.SCORES;
      const [batch, n] = shape;
      const classes = [];
      for (let b = 0; b < batch; b++) {
        const row = Array.from(data.subarray(b * n, (b + 1) * n), (score, index) => ({ score, index }));
        row.sort((x, y) => y.score - x.score || x.index - y.index);
        for (const { score, index } of row.slice(0, 3)) classes.push(`${score.toFixed(6)}:${index}:${this.labels[index]}`);
      }
      return { outputs: { CLASSES: { shape: [batch, 3], data: classes } } };
    });
  }
}
