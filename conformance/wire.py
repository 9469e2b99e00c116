"""Shared helpers of the Python conformance suite.

- `load_protos()` runs protoc on proto/ into a temporary directory (deleted at exit)
  and imports the generated modules: nothing generated is ever committed.
- `frame()` / `Conn` speak the binary protocol's framing: 1 flag byte, a 4-byte
  big-endian payload length, the payload (one modelgateway.v1.Envelope).

Needs Python 3.8+, `protoc` on PATH and the `protobuf` package (scripts/conformance.sh
installs both when missing).
"""

import atexit
import glob
import os
import shutil
import socket
import struct
import subprocess
import sys
import tempfile
import time
import types

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
HEADER = struct.Struct(">BI")

# Body kinds that end a call (everything a server sends on a call's stream except chunks).
TERMINAL_KINDS = {
    "error", "add_worker_reply", "list_workers_reply", "get_worker_reply", "update_worker_reply",
    "remove_worker_reply", "list_models_reply", "health_reply", "generate_result",
}

_pb = None


def load_protos(proto_dir=None):
    """Generates Python code for proto/ with protoc and returns a namespace of the *_pb2 modules."""
    global _pb
    if _pb is not None:
        return _pb
    proto_dir = proto_dir or os.path.join(REPO, "proto")
    protoc = shutil.which("protoc")
    if protoc is None:
        sys.exit("conformance: protoc is not on PATH (apt-get install -y protobuf-compiler)")
    try:
        import google.protobuf  # noqa: F401
    except ImportError:
        sys.exit("conformance: the protobuf Python package is missing (pip install protobuf)")
    files = sorted(glob.glob(os.path.join(proto_dir, "modelgateway", "v1", "*.proto")))
    if not files:
        sys.exit("conformance: no .proto files under %s" % proto_dir)
    out = tempfile.mkdtemp(prefix="mg-conformance-pb-")
    atexit.register(shutil.rmtree, out, True)
    subprocess.run([protoc, "-I" + proto_dir, "--python_out=" + out] + files, check=True)
    sys.path.insert(0, out)
    from modelgateway.v1 import envelope_pb2, error_pb2, inference_pb2, worker_pb2
    _pb = types.SimpleNamespace(envelope=envelope_pb2, error=error_pb2, inference=inference_pb2, worker=worker_pb2,
                                Envelope=envelope_pb2.Envelope)
    return _pb


def frame(payload, flags=0, length=None):
    """One frame: header (flags, big-endian length) + payload."""
    return HEADER.pack(flags, len(payload) if length is None else length) + payload


def serialize(envelope):
    # deterministic: map entries sorted by key, as the Swift encoder packs them.
    return envelope.SerializeToString(deterministic=True)


def kind(envelope):
    return envelope.WhichOneof("body")


def short(envelope):
    """A one-line rendering of an envelope for messages."""
    if envelope is None:
        return "<connection closed>"
    text = str(envelope).replace("\n", " ").strip()
    return text if len(text) <= 300 else text[:300] + "…"


class Closed(Exception):
    """The server closed the connection."""


class Conn:
    """A blocking client connection. Frames of other streams that arrive while waiting
    for one stream are kept, in order, per stream (calls interleave)."""

    def __init__(self, host, port, timeout=10.0):
        self.sock = socket.create_connection((host, port), timeout=timeout)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.timeout = timeout
        self.buf = bytearray()
        self.pending = {}  # stream id -> [Envelope]
        self.eof = False
        self.pb = load_protos()

    def close(self):
        try:
            self.sock.close()
        except OSError:
            pass

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    # Sending

    def send_bytes(self, data):
        self.sock.sendall(data)

    def send(self, envelope):
        self.sock.sendall(frame(serialize(envelope)))

    def envelope(self, stream_id=0):
        return self.pb.Envelope(stream_id=stream_id)

    # Receiving

    def _fill(self, deadline):
        """Reads more bytes; raises Closed at EOF and TimeoutError at the deadline."""
        if self.eof:
            raise Closed()
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise TimeoutError("no frame within the timeout")
        self.sock.settimeout(remaining)
        try:
            data = self.sock.recv(65536)
        except socket.timeout:
            raise TimeoutError("no frame within the timeout")
        except ConnectionResetError:
            data = b""
        if not data:
            self.eof = True
            raise Closed()
        self.buf += data

    def recv_frame(self, timeout=None):
        """(flags, payload) of the next frame off the socket."""
        deadline = time.monotonic() + (self.timeout if timeout is None else timeout)
        while True:
            if len(self.buf) >= HEADER.size:
                flags, length = HEADER.unpack_from(self.buf)
                if len(self.buf) >= HEADER.size + length:
                    payload = bytes(self.buf[HEADER.size:HEADER.size + length])
                    del self.buf[:HEADER.size + length]
                    return flags, payload
            self._fill(deadline)

    def _read_envelope(self, timeout):
        flags, payload = self.recv_frame(timeout)
        if flags != 0:
            raise AssertionError("the server sent a frame with flags 0x%02x" % flags)
        envelope = self.pb.Envelope()
        envelope.ParseFromString(payload)
        return envelope

    def recv(self, timeout=None):
        """The next envelope of any stream (kept ones first, in arrival order)."""
        for stream in sorted(self.pending, key=lambda s: self.pending[s][0][0]):
            queue = self.pending[stream]
            if queue:
                _, envelope = queue.pop(0)
                if not queue:
                    del self.pending[stream]
                return envelope
        return self._read_envelope(timeout)

    def recv_on(self, stream_id, timeout=None):
        """The next envelope of `stream_id`; others are kept for later."""
        queue = self.pending.get(stream_id)
        if queue:
            _, envelope = queue.pop(0)
            if not queue:
                del self.pending[stream_id]
            return envelope
        deadline = time.monotonic() + (self.timeout if timeout is None else timeout)
        while True:
            envelope = self._read_envelope(max(0.0, deadline - time.monotonic()))
            if envelope.stream_id == stream_id:
                return envelope
            self.pending.setdefault(envelope.stream_id, []).append((time.monotonic(), envelope))

    def call(self, envelope, timeout=None):
        """Sends a call; returns every envelope of its stream up to and including the terminal one."""
        self.send(envelope)
        return self.collect(envelope.stream_id, timeout)

    def collect(self, stream_id, timeout=None):
        deadline = time.monotonic() + (self.timeout if timeout is None else timeout)
        out = []
        while True:
            envelope = self.recv_on(stream_id, max(0.0, deadline - time.monotonic()))
            out.append(envelope)
            if kind(envelope) in TERMINAL_KINDS:
                return out

    def expect_close(self, timeout=5.0):
        """Waits for EOF; returns the envelopes that arrived before it. Raises TimeoutError if it stays open."""
        got = []
        deadline = time.monotonic() + timeout
        while True:
            try:
                got.append(self._read_envelope(max(0.0, deadline - time.monotonic())))
            except Closed:
                return got

    def hello(self, version=1, api_key="", client_name="conformance.py"):
        envelope = self.envelope(0)
        envelope.hello.protocol_version = version
        envelope.hello.api_key = api_key
        envelope.hello.client_name = client_name
        self.send(envelope)
        return self.recv_on(0)
