"""What every capture source is: a stage of streams, each pacing itself.

A capture stage (:class:`CaptureStage`) lists its streams and opens one
:class:`FrameStream` per stream. A stream stamps each frame with its
``stream_id``, a gap-free ``seq`` and the wall-clock capture time; it paces
itself by saying when it next wants to be asked (``next_wake``, never by
sleeping) and ends with ``StopIteration`` at its frame budget or the end of
its recording. The Bytewax source that drives them, records each capture in
the run's ledger and stops them when the run is stopped is
:class:`operators.steps.FrameSource`.
"""

from __future__ import annotations

import logging
import threading
from typing import Any, Protocol, runtime_checkable

from operators.clock import Clock
from operators.errors import ConfigError
from operators.frame import Frame
from operators.options import at_least

__all__ = ["CaptureStage", "FrameStream", "Pacer", "SourceBase", "check_frames", "check_rate"]

logger = logging.getLogger(__name__)


@runtime_checkable
class FrameStream(Protocol):
    """One stream of a capture stage.

    ``next_frames()`` returns the frames due now (``[]`` when none is), and
    raises ``StopIteration`` when the stream has ended; ``next_wake()`` is the
    clock time it next wants to be asked (``None``: as soon as possible).
    """

    stream_id: str

    def next_frames(self) -> list[Frame]: ...

    def next_wake(self) -> float | None: ...

    def close(self) -> None: ...


@runtime_checkable
class CaptureStage(Protocol):
    """A capture source: its streams' ids, and a :class:`FrameStream` for each."""

    name: str

    def stream_ids(self) -> list[str]: ...

    def open(self, stream_id: str) -> FrameStream: ...

    def warm_up(self) -> None: ...

    def close(self) -> None: ...

    def metrics(self) -> dict[str, Any]: ...


class Pacer:
    """Ticks at ``fps`` without drift; counts ticks it had to skip when behind (0 fps: always due).

    >>> from operators.testing import FakeClock
    >>> clock = FakeClock(0.0); pacer = Pacer(10.0, clock)
    >>> pacer.due(), pacer.due(), pacer.next_wake()
    (True, False, 0.1)
    >>> clock.advance(0.35); pacer.due(), pacer.missed
    (True, 2)
    """

    def __init__(self, fps: float, clock: Clock) -> None:
        self.period = 1.0 / fps if fps > 0 else 0.0
        self.clock = clock
        self.next_at = clock.now()
        self.missed = 0

    def due(self) -> bool:
        if self.period == 0.0:
            return True
        now = self.clock.now()
        if now < self.next_at:
            return False
        behind = int((now - self.next_at) / self.period)
        if behind:
            self.missed += behind
        self.next_at += (behind + 1) * self.period
        return True

    def next_wake(self) -> float | None:
        return None if self.period == 0.0 else self.next_at


class SourceBase:
    """What the capture stages here share: the step's name, the counters the summary
    reports (ticks missed per stream, capture errors), no lifecycle."""

    name = "capture"
    MAX_ERRORS_KEPT = 100

    def __init__(self) -> None:
        self.missed: dict[str, int] = {}
        self.errors: list[str] = []
        """The first ``MAX_ERRORS_KEPT`` capture errors, each naming its file or display."""
        self.error_count = 0
        self._errors_lock = threading.Lock()

    def report_error(self, text: str, *, fatal: bool = False) -> None:
        """Log a capture error and keep it for the summary (``fatal``: it ended a stream)."""
        (logger.error if fatal else logger.warning)("capture: %s", text)
        with self._errors_lock:
            self.error_count += 1
            if len(self.errors) < self.MAX_ERRORS_KEPT:
                self.errors.append(text)

    def warm_up(self) -> None:
        return None

    def close(self) -> None:
        return None

    def metrics(self) -> dict[str, Any]:
        with self._errors_lock:
            return {
                "missed_ticks": dict(self.missed),
                "errors": list(self.errors),
                "error_count": self.error_count,
            }


def check_frames(frames: Any) -> None:
    """The frame budget every source takes: an integer >= 0 (0: until stopped)."""
    if isinstance(frames, bool) or not isinstance(frames, int) or frames < 0:
        msg = f"capture.options.frames = {frames!r} is not allowed; expected an integer >= 0 (0: until stopped)"
        raise ConfigError(msg)


def check_rate(fps: Any, frames: Any) -> None:
    """A paced source's options: ``fps >= 0`` (0: as fast as it goes) and its frame budget."""
    at_least("capture.options.fps", fps, 0)
    check_frames(frames)
