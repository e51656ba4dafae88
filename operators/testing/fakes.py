"""Test doubles for stage logic: a clock that moves by hand and an executor that runs on demand.

With these, a stage's timing (deadlines, windows, staleness, drains) is tested
deterministically and instantly, without Bytewax and without sleeping::

    clock, pool = FakeClock(), BoundedPool("vision", 2, executor=ManualExecutor())
    ...
    clock.advance(0.3)          # 300 ms pass
    pool.executor.run_all()     # every submitted call finishes now
"""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import Future
from typing import Any

__all__ = ["FakeClock", "ManualExecutor"]


class FakeClock:
    """A :class:`~operators.clock.Clock` that moves only when told; ``sleep`` advances it."""

    def __init__(self, start: float = 1_000.0) -> None:
        self.t = float(start)

    def now(self) -> float:
        return self.t

    def sleep(self, seconds: float) -> None:
        self.t += max(float(seconds), 0.0)

    def advance(self, seconds: float) -> None:
        self.t += float(seconds)

    def __repr__(self) -> str:
        return f"FakeClock(t={self.t})"


class ManualExecutor:
    """An executor whose submitted work runs only when a test calls :meth:`run` / :meth:`run_all`.

    Each job keeps its ``Future``; ``run(i)`` runs the ``i``-th waiting job on
    the caller's thread and completes its future (done callbacks included).
    With ``auto = True`` every job runs as soon as it is submitted.
    """

    def __init__(self, auto: bool = False) -> None:
        self.waiting: list[tuple[Future[Any], Callable[..., Any], tuple[Any, ...]]] = []
        self.auto = auto
        self.shut = False

    def submit(self, fn: Callable[..., Any], /, *args: Any) -> Future[Any]:
        fut: Future[Any] = Future()
        fut.set_running_or_notify_cancel()
        self.waiting.append((fut, fn, args))
        if self.auto:
            self.run(len(self.waiting) - 1)
        return fut

    def run(self, index: int = 0) -> Any:
        """Run one waiting job (the oldest by default); returns its future's result or error."""
        fut, fn, args = self.waiting.pop(index)
        try:
            result = fn(*args)
        except BaseException as ex:
            fut.set_exception(ex)
            return ex
        fut.set_result(result)
        return result

    def run_all(self) -> None:
        while self.waiting:
            self.run()

    def shutdown(self, wait: bool = True, *, cancel_futures: bool = False) -> None:
        self.shut = True
