"""Bounded thread pools that a stage submits blocking work to and polls.

Bytewax has no async operator and no way for another thread to wake one, so
blocking work (model calls, torch batches) runs here and the stage harvests
finished futures a millisecond or so later. A slot is taken without
blocking (:meth:`BoundedPool.try_acquire`) and given back *when the work
finishes*, whoever harvests it: one stream's finished work never holds a
slot another stream is waiting for (a harvest-time release deadlocked two
streams at end of stream). The threads start lazily and stop on ``close``.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from typing import TYPE_CHECKING, Any, Protocol, TypeVar

if TYPE_CHECKING:
    from operators.clock import Clock

T = TypeVar("T")

__all__ = ["BoundedPool", "Executor", "InlineExecutor", "pump_until_done"]


class Executor(Protocol):
    """What :class:`BoundedPool` runs work on (``ThreadPoolExecutor``, or a test's own)."""

    def submit(self, fn: Callable[..., Any], /, *args: Any) -> Future[Any]: ...

    def shutdown(self, wait: bool = True, *, cancel_futures: bool = False) -> None: ...


class InlineExecutor:
    """Runs each call at once in the caller's thread and hands back its finished future.

    For a stage whose work costs less than the hop to a pool thread and the poll that
    collects it (the local model, a small CPU encoder in lockstep): the stage sends and
    harvests in the same activation. A call cannot be given up at its deadline (it has
    returned by the time anyone looks) and no two run at once.

    >>> InlineExecutor().submit(lambda a, b: a + b, 2, 2).result()
    4
    """

    def submit(self, fn: Callable[..., Any], /, *args: Any) -> Future[Any]:
        fut: Future[Any] = Future()
        try:
            fut.set_result(fn(*args))
        except BaseException as ex:  # the stage harvests it as it would a thread's
            fut.set_exception(ex)
        return fut

    def shutdown(self, wait: bool = True, *, cancel_futures: bool = False) -> None:
        return None


class BoundedPool:
    """A pool with a hard limit on work taken and not yet finished, shared by every stream.

    >>> pool = BoundedPool("demo", 1)
    >>> pool.try_acquire(), pool.try_acquire()
    (True, False)
    >>> pool.submit(lambda: 2 + 2).result(), pool.in_flight
    (4, 0)
    >>> pool.close()
    """

    def __init__(self, name: str, limit: int, executor: Executor | None = None) -> None:
        if limit < 1:
            msg = f"{name}: the in-flight limit must be >= 1; got {limit}"
            raise ValueError(msg)
        self.name = name
        self.limit = limit
        self.capacity = limit
        """Threads the pool may start: the limit it was made with (``set_limit`` only lowers
        the number of slots handed out)."""
        self._lock = threading.Lock()
        self._used = 0
        self._given = executor
        self._executor: Executor | None = executor
        self.peak = 0

    @property
    def in_flight(self) -> int:
        return self._used

    @property
    def executor(self) -> Executor | None:
        return self._executor

    def set_limit(self, limit: int) -> None:
        """Hand out at most ``limit`` slots from now on (clamped to ``[1, capacity]``); work
        already running finishes."""
        with self._lock:
            self.limit = min(max(1, limit), self.capacity)

    def try_acquire(self) -> bool:
        """Take a slot if one is free; never blocks."""
        with self._lock:
            if self._used >= self.limit:
                return False
            self._used += 1
            self.peak = max(self.peak, self._used)
            return True

    def release(self) -> None:
        """Give back a slot taken with :meth:`try_acquire` and not submitted."""
        with self._lock:
            self._used = max(self._used - 1, 0)

    def submit(self, fn: Callable[..., Any], *args: Any) -> Future[Any]:
        """Run ``fn(*args)`` on a slot already taken; the slot is freed when it finishes."""
        with self._lock:
            if self._executor is None:
                self._executor = ThreadPoolExecutor(self.capacity, thread_name_prefix=self.name)
            executor = self._executor
        fut = executor.submit(fn, *args)
        fut.add_done_callback(lambda _f: self.release())
        return fut

    def close(self) -> None:
        """Stop the threads (running work finishes first); a later submit starts anew."""
        with self._lock:
            executor, self._executor = self._executor, self._given
        if executor is not None and executor is not self._given:
            executor.shutdown(wait=True, cancel_futures=True)


def pump_until_done(
    clock: Clock,
    *,
    busy: Callable[[], bool],
    running: Callable[[], bool],
    pump: Callable[[], list[T]],
    progress_at: Callable[[], float],
    stall_s: float,
    stall_why: str,
    poll_s: float,
    until: float | None,
) -> tuple[list[T], str]:
    """The bounded drain every pooled stage ends a stream with: ``pump()`` every ``poll_s``
    while ``busy()``, and stop early at ``until`` or once nothing is ``running()`` and
    nothing has progressed for ``stall_s``. Returns what was pumped and why it stopped
    (``"when the stream ended"``, ``"at shutdown"`` or ``stall_why``), for the stage to
    resolve what is left with that reason. Never waits past ``until``, nor forever.

    >>> from operators.testing import FakeClock
    >>> clock = FakeClock(0.0)
    >>> out, why = pump_until_done(clock, busy=lambda: True, running=lambda: False,
    ...     pump=lambda: [], progress_at=lambda: 0.0, stall_s=0.5, stall_why="stuck",
    ...     poll_s=0.1, until=None)
    >>> why, round(clock.now(), 1)
    ('stuck', 0.6)
    """
    out: list[T] = []
    while busy():
        now = clock.now()
        if until is not None and now >= until:
            return out, "at shutdown"
        if not running() and now - progress_at() > stall_s:
            return out, stall_why
        clock.sleep(poll_s)
        out.extend(pump())
    return out, "when the stream ended"
