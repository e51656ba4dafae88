"""HTTP for the vision backends: urllib3 pools, retries, and a deadline no server can stretch.

Read timeouts bound each ``recv``, not a request: a server that sends one
byte every few seconds never trips them. Here every request has a *total*
deadline. The connection of a request is registered with a shared
:class:`Watchdog` thread that shuts its socket down when the deadline passes,
so a blocked read returns at once wherever it is (headers or body), and
:class:`DeadlineRetry` never sleeps or retries past it.

Retries (urllib3's :class:`~urllib3.util.retry.Retry`): connection errors,
read errors and the statuses in ``retry_statuses`` (503 and 5xx by default),
POST included (a vision call has no side effects), exponential backoff from the
first retry plus random jitter, a server's ``Retry-After`` respected when it
sends one (Ollama's 503 does not), never past the deadline.
"""

from __future__ import annotations

import contextlib
import heapq
import itertools
import json
import logging
import os
import random
import socket
import threading
import time
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import urllib3
from urllib3.connection import HTTPConnection, HTTPSConnection
from urllib3.connectionpool import HTTPConnectionPool, HTTPSConnectionPool
from urllib3.exceptions import HTTPError, MaxRetryError
from urllib3.util.retry import Retry

from operators.errors import VisionError

__all__ = [
    "DeadlineRetry",
    "HttpReply",
    "JsonClient",
    "RetryPolicy",
    "Watchdog",
    "parse_ollama_host",
]

logger = logging.getLogger(__name__)


class _RetryLogFilter(logging.Filter):
    """urllib3 logs every retry as a WARNING; framewax counts them per endpoint instead
    (run summary, metrics), so a burst of 503s does not flood stderr."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not (record.levelno == logging.WARNING and str(record.msg).startswith("Retrying"))


logging.getLogger("urllib3.connectionpool").addFilter(_RetryLogFilter())

DEFAULT_OLLAMA_PORT = 11434


def parse_ollama_host(host: str | None = None) -> str:
    """The base URL for ``host`` (default: ``$OLLAMA_HOST``), read as the official client reads it.

    >>> parse_ollama_host("")
    'http://127.0.0.1:11434'
    >>> parse_ollama_host("10.0.0.2")
    'http://10.0.0.2:11434'
    >>> parse_ollama_host(":8080")
    'http://127.0.0.1:8080'
    >>> parse_ollama_host("https://gpu-box")
    'https://gpu-box:443'
    >>> parse_ollama_host("http://gpu-box:9000/ollama/")
    'http://gpu-box:9000/ollama'
    """
    if host is None:
        host = os.environ.get("OLLAMA_HOST", "")
    host = host.strip()
    scheme, _, rest = host.rpartition("://")
    if not scheme:
        scheme = "http"
    default_port = (
        {"http": 80, "https": 443}.get(scheme, 80) if "://" in host else DEFAULT_OLLAMA_PORT
    )
    split = urlsplit(f"{scheme}://{rest}")
    hostname = split.hostname or "127.0.0.1"
    if ":" in hostname:  # IPv6 literal
        hostname = f"[{hostname}]"
    try:
        port = split.port or default_port
    except ValueError as ex:
        msg = f"OLLAMA_HOST={host!r} has an invalid port"
        raise ValueError(msg) from ex
    path = split.path.rstrip("/")
    return f"{scheme}://{hostname}:{port}{path}"


# -- deadline enforcement ------------------------------------------------------


class _Guard:
    """The connections one request used, to be shut down if its deadline passes."""

    __slots__ = ("conns", "deadline", "fired", "lock")

    def __init__(self, deadline: float) -> None:
        self.deadline = deadline
        self.conns: list[HTTPConnection] = []
        self.fired = False
        self.lock = threading.Lock()

    def kill(self) -> None:
        with self.lock:
            self.fired = True
            conns = list(self.conns)
        for conn in conns:
            sock = getattr(conn, "sock", None)
            if sock is None:
                continue
            with contextlib.suppress(OSError):  # already closed
                sock.shutdown(socket.SHUT_RDWR)


class Watchdog:
    """One daemon thread that fires callbacks at monotonic times (a heap, not a thread per call).

    The thread starts with the first scheduled callback and ends once nothing
    is scheduled for ``idle_s`` (at once when no client holds it), so a closed
    backend leaves no thread behind.
    """

    def __init__(self, idle_s: float = 1.0) -> None:
        self.idle_s = idle_s
        self._heap: list[tuple[float, int, Callable[[], None]]] = []
        self._cancelled: set[int] = set()
        self._ids = itertools.count()
        self._cv = threading.Condition()
        self._thread: threading.Thread | None = None
        self._users = 0

    def hold(self) -> None:
        with self._cv:
            self._users += 1

    def release(self) -> None:
        with self._cv:
            self._users = max(0, self._users - 1)
            self._cv.notify()
            thread = self._thread if self._users == 0 else None
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout=2.0)

    def schedule(self, at: float, fn: Callable[[], None]) -> int:
        with self._cv:
            token = next(self._ids)
            heapq.heappush(self._heap, (at, token, fn))
            if self._thread is None:
                self._thread = threading.Thread(
                    target=self._run, name="framewax-http-watchdog", daemon=True
                )
                self._thread.start()
            self._cv.notify()
            return token

    def cancel(self, token: int) -> None:
        with self._cv:
            self._cancelled.add(token)
            self._cv.notify()

    def _run(self) -> None:
        idle_since: float | None = None
        while True:
            with self._cv:
                while self._heap and self._heap[0][1] in self._cancelled:
                    self._cancelled.discard(heapq.heappop(self._heap)[1])
                if not self._heap:
                    now = time.monotonic()
                    idle_since = idle_since or now
                    if self._users == 0 or now - idle_since >= self.idle_s:
                        self._thread = None
                        return
                    self._cv.wait(self.idle_s)
                    continue
                idle_since = None
                at, _token, fn = self._heap[0]
                delay = at - time.monotonic()
                if delay > 0:
                    self._cv.wait(delay)
                    continue
                heapq.heappop(self._heap)
            try:
                fn()
            except Exception:  # a watchdog callback must not kill the watchdog
                logger.exception("watchdog callback failed")


_WATCHDOG = Watchdog()
_current = threading.local()


class _GuardedMixin:
    def request(self, *args: Any, **kwargs: Any) -> None:
        guard: _Guard | None = getattr(_current, "guard", None)
        if guard is not None:
            with guard.lock:
                guard.conns.append(self)  # type: ignore[arg-type]
                fired = guard.fired
            if fired:
                msg = "request deadline passed"
                raise TimeoutError(msg)
        super().request(*args, **kwargs)  # type: ignore[misc]


class _GuardedHTTPConnection(_GuardedMixin, HTTPConnection):
    pass


class _GuardedHTTPSConnection(_GuardedMixin, HTTPSConnection):
    pass


class DeadlineRetry(Retry):
    """``Retry`` that knows the request's deadline: no retry or backoff sleep past it.

    Backoff grows from the first retry (``backoff_factor * 2**(n-1)``, capped at
    ``backoff_max``) plus ``random() * backoff_jitter``. ``on_retry`` is called
    once per retry with its cause (a status code or an exception's name).
    """

    def __init__(
        self,
        *args: Any,
        deadline: float | None = None,
        on_retry: Callable[[str], None] | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(*args, **kwargs)
        self.deadline = deadline
        self.on_retry = on_retry

    def new(self, **kw: Any) -> DeadlineRetry:
        kw.setdefault("deadline", self.deadline)
        kw.setdefault("on_retry", self.on_retry)
        return super().new(**kw)

    def remaining(self) -> float:
        return float("inf") if self.deadline is None else self.deadline - time.monotonic()

    def is_exhausted(self) -> bool:
        return super().is_exhausted() or (bool(self.history) and self.remaining() <= 0.0)

    def increment(self, *args: Any, **kwargs: Any) -> DeadlineRetry:
        new = super().increment(*args, **kwargs)
        if self.on_retry is not None and new.history:
            last = new.history[-1]
            self.on_retry(str(last.status) if last.status else type(last.error).__name__)
        return new

    def get_backoff_time(self) -> float:
        n = len(self.history)
        if n == 0 or self.backoff_factor <= 0:
            return 0.0
        value = min(self.backoff_max, self.backoff_factor * 2 ** (n - 1))
        value += random.random() * self.backoff_jitter
        return max(0.0, min(value, self.remaining()))

    def sleep(self, response: Any = None) -> None:
        if self.respect_retry_after_header and response is not None:
            after = self.get_retry_after(response)
            if after is not None:
                time.sleep(max(0.0, min(after, self.remaining())))
                return
        time.sleep(self.get_backoff_time())


@dataclass(frozen=True)
class RetryPolicy:
    """How a vision call is retried (all within its total deadline)."""

    retries: int = 3
    """Retries after the first attempt (0 turns retrying off)."""
    backoff_s: float = 0.1
    """First backoff; doubles on each retry."""
    backoff_max_s: float = 2.0
    jitter_s: float = 0.1
    """Random extra wait in [0, jitter_s) so clients that failed together do not retry together."""
    statuses: Collection[int] = (500, 502, 503, 504)
    """Statuses that are retried; others fail at once."""

    def make(self, deadline: float, on_retry: Callable[[str], None] | None) -> DeadlineRetry:
        return DeadlineRetry(
            total=self.retries,
            connect=None,
            read=None,
            status=None,
            other=0,
            redirect=0,
            allowed_methods=None,  # POST too
            status_forcelist=set(self.statuses),
            backoff_factor=self.backoff_s,
            backoff_max=self.backoff_max_s,
            backoff_jitter=self.jitter_s,
            raise_on_status=False,
            raise_on_redirect=False,
            respect_retry_after_header=True,
            deadline=deadline,
            on_retry=on_retry,
        )


@dataclass(frozen=True)
class HttpReply:
    status: int
    body: bytes
    elapsed_ms: float

    def json(self) -> Any:
        return json.loads(self.body)


class JsonClient:
    """POSTs and GETs JSON to one server over a pool of ``maxsize`` kept-alive connections."""

    def __init__(
        self,
        base_url: str,
        *,
        maxsize: int,
        connect_timeout_s: float = 3.0,
        read_timeout_s: float = 60.0,
        retry: RetryPolicy | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        split = urlsplit(base_url)
        if split.scheme not in ("http", "https") or not split.hostname:
            msg = f"not an http(s) URL: {base_url!r}"
            raise ValueError(msg)
        self.base_url = base_url.rstrip("/")
        self.prefix = split.path.rstrip("/")
        self.connect_timeout_s = connect_timeout_s
        self.read_timeout_s = read_timeout_s
        self.retry = retry or RetryPolicy()
        self.headers = {"Content-Type": "application/json", **(headers or {})}
        pool_cls: type[HTTPConnectionPool] = (
            HTTPSConnectionPool if split.scheme == "https" else HTTPConnectionPool
        )
        self.pool = pool_cls(
            split.hostname, split.port, maxsize=max(1, maxsize), block=False, retries=False
        )
        self.pool.ConnectionCls = (
            _GuardedHTTPSConnection if split.scheme == "https" else _GuardedHTTPConnection
        )
        self._closed = False
        self._active: set[_Guard] = set()  # requests in flight, aborted by close()
        self._lock = threading.Lock()
        _WATCHDOG.hold()

    def post(
        self,
        path: str,
        payload: Any,
        *,
        deadline_s: float,
        on_retry: Callable[[str], None] | None = None,
    ) -> HttpReply:
        """POST ``payload`` as JSON; any status comes back as a reply, transport trouble as
        ``VisionError("timeout" | "connection")``."""
        return self._send("POST", path, json.dumps(payload).encode(), deadline_s, on_retry)

    def get(self, path: str, *, deadline_s: float = 5.0) -> HttpReply:
        return self._send("GET", path, None, deadline_s, None)

    def _send(
        self,
        method: str,
        path: str,
        body: bytes | None,
        deadline_s: float,
        on_retry: Callable[[str], None] | None,
    ) -> HttpReply:
        t0 = time.monotonic()
        deadline = t0 + deadline_s
        guard = _Guard(deadline)
        with self._lock:
            if self._closed:
                raise VisionError("connection", f"{method} {self.base_url}{path}: client closed")
            self._active.add(guard)
        token = _WATCHDOG.schedule(deadline, guard.kill)
        _current.guard = guard
        try:
            timeout = urllib3.Timeout(
                connect=min(self.connect_timeout_s, deadline_s),
                read=min(self.read_timeout_s, deadline_s),
            )
            resp = self.pool.urlopen(
                method,
                self.prefix + path,
                body=body,
                headers=self.headers,
                retries=self.retry.make(deadline, on_retry),
                timeout=timeout,
                preload_content=True,
                redirect=False,
                assert_same_host=False,
            )
            return HttpReply(resp.status, resp.data or b"", (time.monotonic() - t0) * 1000.0)
        except (MaxRetryError, HTTPError, OSError) as ex:
            cause = ex.reason if isinstance(ex, MaxRetryError) and ex.reason else ex
            elapsed = (time.monotonic() - t0) * 1000.0
            if guard.fired or time.monotonic() >= deadline:
                raise VisionError(
                    "timeout",
                    f"{method} {self.base_url}{path}: no complete reply within "
                    f"{deadline_s * 1000:.0f} ms ({type(cause).__name__})",
                ) from ex
            raise VisionError(
                "connection",
                f"{method} {self.base_url}{path} after {elapsed:.0f} ms: {type(cause).__name__}: {cause}",
            ) from ex
        finally:
            _current.guard = None
            _WATCHDOG.cancel(token)
            with self._lock:
                self._active.discard(guard)

    def close(self) -> None:
        """Abort the requests in flight (their sockets are shut down, they fail at once) and
        close the connections; the last client to close lets the watchdog thread end."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
            active = list(self._active)
        for guard in active:
            guard.kill()
        self.pool.close()
        _WATCHDOG.release()
