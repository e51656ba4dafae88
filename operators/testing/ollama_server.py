"""A local Ollama-protocol server on loopback, for tests, demos and benchmarks.

It speaks what framewax and the official ``ollama`` client use —
``POST /api/chat``, ``POST /api/generate``, ``GET /api/tags``,
``GET /api/version`` — plus Ollama's OpenAI-compatible
``POST /v1/chat/completions`` and ``GET /v1/models``. Two models:

- ``emulate``: a vision-language model's *timing*: a latency drawn from a
  configurable distribution (fixed, uniform ± jitter, lognormal), ``parallel``
  slots (Ollama's ``OLLAMA_NUM_PARALLEL``) with a queue behind them, and 503
  once the queue is over ``max_queue`` (``OLLAMA_MAX_QUEUE``), as Ollama does.
  The reading it answers with is fixed (``reading``).
- ``local``: the in-process local model (OCR of the HUD + OpenCV) reads the
  image it is sent, so a flow through the server gives real readings.

Faults, injected at random rates (``faults={"503": 0.1}``) or queued for the
next requests (:meth:`OllamaServer.inject`): ``500``, ``503``, ``timeout``
(no reply), ``reset`` (connection reset), ``drip`` (a 200 whose body comes a
byte at a time), ``empty`` (a 200 with empty content), ``prose`` (text
instead of JSON), ``invalid_json``.

Run one: ``python -m flows.ollama_server --port 11434 --latency-ms 300 --parallel 4``
then ``OLLAMA_HOST=127.0.0.1:11434 FRAMEWAX_CONFIG=flows/configs/ollama.toml python -m bytewax.run flows.vision``.
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import json
import logging
import random
import socket
import struct
import subprocess
import sys
import threading
import time
from collections import Counter, deque
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import numpy as np

__all__ = ["FAULTS", "OllamaServer", "ServerStats", "spawn_server"]

logger = logging.getLogger(__name__)

FAULTS = ("500", "503", "timeout", "reset", "drip", "empty", "prose", "invalid_json")
VERSION = "0.12.0-framewax"
DEFAULT_READING: dict[str, Any] = {
    "health": 100,
    "armor": 50,
    "ammo": 30,
    "ammo_reserve": 90,
    "money": 800,
    "scene": "gameplay",
    "enemies": [],
}
PROSE = "I can see a first-person shooter. The player seems to have full health and two enemies are visible."


@dataclass
class ServerStats:
    """What the server saw; read by tests and benchmarks (thread-safe enough for counters)."""

    requests: Counter[str] = field(default_factory=Counter)
    faults: Counter[str] = field(default_factory=Counter)
    models: Counter[str] = field(default_factory=Counter)
    active: int = 0
    """Requests being served by a slot now."""
    waiting: int = 0
    """Requests queued for a slot now."""
    peak_active: int = 0
    peak_open: int = 0
    """Most requests inside the server at once (queued + served)."""
    model_ms: deque[float] = field(default_factory=lambda: deque(maxlen=100_000))
    bodies: deque[dict[str, Any]] = field(default_factory=lambda: deque(maxlen=8))
    """The last request bodies (images cut short), for protocol checks."""
    headers: deque[dict[str, str]] = field(default_factory=lambda: deque(maxlen=8))
    """The last model requests' headers."""
    images: deque[bytes] = field(default_factory=lambda: deque(maxlen=4))
    """The last images received, decoded from base64."""


class OllamaServer:
    """An Ollama-protocol server on ``host:port`` (port 0: any free one), in a thread.

    >>> with OllamaServer(latency_ms=5) as srv:
    ...     srv.url.startswith("http://127.0.0.1:")
    True
    """

    def __init__(
        self,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        model: str = "emulate",
        models: Sequence[str] = ("qwen2.5vl:3b", "framewax-emulated:latest"),
        strict_models: bool = False,
        latency_ms: float = 300.0,
        jitter_ms: float = 0.0,
        distribution: str = "fixed",
        parallel: int = 1,
        max_queue: int = 512,
        faults: Mapping[str, float] | None = None,
        reading: Mapping[str, Any] | None = None,
        drip_interval_s: float = 0.2,
        hang_s: float = 60.0,
        seed: int = 0,
    ) -> None:
        if model not in ("emulate", "local"):
            msg = f"model must be 'emulate' or 'local'; got {model!r}"
            raise ValueError(msg)
        if distribution not in ("fixed", "uniform", "lognormal"):
            msg = f"distribution must be fixed, uniform or lognormal; got {distribution!r}"
            raise ValueError(msg)
        bad = set(faults or {}) - set(FAULTS)
        if bad:
            msg = f"unknown faults {sorted(bad)}; expected some of {FAULTS}"
            raise ValueError(msg)
        if parallel < 1:
            msg = f"parallel must be >= 1; got {parallel}"
            raise ValueError(msg)
        self.mode = model
        self.models = list(models)
        self.strict_models = strict_models
        self.latency_ms, self.jitter_ms, self.distribution = latency_ms, jitter_ms, distribution
        self.parallel, self.max_queue = parallel, max_queue
        self.faults = dict(faults or {})
        self.reading = dict(reading or DEFAULT_READING)
        self.drip_interval_s, self.hang_s = drip_interval_s, hang_s
        self.stats = ServerStats()
        self._rng = random.Random(seed)
        self._lock = threading.Lock()
        self._slots = threading.Semaphore(parallel)
        self._scripted: deque[str] = deque()
        self._stopping = threading.Event()
        self._local: Any = None
        self._conns: set[socket.socket] = set()  # open client connections, cut by stop()
        handler = type("Handler", (_Handler,), {"server_ref": self})
        self.httpd = _QuietServer((host, port), handler)
        self.httpd.daemon_threads = True
        self.httpd.request_queue_size = 256
        self._thread: threading.Thread | None = None

    # -- lifecycle -----------------------------------------------------------------
    @property
    def url(self) -> str:
        return f"http://{self.host}"

    @property
    def host(self) -> str:
        """The ``OLLAMA_HOST`` value that points at this server."""
        host, port = self.httpd.server_address[:2]
        host = host.decode() if isinstance(host, bytes) else str(host)
        return f"{host}:{port}"

    def start(self) -> OllamaServer:
        if self.mode == "local":
            from operators.vision.local import LocalVisionBackend

            self._local = LocalVisionBackend()
            self._local.warm_up()
        self._thread = threading.Thread(
            target=self.httpd.serve_forever,
            kwargs={"poll_interval": 0.05},
            daemon=True,
            name="ollama-server",
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop as a server that goes away does: no new connections, and the open ones
        (kept alive by clients) are cut, so calls in flight fail and clients notice."""
        self._stopping.set()
        self.httpd.shutdown()
        self.httpd.server_close()
        with self._lock:
            conns, self._conns = list(self._conns), set()
        for conn in conns:
            with contextlib.suppress(OSError):
                conn.shutdown(socket.SHUT_RDWR)
        if self._thread is not None:
            self._thread.join(timeout=5)

    def __enter__(self) -> OllamaServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- behaviour -----------------------------------------------------------------
    def inject(self, fault: str, count: int = 1) -> None:
        """Serve ``fault`` to the next ``count`` model requests (before any random ones)."""
        if fault not in FAULTS and fault != "ok":
            msg = f"unknown fault {fault!r}; expected one of {FAULTS} or 'ok'"
            raise ValueError(msg)
        with self._lock:
            self._scripted.extend([fault] * count)

    def _next_fault(self) -> str | None:
        with self._lock:
            if self._scripted:
                f = self._scripted.popleft()
                return None if f == "ok" else f
            for kind, p in self.faults.items():
                if p > 0 and self._rng.random() < p:
                    return kind
            return None

    def _latency_s(self) -> float:
        with self._lock:
            if self.distribution == "uniform":
                ms = self.latency_ms + self._rng.uniform(-self.jitter_ms, self.jitter_ms)
            elif self.distribution == "lognormal":
                sigma = self.jitter_ms / max(self.latency_ms, 1e-9)
                ms = self.latency_ms * self._rng.lognormvariate(-sigma * sigma / 2, sigma)
            else:
                ms = self.latency_ms
        return max(ms, 0.0) / 1000.0

    def _read(self, images: list[str]) -> dict[str, Any]:
        if self.mode == "emulate" or not images:
            return dict(self.reading)
        import cv2

        from operators.frame import Frame

        raw = np.frombuffer(base64.b64decode(images[0]), np.uint8)
        bgr = cv2.imdecode(raw, cv2.IMREAD_COLOR)
        if bgr is None:
            msg = "image: could not decode"
            raise ValueError(msg)
        result = self._local.infer(
            Frame("srv", 0, time.time(), cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB))
        )
        d = result.to_dict()
        return {k: d[k] for k in DEFAULT_READING} | {
            "enemies": [{k: e[k] for k in ("x0", "y0", "x1", "y1")} for e in d["enemies"]]
        }


class _QuietServer(ThreadingHTTPServer):
    """A client that hangs up mid-reply (its deadline, its shutdown) is routine, not an error."""

    def handle_error(self, request: Any, client_address: Any) -> None:
        if isinstance(sys.exc_info()[1], ConnectionError | TimeoutError):
            logger.debug("client %s went away mid-reply", client_address)
            return
        super().handle_error(request, client_address)


class _Handler(BaseHTTPRequestHandler):
    server_ref: OllamaServer
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True  # as Go servers do; else each reply waits on a delayed ACK

    def log_message(self, format: str, *args: Any) -> None:  # quiet
        logger.debug("%s " + format, self.address_string(), *args)

    def setup(self) -> None:
        super().setup()
        with self.server_ref._lock:
            self.server_ref._conns.add(self.connection)

    def finish(self) -> None:
        with self.server_ref._lock:
            self.server_ref._conns.discard(self.connection)
        with contextlib.suppress(OSError):
            super().finish()

    # -- plumbing ------------------------------------------------------------------
    def _send_json(self, status: int, obj: Any, *, ndjson: bool = False) -> None:
        body = (
            b"".join(json.dumps(o).encode() + b"\n" for o in obj)
            if ndjson
            else json.dumps(obj).encode()
        )
        self.send_response(status)
        self.send_header("Content-Type", "application/x-ndjson" if ndjson else "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def _body(self) -> dict[str, Any] | None:
        n = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(n) if n else b""
        try:
            data = json.loads(raw or b"{}")
        except ValueError:
            self._send_json(400, {"error": "invalid JSON body"})
            return None
        if not isinstance(data, dict):
            self._send_json(400, {"error": "body must be a JSON object"})
            return None
        return data

    def do_HEAD(self) -> None:
        self.send_response(200)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def do_GET(self) -> None:
        srv = self.server_ref
        srv.stats.requests[f"GET {self.path}"] += 1
        if self.path in ("/", ""):
            body = b"Ollama is running"
            self.send_response(200)
            self.send_header("Content-Type", "text/plain")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)
        elif self.path == "/api/version":
            self._send_json(200, {"version": VERSION})
        elif self.path == "/api/tags":
            now = datetime.now(UTC).isoformat()
            models = [
                {
                    "name": m,
                    "model": m,
                    "modified_at": now,
                    "size": 0,
                    "digest": "0" * 64,
                    "details": {"family": "framewax", "format": "gguf", "parameter_size": "0B"},
                }
                for m in srv.models
            ]
            self._send_json(200, {"models": models})
        elif self.path == "/v1/models":
            self._send_json(
                200,
                {
                    "object": "list",
                    "data": [
                        {"id": m, "object": "model", "owned_by": "framewax"} for m in srv.models
                    ],
                },
            )
        else:
            self._send_json(404, {"error": "404 page not found"})

    def do_POST(self) -> None:
        # Ollama's total_duration runs from the handler's start (before the body is
        # read and parsed) to the reply; so does this server's.
        self._t_start = time.monotonic()
        srv = self.server_ref
        srv.stats.requests[f"POST {self.path}"] += 1
        route = {
            "/api/chat": "chat",
            "/api/generate": "generate",
            "/v1/chat/completions": "openai",
        }.get(self.path)
        if route is None:
            self._send_json(404, {"error": "404 page not found"})
            return
        body = self._body()
        if body is None:
            return
        model = body.get("model")
        if not isinstance(model, str) or not model:
            self._send_json(400, {"error": "model is required"})
            return
        srv.stats.models[model] += 1
        if srv.strict_models and model not in srv.models and f"{model}:latest" not in srv.models:
            self._send_json(404, {"error": f'model "{model}" not found, try pulling it first'})
            return
        images = _images(route, body)
        if route == "chat" and not body.get("messages"):  # Ollama: an empty chat loads the model
            self._send_json(200, _ollama_reply(model, "chat", "", 0.0, done_reason="load"))
            return
        srv.stats.bodies.append(_shorten(body))
        srv.stats.headers.append(dict(self.headers.items()))
        try:
            srv.stats.images.extend(base64.b64decode(i, validate=True) for i in images[:1])
        except ValueError:
            self._send_json(400, {"error": "illegal base64 data in images"})
            return
        self._model_call(route, model, body, images)

    # -- the model call ------------------------------------------------------------
    def _model_call(self, route: str, model: str, body: dict[str, Any], images: list[str]) -> None:
        srv, st = self.server_ref, self.server_ref.stats
        fault = srv._next_fault()
        if fault:
            st.faults[fault] += 1
        if fault == "503":
            self._send_json(
                503, {"error": "server busy, please try again.  maximum pending requests exceeded"}
            )
            return
        if fault == "500":
            self._send_json(500, {"error": "llama runner process has terminated: exit status 2"})
            return
        if fault == "reset":
            self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            self.close_connection = True
            self.connection.close()
            return
        if fault == "timeout":
            srv._stopping.wait(srv.hang_s)
            self.close_connection = True
            return
        with srv._lock:
            if st.waiting + st.active >= srv.parallel + srv.max_queue:
                busy = True
            else:
                busy = False
                st.waiting += 1
                st.peak_open = max(st.peak_open, st.waiting + st.active)
        if busy:
            st.faults["queue_full"] += 1
            self._send_json(
                503, {"error": "server busy, please try again.  maximum pending requests exceeded"}
            )
            return
        srv._slots.acquire()
        t0 = time.monotonic()
        with srv._lock:
            st.waiting -= 1
            st.active += 1
            st.peak_active = max(st.peak_active, st.active)
        try:
            try:
                reading = srv._read(images)
            except Exception as ex:
                self._send_json(500, {"error": f"failed to process image: {ex}"})
                return
            remaining = srv._latency_s() - (time.monotonic() - t0)
            if remaining > 0:
                srv._stopping.wait(remaining)
        finally:
            ms = (time.monotonic() - t0) * 1000.0
            with srv._lock:
                st.active -= 1
                st.model_ms.append(ms)
            srv._slots.release()
        content = {
            "empty": "",
            "prose": PROSE,
            "invalid_json": json.dumps(reading)[: len(json.dumps(reading)) // 2],
        }.get(fault or "", json.dumps(reading))
        total_ms = (time.monotonic() - self._t_start) * 1000.0
        if route == "openai":
            reply: Any = _openai_reply(model, content)
        else:
            reply = _ollama_reply(model, route, content, total_ms)
        if fault == "drip":
            self._drip(reply)
        elif body.get("stream", True) and route != "openai":
            # Ollama streams by default: one chunk with the content, then the final one.
            first = {
                k: v
                for k, v in reply.items()
                if k in ("model", "created_at", "message", "response")
            }
            first["done"] = False
            last = dict(reply)
            if "message" in last:
                last["message"] = {"role": "assistant", "content": ""}
            else:
                last["response"] = ""
            self._send_json(200, [first, last], ndjson=True)
        else:
            self._send_json(200, reply)

    def _drip(self, reply: Any) -> None:
        body = json.dumps(reply).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        srv = self.server_ref
        try:
            for i in range(len(body)):
                self.wfile.write(body[i : i + 1])
                self.wfile.flush()
                if srv._stopping.wait(srv.drip_interval_s):
                    break
        except OSError:
            pass
        self.close_connection = True


def _images(route: str, body: dict[str, Any]) -> list[str]:
    if route == "generate":
        return [i for i in body.get("images") or [] if isinstance(i, str)]
    out: list[str] = []
    for msg in body.get("messages") or []:
        if not isinstance(msg, dict):
            continue
        out += [i for i in msg.get("images") or [] if isinstance(i, str)]
        content = msg.get("content")
        if isinstance(content, list):
            for part in content:
                url = (part.get("image_url") or {}).get("url", "") if isinstance(part, dict) else ""
                if isinstance(url, str) and url.startswith("data:") and "," in url:
                    out.append(url.split(",", 1)[1])
    return out


def _shorten(body: dict[str, Any]) -> dict[str, Any]:
    """The body with images cut to 64 characters (cheap: no JSON round trip)."""

    def cut(text: str) -> str:
        return text[:64] + "..." if len(text) > 64 else text

    out = dict(body)
    if isinstance(out.get("images"), list):
        out["images"] = [cut(i) if isinstance(i, str) else i for i in out["images"]]
    messages = []
    for msg in out.get("messages") or []:
        if isinstance(msg, dict):
            msg = dict(msg)
            if isinstance(msg.get("images"), list):
                msg["images"] = [cut(i) if isinstance(i, str) else i for i in msg["images"]]
            if isinstance(msg.get("content"), list):
                parts = []
                for part in msg["content"]:
                    if isinstance(part, dict) and isinstance(part.get("image_url"), dict):
                        part = {
                            **part,
                            "image_url": {
                                **part["image_url"],
                                "url": cut(str(part["image_url"].get("url", ""))),
                            },
                        }
                    parts.append(part)
                msg["content"] = parts
        messages.append(msg)
    if "messages" in out:
        out["messages"] = messages
    return out


def _ollama_reply(
    model: str, route: str, content: str, ms: float, done_reason: str = "stop"
) -> dict[str, Any]:
    ns = int(ms * 1e6)
    reply: dict[str, Any] = {"model": model, "created_at": datetime.now(UTC).isoformat()}
    if route == "generate":
        reply["response"] = content
    else:
        reply["message"] = {"role": "assistant", "content": content}
    reply.update(
        done=True,
        done_reason=done_reason,
        total_duration=ns,
        load_duration=0,
        prompt_eval_count=1,
        prompt_eval_duration=ns // 2,
        eval_count=max(1, len(content) // 4),
        eval_duration=ns - ns // 2,
    )
    return reply


def _openai_reply(model: str, content: str) -> dict[str, Any]:
    return {
        "id": f"chatcmpl-{random.getrandbits(32):08x}",
        "object": "chat.completion",
        "created": int(time.time()),
        "model": model,
        "system_fingerprint": "fp_framewax",
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": content},
                "finish_reason": "stop",
            }
        ],
        "usage": {
            "prompt_tokens": 1,
            "completion_tokens": max(1, len(content) // 4),
            "total_tokens": 2,
        },
    }


def spawn_server(
    args: Sequence[str] = (), timeout_s: float = 30.0
) -> tuple[subprocess.Popen[str], str]:
    """Start ``python -m operators.testing.ollama_server --port 0 *args`` in its own process (its own GIL).

    Returns the process and the server's ``host:port``; terminate the process when done.
    """
    proc = subprocess.Popen(
        [sys.executable, "-m", "operators.testing.ollama_server", "--port", "0", *args],
        stdout=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout is not None
    t_end = time.monotonic() + timeout_s
    while time.monotonic() < t_end:
        line = proc.stdout.readline()
        if not line:
            break
        if line.startswith("listening on "):
            return proc, line.split()[2]
    proc.kill()
    msg = f"the Ollama-protocol server did not start (exit {proc.poll()})"
    raise RuntimeError(msg)


def _fault_arg(text: str) -> tuple[str, float]:
    kind, _, p = text.partition("=")
    if kind not in FAULTS:
        msg = f"unknown fault {kind!r}; expected one of {', '.join(FAULTS)}"
        raise argparse.ArgumentTypeError(msg)
    return kind, float(p or 1.0)


def main(argv: Sequence[str] | None = None) -> None:
    ap = argparse.ArgumentParser(
        prog="python -m flows.ollama_server", description=__doc__.split("\n\n")[0]
    )
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, default=11434)
    ap.add_argument("--model", choices=("emulate", "local"), default="emulate")
    ap.add_argument("--latency-ms", type=float, default=300.0)
    ap.add_argument("--jitter-ms", type=float, default=0.0)
    ap.add_argument("--distribution", choices=("fixed", "uniform", "lognormal"), default="fixed")
    ap.add_argument("--parallel", type=int, default=1, help="slots, like OLLAMA_NUM_PARALLEL")
    ap.add_argument("--max-queue", type=int, default=512, help="like OLLAMA_MAX_QUEUE")
    ap.add_argument(
        "--fault",
        type=_fault_arg,
        action="append",
        default=[],
        metavar="KIND=P",
        help=f"inject a fault at rate P; KIND is one of {', '.join(FAULTS)}",
    )
    ap.add_argument("--seed", type=int, default=0)
    a = ap.parse_args(argv)
    # Handler threads waking from their emulated latency wait for the GIL; with the
    # default 5 ms switch interval that adds ms to every call at 100 calls/s.
    sys.setswitchinterval(0.0005)
    srv = OllamaServer(
        host=a.host,
        port=a.port,
        model=a.model,
        latency_ms=a.latency_ms,
        jitter_ms=a.jitter_ms,
        distribution=a.distribution,
        parallel=a.parallel,
        max_queue=a.max_queue,
        faults=dict(a.fault),
        seed=a.seed,
    ).start()
    print(f"listening on {srv.host} (OLLAMA_HOST={srv.host})", flush=True)
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        pass
    finally:
        srv.stop()


if __name__ == "__main__":
    main()
