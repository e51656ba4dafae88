"""Bounded thread pools that a Bytewax operator submits to and polls.

Bytewax has no async operator and no way for another thread to wake one, so
blocking work (model calls, torch batches) runs here and the operator
harvests finished futures from ``on_notify`` a millisecond or so later.
The pool is created lazily (nothing starts at import or build time) and
closed by the run that owns it.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from typing import Any

__all__ = ["BoundedPool", "soon"]


def soon(ms: float) -> datetime:
    """A notify time ``ms`` milliseconds from now, as Bytewax wants it."""
    return datetime.now(UTC) + timedelta(milliseconds=ms)


class BoundedPool:
    """A thread pool with a hard limit on work submitted and not yet released.

    ``try_acquire`` takes a slot (never blocks), ``submit`` runs work on it, and
    ``release`` frees it once the caller has harvested the result. The limit is
    shared by every key and worker of the step that owns the pool.
    """

    def __init__(self, name: str, limit: int) -> None:
        if limit < 1:
            msg = f"{name}: the in-flight limit must be >= 1; got {limit}"
            raise ValueError(msg)
        self.name = name
        self.limit = limit
        self._lock = threading.Lock()
        self._used = 0
        self._executor: ThreadPoolExecutor | None = None
        self.peak = 0

    @property
    def in_flight(self) -> int:
        return self._used

    def try_acquire(self) -> bool:
        with self._lock:
            if self._used >= self.limit:
                return False
            self._used += 1
            self.peak = max(self.peak, self._used)
            return True

    def release(self) -> None:
        with self._lock:
            self._used -= 1

    def submit(self, fn: Callable[..., Any], *args: Any) -> Future[Any]:
        with self._lock:
            if self._executor is None:
                self._executor = ThreadPoolExecutor(self.limit, thread_name_prefix=self.name)
            executor = self._executor
        return executor.submit(fn, *args)

    def close(self) -> None:
        """Stop the threads (after running work finishes); a later submit starts anew."""
        with self._lock:
            executor, self._executor = self._executor, None
        if executor is not None:
            executor.shutdown(wait=True, cancel_futures=True)
