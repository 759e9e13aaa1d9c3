"""Writes TorchScript test models into a model repository, with PyTorch's own answers to fixed inputs.

    python3 scripts/make-torch-models.py <repository> [--onnx]

Seeded, so every run writes the same weights. Each model gets config.pbtxt and 1/model.pt; the
repository gets expected.json: {model: {"inputs": {name: [shape, values]}, "outputs": {name: [shape, values]}}}.
"""
import json
import os
import sys
from typing import Dict

import torch

torch.manual_seed(20261205)


class Cnn(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = torch.nn.Conv2d(3, 8, 3, padding=1)
        self.fc = torch.nn.Linear(8 * 16 * 16, 10)

    def forward(self, image):
        x = torch.nn.functional.max_pool2d(torch.relu(self.conv(image)), 2)
        return torch.softmax(self.fc(x.flatten(1)), dim=1)


class Branchy(torch.nn.Module):
    """Control flow that tracing would freeze: scripted."""

    def forward(self, x, threshold):
        if bool(x.sum() > threshold.sum()):
            return x * 2.0
        out = x
        for _ in range(3):
            out = out - 1.0
        return out


class Several(torch.nn.Module):
    def forward(self, a, b):
        return a + b, a * b, torch.maximum(a, b).to(torch.int32)


class Named(torch.nn.Module):
    def forward(self, x) -> Dict[str, torch.Tensor]:
        return {"doubled": x * 2, "negated": -x}


class Throws(torch.nn.Module):
    def forward(self, x):
        if bool(x.min() < 0):
            raise RuntimeError("negative input")
        return x.sqrt()


def tensor_config(name, dtype, dims):
    return '{ name: "%s" data_type: %s dims: [ %s ] }' % (name, dtype, ", ".join(str(d) for d in dims))


def write(repo, name, module, config_body, inputs, expected, script=False):
    folder = os.path.join(repo, name)
    os.makedirs(os.path.join(folder, "1"), exist_ok=True)
    module.eval()
    if script:
        compiled = torch.jit.script(module)
    else:
        compiled = torch.jit.trace(module, tuple(inputs.values()))
    compiled.save(os.path.join(folder, "1", "model.pt"))
    with open(os.path.join(folder, "config.pbtxt"), "w") as f:
        f.write('name: "%s"\nbackend: "pytorch"\n%s' % (name, config_body))
    with torch.no_grad():
        result = compiled(*inputs.values())
    if isinstance(result, torch.Tensor):
        result = (result,)
    outs = result.items() if isinstance(result, dict) else zip(expected, result)
    expected_json[name] = {
        "inputs": {k: [list(v.shape), v.flatten().tolist()] for k, v in inputs.items()},
        "outputs": {k: [list(v.shape), v.flatten().tolist()] for k, v in outs},
    }


repo = sys.argv[1]
expected_json = {}

image = torch.rand(2, 3, 32, 32)
write(repo, "torch_cnn", Cnn(),
      "max_batch_size: 8\ninput [ %s ]\noutput [ %s ]\ndynamic_batching { max_queue_delay_microseconds: 2000 }\n"
      % (tensor_config("INPUT__0", "TYPE_FP32", [3, 32, 32]), tensor_config("OUTPUT__0", "TYPE_FP32", [10])),
      {"INPUT__0": image}, ["OUTPUT__0"])

# Inputs named after forward()'s arguments, listed in the other order: they go by name, not position.
write(repo, "torch_branchy", Branchy(),
      "max_batch_size: 0\ninput [ %s, %s ]\noutput [ %s ]\n"
      % (tensor_config("threshold", "TYPE_FP32", [1]), tensor_config("x", "TYPE_FP32", [4]), tensor_config("OUTPUT__0", "TYPE_FP32", [4])),
      {"x": torch.tensor([1.0, 2.0, 3.0, 4.0]), "threshold": torch.tensor([5.0])}, ["OUTPUT__0"], script=True)

write(repo, "torch_several", Several(),
      "max_batch_size: 0\ninput [ %s, %s ]\noutput [ %s, %s, %s ]\n"
      % (tensor_config("A__0", "TYPE_FP32", [3]), tensor_config("B__1", "TYPE_FP32", [3]),
         tensor_config("SUM__0", "TYPE_FP32", [3]), tensor_config("PRODUCT__1", "TYPE_FP32", [3]), tensor_config("MAX__2", "TYPE_INT32", [3])),
      {"A__0": torch.tensor([1.5, -2.0, 3.0]), "B__1": torch.tensor([2.0, 4.0, -1.0])}, ["SUM__0", "PRODUCT__1", "MAX__2"])

write(repo, "torch_named", Named(),
      "max_batch_size: 0\ninput [ %s ]\noutput [ %s, %s ]\n"
      % (tensor_config("x", "TYPE_FP32", [2]), tensor_config("negated", "TYPE_FP32", [2]), tensor_config("doubled", "TYPE_FP32", [2])),
      {"x": torch.tensor([0.25, -8.0])}, [], script=True)

write(repo, "torch_throws", Throws(),
      "max_batch_size: 0\ninput [ %s ]\noutput [ %s ]\n" % (tensor_config("x", "TYPE_FP32", [2]), tensor_config("OUTPUT__0", "TYPE_FP32", [2])),
      {"x": torch.tensor([4.0, 9.0])}, ["OUTPUT__0"], script=True)

with open(os.path.join(repo, "expected.json"), "w") as f:
    json.dump(expected_json, f)

if "--onnx" in sys.argv:
    # The same CNN exported to ONNX, for comparing runtimes on one network.
    cnn = torch.jit.load(os.path.join(repo, "torch_cnn", "1", "model.pt"))
    os.makedirs(os.path.join(repo, "torch_cnn_onnx", "1"), exist_ok=True)
    torch.onnx.export(cnn, (image,), os.path.join(repo, "torch_cnn_onnx", "1", "model.onnx"), input_names=["INPUT__0"],
                      output_names=["OUTPUT__0"], dynamic_axes={"INPUT__0": {0: "batch"}, "OUTPUT__0": {0: "batch"}}, opset_version=13)
    with open(os.path.join(repo, "torch_cnn", "config.pbtxt")) as f:
        config = f.read()
    with open(os.path.join(repo, "torch_cnn_onnx", "config.pbtxt"), "w") as f:
        f.write(config.replace('"torch_cnn"', '"torch_cnn_onnx"').replace('backend: "pytorch"', 'platform: "onnxruntime_onnx"'))
