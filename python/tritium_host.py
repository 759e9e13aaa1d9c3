"""Runs one model instance in its own process for Tritium (Python and PyTorch models).

Protocol on this process's original stdin/stdout: frames of
  u32 header length, u32 payload length (little-endian), header (JSON), payload.
A header names its tensors as (offset, length) ranges of the frame's bytes. Large
frames leave their bytes in a file under Tritium's shared-memory directory
(header "shm": the file name) instead of the pipe: this side maps that file, so
numpy reads the server's input tensors where the server wrote them.

The model's own prints go to stderr, so they cannot corrupt the protocol.

Threads: a reader thread routes the server's frames (answers to BLS calls go
straight to the thread that waits for them, cancellations mark their requests);
the main thread runs the model's calls one at a time, in order; any thread may
write (one lock). A decoupled model's response senders work from any thread,
during execute or after it returns.
"""
import asyncio
import importlib.util
import inspect
import json
import mmap
import os
import queue
import struct
import sys
import threading
import traceback

import numpy as np

import triton_python_backend_utils as pb_utils

_proto_in = os.fdopen(os.dup(0), "rb", buffering=0)
_proto_out = os.fdopen(os.dup(1), "wb", buffering=0)
os.dup2(2, 1)
sys.stdout = sys.stderr

SHM_DIR = os.environ.get("TRITIUM_SHM_DIR", "")
SHM_THRESHOLD = int(os.environ.get("TRITIUM_SHM_THRESHOLD", "65536"))
ALIGN = 64

_write_lock = threading.Lock()


class RangeAllocator:
    """Ranges of this side's shared-memory file in use, first fit; the file grows when nothing fits."""

    def __init__(self):
        self.used = []  # [start, end), by start
        self.lock = threading.Lock()

    def allocate(self, length):
        with self.lock:
            at, i = 0, len(self.used)
            for k, (start, end) in enumerate(self.used):
                if start - at >= length:
                    i = k
                    break
                at = -(-end // ALIGN) * ALIGN
            self.used.insert(i, (at, at + length))
            return at

    def free(self, offset):
        with self.lock:
            self.used = [r for r in self.used if r[0] != offset]


class SharedFiles:
    """This process's side of its two shared-memory files: the server's (mapped, read in place) and its own (written)."""

    def __init__(self):
        self.enabled = bool(SHM_DIR)
        self.ranges = RangeAllocator()
        self.map = None
        if self.enabled:
            self.in_path = os.path.join(SHM_DIR, os.environ["TRITIUM_SHM_IN"])
            self.out_fd = os.open(os.path.join(SHM_DIR, os.environ["TRITIUM_SHM_OUT"]), os.O_RDWR | os.O_CREAT, 0o600)

    def view(self, offset, length):
        """The server's bytes [offset, offset + length), in place; mapped again when the file has grown past the mapping."""
        if self.map is None or offset + length > len(self.map):
            fd = os.open(self.in_path, os.O_RDWR)
            try:
                self.map = mmap.mmap(fd, os.fstat(fd).st_size)
            finally:
                os.close(fd)
        return memoryview(self.map)[offset:offset + length]

    def write(self, parts, length):
        offset = self.ranges.allocate(length)
        at = offset
        for p in parts:
            view = memoryview(p).cast("B")
            while len(view):
                n = os.pwrite(self.out_fd, view, at)
                view, at = view[n:], at + n
        return {"offset": offset, "length": length}


_shm = SharedFiles()


def read_exact(n):
    view = bytearray(n)
    got = 0
    while got < n:
        k = _proto_in.readinto(memoryview(view)[got:])
        if not k:
            raise EOFError()
        got += k
    return view


def read_frame():
    hl, pl = struct.unpack("<II", read_exact(8))
    header = json.loads(bytes(read_exact(hl)))
    payload = read_exact(pl) if pl else b""
    if "shm" in header:
        payload = _shm.view(header["shm"]["offset"], header["shm"]["length"])
    return header, payload


def release(header):
    """Gives a range of the server's file back once nothing made from it is needed any more."""
    if "shm" in header:
        write_frame({"type": "release", "id": -2, "offset": header["shm"]["offset"]})


def write_frame(header, parts=None):
    """Writes a frame whose payload is `parts` (a Parts) joined; a large one goes through this side's shared-memory file."""
    size = parts.size if parts else 0
    inline = b""
    if size >= SHM_THRESHOLD and _shm.enabled:
        header = dict(header, shm=_shm.write(parts, size))
    else:
        inline = b"".join(bytes(p) if not isinstance(p, bytes) else p for p in parts or ())
    h = json.dumps(header).encode()
    with _write_lock:
        _proto_out.write(struct.pack("<II", len(h), len(inline)) + h)
        if inline:
            _proto_out.write(inline)


def decode_bytes(raw):
    out, off, raw = [], 0, bytes(raw)
    while off < len(raw):
        (n,) = struct.unpack_from("<I", raw, off)
        off += 4
        out.append(raw[off:off + n])
        off += n
    return out


def encode_bytes(array):
    parts = Parts()
    for e in array.reshape(-1):
        b = e if isinstance(e, (bytes, bytearray)) else str(e).encode()
        parts.append(struct.pack("<I", len(b)) + bytes(b))
    return b"".join(parts)


def to_tensor(desc, payload):
    start, end = desc["offset"], desc["offset"] + desc["length"]
    if desc["datatype"] == "BYTES":
        data = np.array(decode_bytes(memoryview(payload)[start:end]), dtype=np.object_).reshape(desc["shape"])
    else:
        dtype = np.dtype(pb_utils.triton_string_to_numpy(desc["datatype"]))
        data = np.frombuffer(payload, dtype=dtype, count=desc["length"] // dtype.itemsize, offset=start).reshape(desc["shape"])
    return pb_utils.Tensor(desc["name"], data)


class Parts(list):
    """A frame's payload as pieces, each tensor starting at a multiple of ALIGN (so the server can view it in place)."""

    size = 0

    def add(self, raw):
        pad = -self.size % ALIGN
        if pad:
            self.append(bytes(pad))
        offset = self.size + pad
        self.append(raw)
        self.size = offset + len(raw)
        return offset


def from_tensor(tensor, parts):
    """Adds a tensor's bytes to `parts` (no copy for a contiguous array) and describes it."""
    data = tensor.as_numpy()
    datatype = pb_utils.numpy_to_triton_type(data.dtype)
    raw = encode_bytes(data) if datatype == "BYTES" else memoryview(np.ascontiguousarray(data)).cast("B")
    return {"name": tensor.name(), "datatype": datatype, "shape": list(data.shape), "offset": parts.add(raw), "length": len(raw)}


def describe_error(e):
    if isinstance(e, pb_utils.TritonError):
        return {"error": e.message(), "code": pb_utils.TritonError._code_name(e.code())}
    return {"error": "%s: %s" % (type(e).__name__, e)}


def encode_response(response, wanted, parts):
    """A response as the frames carry it: its outputs, or its error."""
    if not isinstance(response, pb_utils.InferenceResponse):
        raise pb_utils.TritonModelException("expected an InferenceResponse, got %s" % type(response).__name__)
    if response.has_error():
        err = response.error()
        return describe_error(err if isinstance(err, Exception) else pb_utils.TritonError(str(err)))
    tensors = [t for t in response.output_tensors() if not wanted or t.name() in wanted]
    return {"outputs": [from_tensor(t, parts) for t in tensors]}


# --- BLS: calls from the model back into the server -------------------------------------

_bls_next = [0]
_bls_waiting = {}  # call id -> queue of (header, payload) answers
_bls_lock = threading.Lock()
# The batch whose execute the main thread runs: BLS calls made now are charged to its requests' callers.
_running_batch = [-1]


def _bls_send(request, decoupled):
    parts = Parts()
    inputs = [from_tensor(t, parts) for t in request.inputs()]
    version = request._model_version
    answers = queue.Queue()
    with _bls_lock:
        _bls_next[0] += 1
        call = _bls_next[0]
        _bls_waiting[call] = answers
    write_frame({"type": "bls", "id": call, "batch": _running_batch[0], "decoupled": decoupled, "request": {
        "model_name": request._model_name,
        "model_version": None if version in (None, -1, "") else str(version),
        "id": request._id,
        "parameters": request._parameters,
        "inputs": inputs,
        "outputs": request.requested_output_names(),
    }}, parts)
    return call, answers


def _bls_response(header, payload):
    if "error" in header:
        return pb_utils.InferenceResponse(error=pb_utils.TritonError(header["error"], pb_utils.TritonError._code_value(header.get("code"))))
    tensors = [to_tensor(d, payload) for d in header.get("outputs", [])]
    if "shm" in header:
        # The model may keep these for as long as it likes: copied out, so the server's range can go back now.
        tensors = [pb_utils.Tensor(t.name(), np.array(t.as_numpy(), copy=True)) for t in tensors]
        release(header)
    return pb_utils.InferenceResponse(tensors)


def bls(request, decoupled=False):
    """Runs `request` on the server: one InferenceResponse, or (decoupled) an iterator of them, the last one final."""
    call, answers = _bls_send(request, decoupled)
    if not decoupled:
        header, payload = answers.get()
        with _bls_lock:
            _bls_waiting.pop(call, None)
        return _bls_response(header, payload)

    def responses():
        try:
            while True:
                header, payload = answers.get()
                yield _bls_response(header, payload)
                if header.get("final", True):
                    return
        finally:
            with _bls_lock:
                _bls_waiting.pop(call, None)
    return responses()


pb_utils._bls = bls


# --- the server's calls --------------------------------------------------------------------

_cancelled = set()  # (call, index) of requests whose clients have gone, while their batch runs


def batch_finished(header):
    """A batch is over: its inputs' range of the server's file goes back, and its cancellations are forgotten."""
    release(header)
    for index in range(len(header["requests"])):
        _cancelled.discard((header["id"], index))
_work = queue.Queue()
_loop = asyncio.new_event_loop()


def reader():
    """Routes every frame: BLS answers to their waiters, cancellations to their requests, the rest to the main thread."""
    while True:
        try:
            header, payload = read_frame()
        except (EOFError, OSError, ValueError):
            _work.put(None)
            return
        kind = header["type"]
        if kind == "bls_result":
            with _bls_lock:
                waiter = _bls_waiting.get(header["id"])
            if waiter is not None:
                waiter.put((header, payload))
            else:
                release(header)  # an answer nobody waits for any more (an abandoned stream): its range goes back
        elif kind == "cancel":
            _cancelled.add((header["call"], header["index"]))
        elif kind == "release":
            _shm.ranges.free(header["offset"])
        else:
            _work.put((header, payload))


def run_model_call(fn, *args):
    """Calls a model method; an `async def` one runs to completion on this thread's event loop."""
    result = fn(*args)
    if inspect.isawaitable(result):
        result = _loop.run_until_complete(result)
    return result


def make_requests(header, payload, call):
    requests = []
    for index, r in enumerate(header["requests"]):
        params = r.get("parameters") or {}
        req = pb_utils.InferenceRequest(
            inputs=[to_tensor(d, payload) for d in r["inputs"]],
            requested_output_names=r["outputs"],
            request_id=r.get("id", ""),
            correlation_id=params.get("sequence_id", 0),
            parameters=params,
        )
        req._cancelled = lambda key=(call, index): key in _cancelled
        requests.append(req)
    return requests


def execute(model, header, payload):
    call = header["id"]
    requests = make_requests(header, payload, call)
    responses = run_model_call(model.execute, requests)
    if responses is None or len(responses) != len(requests):
        raise pb_utils.TritonModelException(
            "execute() must return one response per request (%d), got %s"
            % (len(requests), "None" if responses is None else len(responses)))
    parts = Parts()
    out = []
    for req, res in zip(header["requests"], responses):
        try:
            out.append(encode_response(res, req["outputs"], parts))
        except Exception as e:
            out.append(describe_error(e))
    write_frame({"type": "result", "id": call, "responses": out}, parts)


class DecoupledCall:
    """One decoupled batch: done (and told to the server) once execute has returned and every request has sent its final flag.

    Its inputs stay in the server's shared-memory file until then: a response thread may still be reading them."""

    def __init__(self, header, count):
        self.header = header
        self.open = count
        self.returned = False
        self.lock = threading.Lock()

    def closed_one(self):
        with self.lock:
            self.open -= 1
            done = self.returned and self.open == 0
        if done:
            self.done()

    def execute_returned(self):
        with self.lock:
            self.returned = True
            done = self.open == 0
        if done:
            self.done()

    def done(self):
        write_frame({"type": "done", "id": self.header["id"]})
        batch_finished(self.header)


def execute_decoupled(model, header, payload):
    call = header["id"]
    requests = make_requests(header, payload, call)
    state = DecoupledCall(header, len(requests))
    for index, (r, req) in enumerate(zip(header["requests"], requests)):
        def send(response, final, index=index, wanted=r["outputs"]):
            parts = Parts()
            try:
                body = encode_response(response, wanted, parts) if response is not None else {}
            except Exception as e:
                parts, body = Parts(), describe_error(e)
            write_frame({"type": "partial", "id": -1, "call": call, "index": index, "final": final, **body}, parts)
            if final:
                state.closed_one()

        req._sender = pb_utils.InferenceResponseSender(send, req._cancelled)
    try:
        run_model_call(model.execute, requests)
    except Exception as e:
        traceback.print_exc(file=sys.stderr)
        for r in requests:
            if not r._sender._closed:
                r._sender.send(pb_utils.InferenceResponse(error=e if isinstance(e, pb_utils.TritonError) else pb_utils.TritonError(describe_error(e)["error"])),
                               pb_utils.TRITONSERVER_RESPONSE_COMPLETE_FINAL)
    state.execute_returned()


def load_model_class(path):
    spec = importlib.util.spec_from_file_location("model", path)
    module = importlib.util.module_from_spec(spec)
    sys.path.insert(0, os.path.dirname(path))
    spec.loader.exec_module(module)
    return module.TritonPythonModel


def main():
    threading.Thread(target=reader, daemon=True).start()
    model = None
    while True:
        item = _work.get()
        if item is None:
            return
        header, payload = item
        kind, call = header["type"], header["id"]
        if kind == "execute":
            _running_batch[0] = call
        try:
            if kind == "init":
                pb_utils._model_config = json.loads(header["args"]["model_config"])
                model = load_model_class(header["path"])()
                if hasattr(model, "initialize"):
                    run_model_call(model.initialize, header["args"])
                write_frame({"type": "ready", "id": call})
            elif kind == "auto_complete":
                cls = load_model_class(header["path"])
                config = pb_utils.ModelConfig(header["config"])
                if hasattr(cls, "auto_complete_config"):
                    config = cls.auto_complete_config(config)
                write_frame({"type": "auto_completed", "id": call, "config": config.as_dict()})
                return
            elif kind == "is_ready":
                ready = run_model_call(model.is_ready) if hasattr(model, "is_ready") else True
                write_frame({"type": "readiness", "id": call, "ready": bool(ready)})
            elif kind == "execute" and header.get("decoupled"):
                execute_decoupled(model, header, payload)
            elif kind == "execute":
                try:
                    execute(model, header, payload)
                finally:
                    # Triton's contract: a request's input tensors are the model's until execute returns.
                    batch_finished(header)
            elif kind == "close":
                if model is not None and hasattr(model, "finalize"):
                    run_model_call(model.finalize)
                write_frame({"type": "closed", "id": call})
                return
        except Exception as e:  # the model's failure answers this call; the process goes on
            traceback.print_exc(file=sys.stderr)
            write_frame(dict(describe_error(e), type="error", id=call))
        finally:
            del payload


if __name__ == "__main__":
    main()
