"""The one clock every stage reads, injected so tests can drive time by hand.

Stage logic never calls ``time.time()`` itself: it asks its :class:`Clock`.
``now()`` is wall-clock seconds since the epoch (a frame's ``captured_at`` is
one, and Bytewax's ``notify_at`` wants a wall-clock time); ``sleep()`` is how
a bounded drain waits between polls. :class:`~operators.testing.FakeClock`
moves only when a test says so (and ``sleep`` advances it at once), so a
drain that would wait seconds on the system clock finishes instantly there.
"""

from __future__ import annotations

import time
from typing import Protocol, runtime_checkable

__all__ = ["SYSTEM_CLOCK", "Clock", "SystemClock"]


@runtime_checkable
class Clock(Protocol):
    """Where a stage gets the time: ``now()`` in epoch seconds, ``sleep(seconds)``."""

    def now(self) -> float: ...

    def sleep(self, seconds: float) -> None: ...


class SystemClock:
    """The real clock: ``time.time()`` and ``time.sleep()``."""

    def now(self) -> float:
        return time.time()

    def sleep(self, seconds: float) -> None:
        if seconds > 0:
            time.sleep(seconds)

    def __repr__(self) -> str:
        return "SystemClock()"


SYSTEM_CLOCK = SystemClock()
