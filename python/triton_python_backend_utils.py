"""Tritium's triton_python_backend_utils: what Triton Python backend models import as pb_utils.

Tensors are numpy arrays; requests and responses are plain objects that the host
(tritium_host.py) fills from, and serializes to, Tritium's process protocol.
"""
import asyncio
import json

import numpy as np

TRITONSERVER_RESPONSE_COMPLETE_FINAL = 1

_NUMPY = {
    "BOOL": np.bool_, "UINT8": np.uint8, "UINT16": np.uint16, "UINT32": np.uint32, "UINT64": np.uint64,
    "INT8": np.int8, "INT16": np.int16, "INT32": np.int32, "INT64": np.int64,
    "FP16": np.float16, "FP32": np.float32, "FP64": np.float64, "BYTES": np.object_,
}


def triton_string_to_numpy(triton_type_string):
    """TYPE_FP32 (or FP32) -> numpy.float32; TYPE_STRING/BYTES -> object."""
    name = triton_type_string[5:] if triton_type_string.startswith("TYPE_") else triton_type_string
    if name == "STRING":
        name = "BYTES"
    return _NUMPY[name]


def numpy_to_triton_type(dtype):
    dtype = np.dtype(dtype)
    if dtype == np.object_ or dtype.kind in ("S", "U"):
        return "BYTES"
    for name, t in _NUMPY.items():
        if name != "BYTES" and np.dtype(t) == dtype:
            return name
    raise TritonModelException("numpy dtype %s has no Triton datatype" % dtype)


class TritonError(Exception):
    """An error for one response (InferenceResponse(error=...)) or raised by a model; its code picks the client's status."""

    UNKNOWN = 0
    INTERNAL = 1
    NOT_FOUND = 2
    INVALID_ARG = 3
    UNAVAILABLE = 4
    UNSUPPORTED = 5
    ALREADY_EXISTS = 6
    CANCELLED = 7
    _NAMES = ("UNKNOWN", "INTERNAL", "NOT_FOUND", "INVALID_ARG", "UNAVAILABLE", "UNSUPPORTED", "ALREADY_EXISTS", "CANCELLED")

    def __init__(self, msg, code=INTERNAL):
        super().__init__(msg)
        self._msg = msg
        self._code = TritonError.INTERNAL if code is None else code

    def message(self):
        return self._msg

    def code(self):
        return self._code

    @staticmethod
    def _code_name(code):
        return TritonError._NAMES[code] if isinstance(code, int) and 0 <= code < len(TritonError._NAMES) else "INTERNAL"

    @staticmethod
    def _code_value(name):
        return TritonError._NAMES.index(name) if name in TritonError._NAMES else TritonError.INTERNAL


class TritonModelException(TritonError):
    pass


class Tensor:
    def __init__(self, name, data):
        if not isinstance(data, np.ndarray):
            raise TritonModelException("Tensor '%s': data must be a numpy array" % name)
        self._name = name
        self._data = data

    def name(self):
        return self._name

    def as_numpy(self):
        return self._data

    def is_cpu(self):
        return True

    def shape(self):
        return list(self._data.shape)

    def triton_dtype(self):
        return numpy_to_triton_type(self._data.dtype)

    @staticmethod
    def from_dlpack(name, capsule):
        return Tensor(name, np.from_dlpack(capsule))

    def to_dlpack(self):
        return self._data.__dlpack__()


_bls = None  # set by the host: runs an InferenceRequest on the server, returns an InferenceResponse


class InferenceRequest:
    """A request the model receives, or one it builds to call another model (BLS: exec())."""

    def __init__(self, model_name=None, requested_output_names=None, inputs=None, request_id="", correlation_id=0,
                 parameters=None, model_version=-1, **_ignored):
        self._inputs = list(inputs or [])
        self._requested = list(requested_output_names or [])
        self._id = request_id
        self._correlation_id = correlation_id
        self._parameters = parameters if isinstance(parameters, dict) else json.loads(parameters) if parameters else {}
        self._model_name = model_name
        self._model_version = model_version
        self._cancelled = lambda: False

    def exec(self, decoupled=False):
        """Runs this request on the server's model `model_name`; errors come back in the response.

        With decoupled=True: an iterator of the model's responses, the last one final (it may have no outputs)."""
        if _bls is None:
            raise TritonModelException("BLS is not available in this process")
        return _bls(self, decoupled)

    async def async_exec(self, decoupled=False):
        """The same, awaitable: several calls can be in flight at once."""
        return await asyncio.get_running_loop().run_in_executor(None, self.exec, decoupled)

    def inputs(self):
        return self._inputs

    def requested_output_names(self):
        return self._requested

    def request_id(self):
        return self._id

    def correlation_id(self):
        return self._correlation_id

    def parameters(self):
        return json.dumps(self._parameters)

    def is_cancelled(self):
        """Whether the client has gone away (the model may stop early)."""
        return self._cancelled()

    def get_response_sender(self):
        """Decoupled models: sends this request's responses (zero or more), the last with the final flag."""
        if getattr(self, "_sender", None) is None:
            raise TritonModelException("get_response_sender() is only available to decoupled models")
        return self._sender


class InferenceResponseSender:
    def __init__(self, send, cancelled=lambda: False):
        self._send = send
        self._cancelled = cancelled
        self._closed = False

    def send(self, response=None, flags=0):
        if self._closed:
            raise TritonModelException("this request has already sent its final response")
        final = bool(flags & TRITONSERVER_RESPONSE_COMPLETE_FINAL)
        if final:
            self._closed = True
        self._send(response, final)

    def is_cancelled(self):
        return self._cancelled()


class InferenceResponse:
    def __init__(self, output_tensors=None, error=None, parameters=None):
        if isinstance(error, str):
            error = TritonError(error)
        self._outputs = list(output_tensors or [])
        self._error = error
        self._parameters = parameters or {}

    def output_tensors(self):
        return self._outputs

    def has_error(self):
        return self._error is not None

    def error(self):
        return self._error


def get_input_tensor_by_name(request, name):
    for t in request.inputs():
        if t.name() == name:
            return t
    return None


def get_output_tensor_by_name(response, name):
    for t in response.output_tensors():
        if t.name() == name:
            return t
    return None


class Logger:
    """Lines go to the server's log through stderr."""

    @staticmethod
    def log_info(msg):
        _log("I", msg)

    @staticmethod
    def log_warn(msg):
        _log("W", msg)

    @staticmethod
    def log_error(msg):
        _log("E", msg)

    @staticmethod
    def log_verbose(msg):
        _log("V", msg)


def _log(level, msg):
    import sys
    sys.stderr.write("%s %s\n" % (level, msg))
    sys.stderr.flush()


_model_config = {}  # set by the host before initialize: the model's configuration as JSON


def get_input_config_by_name(model_config, name):
    """The config entry of input `name` (model_config: the parsed `args['model_config']`), or None."""
    return next((c for c in model_config.get("input", []) if c.get("name") == name), None)


def get_output_config_by_name(model_config, name):
    return next((c for c in model_config.get("output", []) if c.get("name") == name), None)


def using_decoupled_model_transaction_policy(model_config):
    return bool(model_config.get("model_transaction_policy", {}).get("decoupled", False))


class ModelConfig:
    """What auto_complete_config(auto_complete_model_config) gets and returns: the model's configuration, to fill in."""

    def __init__(self, config):
        self._config = config

    def as_dict(self):
        return self._config

    def max_batch_size(self):
        return int(self._config.get("max_batch_size", 0))

    def set_max_batch_size(self, max_batch_size):
        self._config["max_batch_size"] = int(max_batch_size)

    def set_dynamic_batching(self):
        self._config.setdefault("dynamic_batching", {})

    def set_model_transaction_policy(self, policy):
        self._config["model_transaction_policy"] = dict(policy)

    def _add(self, kind, tensor):
        for key in ("name", "data_type", "dims"):
            if key not in tensor:
                raise TritonModelException("%s '%s' must have '%s'" % (kind, tensor.get("name", "?"), key))
        entries = self._config.setdefault(kind, [])
        existing = next((e for e in entries if e.get("name") == tensor["name"]), None)
        if existing is None:
            entries.append(dict(tensor))
            return
        for key, value in tensor.items():
            have = existing.get(key)
            if have is not None and have != value and not (key == "dims" and [int(d) for d in have] == [int(d) for d in value]):
                raise TritonModelException("unable to add %s '%s': its %s is already %s in the model configuration" % (kind, tensor["name"], key, have))
            existing[key] = value

    def add_input(self, input):
        self._add("input", input)

    def add_output(self, output):
        self._add("output", output)
