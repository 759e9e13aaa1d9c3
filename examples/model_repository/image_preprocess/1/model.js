// HWC RGB bytes (as an image decoder gives them) → the CHW floats in [0, 1] image_classifier takes.
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
