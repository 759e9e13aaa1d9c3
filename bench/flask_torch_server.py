"""The baseline a team would write by hand: Flask, one route, the TorchScript model called under no_grad.

    python3 bench/flask_torch_server.py <model.pt> <port>

It speaks just enough of KServe v2 JSON (/v2/health/ready, POST /v2/models/<m>/infer) for the
benchmark's load generator to check its answers the same way as Tritium's.
"""
import sys

import numpy as np
import torch
from flask import Flask, jsonify, request

model = torch.jit.load(sys.argv[1])
model.eval()
app = Flask(__name__)


@app.get("/v2/health/ready")
def ready():
    return ""


@app.post("/v2/models/<name>/infer")
def infer(name):
    body = request.get_json()
    tensor = body["inputs"][0]
    x = torch.from_numpy(np.asarray(tensor["data"], dtype=np.float32).reshape(tensor["shape"]))
    with torch.no_grad():
        y = model(x)
    return jsonify({"model_name": name, "outputs": [{"name": "OUTPUT__0", "datatype": "FP32", "shape": list(y.shape), "data": y.flatten().tolist()}]})


if __name__ == "__main__":
    app.run(host="127.0.0.1", port=int(sys.argv[2]), threaded=True)
