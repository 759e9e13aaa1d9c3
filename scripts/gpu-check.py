"""The GPU check's steps, run by `gpu-check.sh run` in the unpacked archive (see there).

Makes two repositories (models on the GPU and the same on the CPU), starts Tritium on each in
turn with the archive's Node.js, and prints what the issue asks to see. Standard library,
numpy and torch only: the GPU host has no Node.js and no network.
"""
import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request

import numpy as np

PY_MODEL = '''
import json
import numpy as np
import torch
import triton_python_backend_utils as pb_utils


class TritonPythonModel:
    """Doubles its input with torch on the instance's device and says where it ran."""

    def initialize(self, args):
        gpu = args["model_instance_kind"] == "GPU"
        self.device = torch.device("cuda:%s" % args["model_instance_device_id"] if gpu else "cpu")
        self.weights = torch.ones(1024, 1024, device=self.device)  # memory the check can see

    def execute(self, requests):
        out = []
        for r in requests:
            x = torch.from_numpy(pb_utils.get_input_tensor_by_name(r, "X").as_numpy()).to(self.device)
            where = {"device": str(self.device), "cuda_memory_allocated": torch.cuda.memory_allocated(self.device) if self.device.type == "cuda" else 0,
                     "name": torch.cuda.get_device_name(self.device) if self.device.type == "cuda" else "cpu"}
            out.append(pb_utils.InferenceResponse([
                pb_utils.Tensor("Y", (x * 2).cpu().numpy()),
                pb_utils.Tensor("WHERE", np.array([json.dumps(where).encode()], dtype=np.object_)),
            ]))
        return out
'''

PY_CONFIG = '''name: "py_gpu"
backend: "python"
max_batch_size: 0
input [ { name: "X" data_type: TYPE_FP32 dims: [ 4 ] } ]
output [ { name: "Y" data_type: TYPE_FP32 dims: [ 4 ] }, { name: "WHERE" data_type: TYPE_STRING dims: [ 1 ] } ]
instance_group [ { kind: %s count: 1 } ]
'''


def post(port, model, body, timeout=60):
    req = urllib.request.Request("http://127.0.0.1:%d/v2/models/%s/infer" % (port, model), data=json.dumps(body).encode(), method="POST")
    try:
        with urllib.request.urlopen(req, timeout=timeout) as res:
            return json.loads(res.read())
    except urllib.error.HTTPError as e:
        sys.exit("%s answered %d: %s" % (model, e.code, e.read().decode()))


def get(port, path):
    with urllib.request.urlopen("http://127.0.0.1:%d%s" % (port, path), timeout=10) as res:
        return res.read().decode()


def make_repository(root, work, kind):
    repo = os.path.join(work, kind)
    subprocess.run([sys.executable, os.path.join(root, "make-torch-models.py"), repo], check=True, stdout=subprocess.DEVNULL)
    for name in os.listdir(repo):
        if name not in ("torch_cnn", "expected.json"):
            shutil.rmtree(os.path.join(repo, name), ignore_errors=True)
    with open(os.path.join(repo, "torch_cnn", "config.pbtxt"), "a") as f:
        f.write("instance_group [ { kind: %s count: 1 } ]\n" % kind)
    os.makedirs(os.path.join(repo, "py_gpu", "1"))
    with open(os.path.join(repo, "py_gpu", "config.pbtxt"), "w") as f:
        f.write(PY_CONFIG % kind)
    with open(os.path.join(repo, "py_gpu", "1", "model.py"), "w") as f:
        f.write(PY_MODEL)
    return repo


_metrics_ports = {}


def metrics_port(http_port):
    """The metrics port of the server on `http_port` (chosen once)."""
    return _metrics_ports.setdefault(http_port, free_port())


def free_port():
    import socket
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start(root, repo, port):
    log = open(os.path.join(repo, "server.log"), "w")
    proc = subprocess.Popen([os.path.join(root, "bin", "node"), os.path.join(root, "dist", "src", "cli", "main.js"),
                             "--model-repository", repo, "--http-port", str(port), "--grpc-port", str(free_port()), "--metrics-port", str(metrics_port(port)),
                             "--metrics-interval-ms", "500"], stdout=log, stderr=subprocess.STDOUT)
    for _ in range(600):
        try:
            if get(port, "/v2/health/ready") == "":
                return proc
        except OSError:
            pass
        if proc.poll() is not None:
            break
        time.sleep(0.2)
    proc.kill()
    sys.exit("Tritium did not become ready:\n" + open(os.path.join(repo, "server.log")).read()[-4000:])


def throughput(port, body, concurrency, seconds=10.0):
    done = [0]
    lock = threading.Lock()
    end = time.time() + seconds

    def loop():
        while time.time() < end:
            post(port, "torch_cnn", body)
            with lock:
                done[0] += 1

    threads = [threading.Thread(target=loop) for _ in range(concurrency)]
    t0 = time.time()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return done[0] / (time.time() - t0)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--root", required=True)
    ap.add_argument("--kind", default="KIND_GPU")
    args = ap.parse_args()
    work = tempfile.mkdtemp(prefix="tritium-gpu-check-")
    kinds = [args.kind] + (["KIND_CPU"] if args.kind == "KIND_GPU" else [])
    rates = {}
    ok = True
    for i, kind in enumerate(kinds):
        repo = make_repository(args.root, work, kind)
        expected = json.load(open(os.path.join(repo, "expected.json")))["torch_cnn"]
        port = free_port()
        proc = start(args.root, repo, port)
        try:
            shape, values = expected["inputs"]["INPUT__0"]
            body = {"inputs": [{"name": "INPUT__0", "datatype": "FP32", "shape": shape, "data": values}]}
            got = np.array(post(port, "torch_cnn", body)["outputs"][0]["data"], dtype=np.float32)
            want = np.array(expected["outputs"]["OUTPUT__0"][1], dtype=np.float32).reshape(-1)
            diff = float(np.abs(got.reshape(-1) - want).max())
            ok = ok and diff < 1e-4
            print("[%s] torch_cnn against PyTorch on the CPU: max |difference| %.2e (%s)" % (kind, diff, "ok" if diff < 1e-4 else "TOO LARGE"))
            r = post(port, "py_gpu", {"inputs": [{"name": "X", "datatype": "FP32", "shape": [4], "data": [1, 2, 3, 4]}]})
            outputs = {o["name"]: o for o in r["outputs"]}
            where = json.loads(outputs["WHERE"]["data"][0])
            print("[%s] py_gpu: Y = %s, ran on %s (%s), CUDA memory allocated by the instance: %d bytes"
                  % (kind, outputs["Y"]["data"], where["device"], where["name"], where["cuda_memory_allocated"]))
            if kind == "KIND_GPU":
                ok = ok and where["device"].startswith("cuda") and where["cuda_memory_allocated"] > 0
                apps = subprocess.run(["nvidia-smi", "--query-compute-apps=pid,process_name,used_memory", "--format=csv,noheader"], capture_output=True, text=True).stdout
                print("[%s] nvidia-smi compute processes:\n%s" % (kind, apps.rstrip()))
                time.sleep(1)
                gpu_lines = [l for l in get(metrics_port(port), "/metrics").splitlines() if l.startswith(("nv_gpu_", "nv_energy"))]
                print("[%s] Tritium's GPU metrics:\n  %s" % (kind, "\n  ".join(gpu_lines) or "(none)"))
                log = open(os.path.join(repo, "server.log")).read()
                print("[%s] %s" % (kind, "\n".join(l for l in log.splitlines() if "Collecting metrics for GPU" in l) or "no 'Collecting metrics for GPU' line"))
            one = {"inputs": [{"name": "INPUT__0", "datatype": "FP32", "shape": [1] + shape[1:], "data": values[: len(values) // shape[0]]}]}
            for c in (1, 16):
                rates[(kind, c)] = throughput(port, one, c)
                print("[%s] torch_cnn at concurrency %d: %.0f infer/s" % (kind, c, rates[(kind, c)]))
        finally:
            proc.terminate()
            proc.wait(timeout=60)
    if ("KIND_GPU", 16) in rates:
        for c in (1, 16):
            print("GPU over CPU at concurrency %d: %.2fx" % (c, rates[("KIND_GPU", c)] / rates[("KIND_CPU", c)]))
    print("GPU CHECK %s" % ("PASSED" if ok else "FAILED"))
    shutil.rmtree(work, ignore_errors=True)
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
