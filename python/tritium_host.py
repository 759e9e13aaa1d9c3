"""Runs one model instance in its own process for Tritium (Python backend models today).

Protocol on this process's original stdin/stdout: frames of
  u32 header length, u32 payload length (little-endian), header (JSON), payload (tensor bytes).
The model's own prints go to stderr, so they cannot corrupt the protocol.
"""
import importlib.util
import json
import os
import struct
import sys
import traceback

import numpy as np

import triton_python_backend_utils as pb_utils

_proto_in = os.fdopen(os.dup(0), "rb", buffering=0)
_proto_out = os.fdopen(os.dup(1), "wb", buffering=0)
os.dup2(2, 1)
sys.stdout = sys.stderr


def read_exact(n):
    chunks = []
    while n > 0:
        b = _proto_in.read(n)
        if not b:
            raise EOFError()
        chunks.append(b)
        n -= len(b)
    return b"".join(chunks)


_queued = []  # frames read while waiting for a BLS answer, handled afterwards in order


def read_frame():
    if _queued:
        return _queued.pop(0)
    return read_raw_frame()


def read_raw_frame():
    hl, pl = struct.unpack("<II", read_exact(8))
    header = json.loads(read_exact(hl))
    payload = read_exact(pl) if pl else b""
    return header, payload


def write_frame(header, payload=b""):
    h = json.dumps(header).encode()
    _proto_out.write(struct.pack("<II", len(h), len(payload)) + h + payload)


def decode_bytes(raw):
    out, off = [], 0
    while off < len(raw):
        (n,) = struct.unpack_from("<I", raw, off)
        off += 4
        out.append(raw[off:off + n])
        off += n
    return out


def encode_bytes(array):
    parts = []
    for e in array.reshape(-1):
        b = e if isinstance(e, (bytes, bytearray)) else str(e).encode()
        parts.append(struct.pack("<I", len(b)) + bytes(b))
    return b"".join(parts)


def to_tensor(desc, payload):
    raw = payload[desc["offset"]:desc["offset"] + desc["length"]]
    if desc["datatype"] == "BYTES":
        data = np.array(decode_bytes(raw), dtype=np.object_).reshape(desc["shape"])
    else:
        data = np.frombuffer(raw, dtype=pb_utils.triton_string_to_numpy(desc["datatype"])).reshape(desc["shape"])
    return pb_utils.Tensor(desc["name"], data)


def from_tensor(tensor, parts):
    data = tensor.as_numpy()
    datatype = pb_utils.numpy_to_triton_type(data.dtype)
    raw = encode_bytes(data) if datatype == "BYTES" else np.ascontiguousarray(data).tobytes()
    offset = sum(len(p) for p in parts)
    parts.append(raw)
    return {"name": tensor.name(), "datatype": datatype, "shape": list(data.shape), "offset": offset, "length": len(raw)}


def encode_response(response, wanted, parts):
    """A response as the frames carry it: its outputs, or its error message."""
    if response.has_error():
        err = response.error()
        return {"error": err.message() if isinstance(err, pb_utils.TritonError) else str(err)}
    tensors = [t for t in response.output_tensors() if not wanted or t.name() in wanted]
    return {"outputs": [from_tensor(t, parts) for t in tensors]}


def execute_decoupled(model, header, payload):
    """Each request gets a response sender; a request that has not sent its final flag when execute returns gets it then."""
    call = header["id"]
    requests = []
    for index, r in enumerate(header["requests"]):
        req = pb_utils.InferenceRequest(inputs=[to_tensor(d, payload) for d in r["inputs"]], requested_output_names=r["outputs"])

        def send(response, final, index=index, wanted=r["outputs"]):
            parts = []
            body = encode_response(response, wanted, parts) if response is not None else {}
            write_frame({"type": "partial", "id": -1, "call": call, "index": index, "final": final, **body}, b"".join(parts))

        req._sender = pb_utils.InferenceResponseSender(send)
        requests.append(req)
    try:
        model.execute(requests)
    except Exception as e:
        message = e.message() if isinstance(e, pb_utils.TritonError) else "%s: %s" % (type(e).__name__, e)
        for r in requests:
            if not r._sender._closed:
                r._sender.send(pb_utils.InferenceResponse(error=pb_utils.TritonError(message)), pb_utils.TRITONSERVER_RESPONSE_COMPLETE_FINAL)
    for r in requests:
        if not r._sender._closed:
            r._sender.send(None, pb_utils.TRITONSERVER_RESPONSE_COMPLETE_FINAL)
    write_frame({"type": "done", "id": call})


_bls_next = [0]


def bls(request):
    """Sends a BLS request to the server and waits for its answer (other frames wait their turn)."""
    _bls_next[0] += 1
    call = _bls_next[0]
    parts = []
    inputs = [from_tensor(t, parts) for t in request.inputs()]
    version = request._model_version
    write_frame({"type": "bls", "id": call, "request": {
        "model_name": request._model_name,
        "model_version": None if version in (None, -1, "") else str(version),
        "inputs": inputs,
        "outputs": request.requested_output_names(),
    }}, b"".join(parts))
    while True:
        header, payload = read_raw_frame()
        if header["type"] == "bls_result" and header["id"] == call:
            break
        _queued.append((header, payload))
    if "error" in header:
        return pb_utils.InferenceResponse(error=pb_utils.TritonError(header["error"]))
    return pb_utils.InferenceResponse([to_tensor(d, payload) for d in header["outputs"]])


pb_utils._bls = bls


def main():
    model = None
    while True:
        try:
            header, payload = read_frame()
        except EOFError:
            return
        kind, call = header["type"], header["id"]
        try:
            if kind == "init":
                spec = importlib.util.spec_from_file_location("model", header["path"])
                module = importlib.util.module_from_spec(spec)
                sys.path.insert(0, os.path.dirname(header["path"]))
                spec.loader.exec_module(module)
                model = module.TritonPythonModel()
                if hasattr(model, "initialize"):
                    model.initialize(header["args"])
                write_frame({"type": "ready", "id": call})
            elif kind == "execute" and header.get("decoupled"):
                execute_decoupled(model, header, payload)
            elif kind == "execute":
                requests = [
                    pb_utils.InferenceRequest(inputs=[to_tensor(d, payload) for d in r["inputs"]], requested_output_names=r["outputs"])
                    for r in header["requests"]
                ]
                responses = model.execute(requests)
                if responses is None or len(responses) != len(requests):
                    raise pb_utils.TritonModelException(
                        "execute() must return one response per request (%d), got %s"
                        % (len(requests), "None" if responses is None else len(responses)))
                parts = []
                out = [encode_response(res, req["outputs"], parts) for req, res in zip(header["requests"], responses)]
                write_frame({"type": "result", "id": call, "responses": out}, b"".join(parts))
            elif kind == "close":
                if model is not None and hasattr(model, "finalize"):
                    model.finalize()
                write_frame({"type": "closed", "id": call})
                return
        except Exception as e:  # the model's failure answers this call; the process goes on
            message = e.message() if isinstance(e, pb_utils.TritonError) else "%s: %s" % (type(e).__name__, e)
            traceback.print_exc(file=sys.stderr)
            write_frame({"type": "error", "id": call, "message": message})


if __name__ == "__main__":
    main()
