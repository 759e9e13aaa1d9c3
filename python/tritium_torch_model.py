"""Tritium's PyTorch backend, as a Python-backend model: runs a TorchScript `model.pt` the way Triton's
libtorch backend does, in the same host process as any model.py (tritium_host.py).

Inputs reach forward() by position: `NAME__<index>` names give the position, otherwise the names of
forward()'s arguments do. Outputs come from a tensor, a tuple or list (by `NAME__<index>`, else in
the configuration's order), or a dict (by name). A batching model's requests are run as one batch
(concatenated on dimension 0) and split back.
"""
import json
import re

import numpy as np
import torch

import triton_python_backend_utils as pb_utils

_INDEXED = re.compile(r"^(.*)__(\d+)$")


def _flag(params, key, default):
    value = params.get(key, {}).get("string_value", "")
    return default if value == "" else value.strip().lower() in ("1", "true", "yes", "on")


def _count(params, key):
    value = params.get(key, {}).get("string_value", "")
    return int(value) if value.strip() else 0


def _positions(names, what, arguments):
    """Where each configured name goes: by its __<index>, or by the forward() argument of that name."""
    if all(_INDEXED.match(n) for n in names):
        return {n: int(_INDEXED.match(n).group(2)) for n in names}
    if arguments is None:
        return {n: i for i, n in enumerate(names)}
    out = {}
    for n in names:
        if n not in arguments:
            raise pb_utils.TritonModelException(
                "%s '%s' is neither named <name>__<index> nor an argument of forward() (%s)" % (what, n, ", ".join(arguments)))
        out[n] = arguments.index(n)
    return out


class TritonPythonModel:
    def initialize(self, args):
        config = json.loads(args["model_config"])
        params = config.get("parameters", {})
        self.name = args["model_name"]
        self.batching = int(config.get("max_batch_size", 0)) > 0
        if args["model_instance_kind"] == "GPU":
            if not torch.cuda.is_available():
                raise pb_utils.TritonModelException(
                    "instance '%s' has kind KIND_GPU but PyTorch sees no CUDA device here (torch %s, CUDA build: %s)"
                    % (args["model_instance_name"], torch.__version__, torch.version.cuda or "none"))
            self.device = torch.device("cuda:%s" % args["model_instance_device_id"])
        else:
            self.device = torch.device("cpu")
        if _count(params, "INTRA_OP_THREAD_COUNT"):
            torch.set_num_threads(_count(params, "INTRA_OP_THREAD_COUNT"))
        if _count(params, "INTER_OP_THREAD_COUNT"):
            try:
                torch.set_num_interop_threads(_count(params, "INTER_OP_THREAD_COUNT"))
            except RuntimeError:
                pass  # fixed once any parallel work has run in this process
        if _flag(params, "DISABLE_OPTIMIZED_EXECUTION", False):
            torch._C._set_graph_executor_optimize(False)
        self.inference_mode = _flag(params, "INFERENCE_MODE", True)
        self.clean_cache = _flag(params, "ENABLE_CACHE_CLEANING", False) and self.device.type == "cuda"
        path = args["tritium_model_file"]
        try:
            self.model = torch.jit.load(path, map_location=self.device)
        except Exception as e:
            raise pb_utils.TritonModelException("cannot load TorchScript file '%s': %s" % (path, str(e).strip().splitlines()[0]))
        self.model.eval()
        try:
            arguments = [a.name for a in self.model.forward.schema.arguments][1:]
        except Exception:
            arguments = None
        self.inputs = [i["name"] for i in config["input"]]
        self.input_types = {i["name"]: i["data_type"] for i in config["input"]}
        self.input_at = _positions(self.inputs, "input", arguments)
        self.outputs = [o["name"] for o in config["output"]]
        self.output_at = _positions(self.outputs, "output", None)

    def _argument(self, name, array):
        if self.input_types[name] == "TYPE_STRING":
            return [e.decode("utf-8", "replace") if isinstance(e, bytes) else str(e) for e in array.reshape(-1)]
        return torch.from_numpy(np.ascontiguousarray(array)).to(self.device)

    def _forward(self, arrays):
        args = [None] * len(self.inputs)
        for name, array in arrays.items():
            args[self.input_at[name]] = self._argument(name, array)
        context = torch.inference_mode() if self.inference_mode else torch.no_grad()
        with context:
            try:
                result = self.model(*args)
            except Exception as e:
                # TorchScript's own message is its interpreter's traceback; its last line says what went wrong.
                lines = [line.strip() for line in str(e).strip().splitlines() if line.strip()]
                raise pb_utils.TritonModelException("forward() failed: %s" % (lines[-1] if lines else type(e).__name__))
        if isinstance(result, torch.Tensor):
            result = (result,)
        outputs = {}
        for name in self.outputs:
            if isinstance(result, dict):
                if name not in result:
                    raise pb_utils.TritonModelException("forward() returned no output '%s' (it returned %s)" % (name, ", ".join(result)))
                value = result[name]
            else:
                at = self.output_at[name]
                if at >= len(result):
                    raise pb_utils.TritonModelException("forward() returned %d outputs, output '%s' is number %d" % (len(result), name, at))
                value = result[at]
            outputs[name] = value.detach().cpu().numpy() if isinstance(value, torch.Tensor) else np.asarray(value)
        return outputs

    def execute(self, requests):
        inputs = [{name: pb_utils.get_input_tensor_by_name(r, name).as_numpy() for name in self.inputs} for r in requests]
        if self.batching and len(requests) > 1:
            sizes = [next(iter(i.values())).shape[0] for i in inputs]
            merged = self._forward({name: np.concatenate([i[name] for i in inputs]) for name in self.inputs})
            bounds = np.cumsum([0] + sizes)
            per_request = [{name: v[bounds[k]:bounds[k + 1]] for name, v in merged.items()} for k in range(len(requests))]
        else:
            per_request = [self._forward(i) for i in inputs]
        if self.clean_cache:
            torch.cuda.empty_cache()
        return [pb_utils.InferenceResponse([pb_utils.Tensor(name, out[name]) for name in r.requested_output_names() or self.outputs])
                for r, out in zip(requests, per_request)]
