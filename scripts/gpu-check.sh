#!/usr/bin/env bash
# Tritium on a real GPU, from one archive (issue 18).
#
#   scripts/gpu-check.sh pack [archive]   here: builds Tritium and packs what a GPU host needs to run
#                                         it (this Node.js binary, the built server, the production
#                                         dependencies for Linux x64 only) into tritium-gpu-check.tar.xz
#   ./gpu-check.sh run [--cpu]            on the GPU host, in the unpacked folder: needs python3 with a
#                                         CUDA build of PyTorch and numpy, no Node.js. --cpu runs the
#                                         same steps with KIND_CPU, to try the archive without a GPU.
#
# `run` writes a TorchScript CNN and a Python-backend model on KIND_GPU, starts Tritium, and prints:
# results against PyTorch's own on the CPU, proof that the work ran on the GPU (the instance's CUDA
# memory, nvidia-smi's processes, Tritium's nv_gpu_* metrics), and the CNN's throughput on CPU and
# GPU at concurrency 1 and 16 with dynamic batching. About five minutes.
set -euo pipefail

pack() {
  local here archive stage
  here="$(cd "$(dirname "$0")/.." && pwd)"
  archive="$(realpath -m "${1:-tritium-gpu-check.tar.xz}")"
  stage="$(mktemp -d)/tritium"
  (cd "$here" && npm run build >/dev/null)
  mkdir -p "$stage/bin"
  cp "$(command -v node)" "$stage/bin/node"
  cp -r "$here/dist/src" "$stage/dist-src"
  mkdir -p "$stage/dist" && mv "$stage/dist-src" "$stage/dist/src"
  cp -r "$here/python" "$stage/python"
  cp "$here/package.json" "$here/package-lock.json" "$stage/"
  cp "$here/scripts/make-torch-models.py" "$here/scripts/gpu-check.py" "$here/scripts/gpu-check.sh" "$stage/"
  # The production dependencies only, as the lock file pins them; the client workspace is not needed.
  (cd "$stage" && node -e '
    const fs = require("fs"); const p = JSON.parse(fs.readFileSync("package.json", "utf8"));
    delete p.workspaces; delete p.devDependencies; fs.writeFileSync("package.json", JSON.stringify(p, null, 2));' &&
    npm install --omit=dev --ignore-scripts --no-audit --no-fund >/dev/null)
  # onnxruntime-node ships every platform's binaries: keep Linux x64's.
  find "$stage/node_modules/onnxruntime-node/bin" -mindepth 2 -maxdepth 2 -type d ! -name linux -exec rm -rf {} +
  find "$stage/node_modules/onnxruntime-node/bin" -mindepth 3 -maxdepth 3 -type d ! -name x64 -exec rm -rf {} +
  tar -C "$(dirname "$stage")" -cJf "$archive" tritium
  echo "packed $archive: $(du -h "$archive" | cut -f1) ($(du -sh "$stage" | cut -f1) unpacked)"
  rm -rf "$(dirname "$stage")"
}

run() {
  local kind=KIND_GPU here
  [ "${1:-}" = "--cpu" ] && kind=KIND_CPU
  here="$(cd "$(dirname "$0")" && pwd)"
  export MALLOC_ARENA_MAX=2
  python3 - <<'PY'
import torch
print("PyTorch %s, CUDA %s, GPUs: %s" % (torch.__version__, torch.version.cuda, [torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())]))
PY
  exec python3 "$here/gpu-check.py" --root "$here" --kind "$kind"
}

case "${1:-}" in
  pack) shift; pack "$@" ;;
  run) shift; run "$@" ;;
  *) echo "usage: $0 pack [archive] | run [--cpu]" >&2; exit 2 ;;
esac
