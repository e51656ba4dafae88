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
import time
from collections.abc import Sequence
from typing import Any, Protocol, runtime_checkable

from operators.clock import Clock
from operators.errors import ConfigError
from operators.frame import Frame
from operators.options import at_least, check_int

__all__ = [
    "AgentControl",
    "CaptureStage",
    "FrameStream",
    "GameSource",
    "GameStream",
    "LockstepWake",
    "Pacer",
    "SourceBase",
    "check_frames",
    "check_lockstep",
    "check_rate",
]

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

    def align(self, at: float) -> None:
        """Move the ticks onto ``at`` plus whole periods, by at most half a period.

        >>> from operators.testing import FakeClock
        >>> pacer = Pacer(10.0, FakeClock(0.0)); pacer.due(); pacer.align(5.03)
        True
        >>> round(pacer.next_at, 6)
        0.13
        """
        if self.period:
            self.next_at = at + round((self.next_at - at) / self.period) * self.period


class AgentControl:
    """Thread-safe hand-off of actions and resets from an agent to a game source.

    The agent's thread calls :meth:`act` / :meth:`reset`, each returning a
    ticket; the source applies the newest request when it makes its next
    frame and records the ``seq`` of that frame, which :meth:`wait_applied`
    returns, so an env can wait for an observation captured after its action.

    A real-time source (:meth:`take`) applies whatever was asked last on every
    frame it draws at its own pace; a lockstep source (:meth:`take_new`) makes a
    frame only for a request it has not applied yet, so the game waits for the agent.

    >>> control = AgentControl()
    >>> control.take_new() is None  # nothing asked: a lockstep game waits
    True
    >>> ticket = control.act([1, 0, 0, 1])
    >>> control.take_new()
    ((1, 0, 0, 1), False, None, 1)
    >>> control.applied(ticket, seq=0); control.wait_applied(ticket, timeout=0.0)
    0
    >>> control.take_new() is None
    True
    """

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._action: tuple[int, ...] | None = None
        self._reset_seed: int | None = None
        self._reset_pending = False
        self._ticket = 0
        self._taken = 0
        self._applied: dict[int, int] = {}
        self.last_seq = -1
        self.asked_at = 0.0
        """``time.monotonic()`` of the newest request (a lockstep source polls faster after one)."""
        self.lockstep = False
        """Set by a lockstep source: it makes a frame only for a new request."""

    def act(self, action: Sequence[int]) -> int:
        with self._cond:
            self._action = tuple(int(a) for a in action)
            self._ticket += 1
            self.asked_at = time.monotonic()
            return self._ticket

    def reset(self, seed: int | None = None) -> int:
        with self._cond:
            self._reset_pending, self._reset_seed = True, seed
            self._action = None
            self._ticket += 1
            self.asked_at = time.monotonic()
            return self._ticket

    def take(self) -> tuple[tuple[int, ...] | None, bool, int | None, int]:
        """Source side: ``(action, reset?, reset_seed, ticket)``, clearing the reset request."""
        with self._cond:
            out = (self._action, self._reset_pending, self._reset_seed, self._ticket)
            self._reset_pending = False
            return out

    def take_new(self) -> tuple[tuple[int, ...] | None, bool, int | None, int] | None:
        """Lockstep side: like :meth:`take`, or ``None`` when every request is applied."""
        with self._cond:
            if self._ticket <= self._taken:
                return None
            out = (self._action, self._reset_pending, self._reset_seed, self._ticket)
            self._reset_pending = False
            return out

    def pending(self) -> bool:
        """A request no frame has been made for yet (what :meth:`take_new` would return)."""
        with self._cond:
            return self._ticket > self._taken

    def applied(self, ticket: int, seq: int) -> None:
        with self._cond:
            self.last_seq = seq
            if ticket > self._taken:
                for t in range(self._taken + 1, ticket + 1):
                    self._applied[t] = seq
                self._taken = ticket
                while len(self._applied) > 1024:
                    self._applied.pop(next(iter(self._applied)))
                self._cond.notify_all()

    def wait_applied(self, ticket: int, timeout: float) -> int | None:
        """The ``seq`` of the first frame made after request ``ticket``, or ``None`` on timeout."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while ticket > self._taken:
                left = deadline - time.monotonic()
                if left <= 0:
                    return None
                self._cond.wait(left)
            return self._applied.get(ticket, self.last_seq)


class LockstepWake:
    """When a lockstep stream waiting for its agent next looks for a request.

    Bytewax cannot be woken from another thread, so a waiting stream is polled:
    every ``busy_s`` while the agent is stepping (a request came within
    ``active_s``), every ``idle_s`` while it is away (a PPO update, an episode
    reset), so that a paused game costs almost no CPU.

    >>> from operators.testing import FakeClock
    >>> control = AgentControl(); wake = LockstepWake(control, FakeClock(100.0))
    >>> wake.next_wake(now=100.0, monotonic=control.asked_at + 1.0)
    100.002
    >>> wake.next_wake(now=100.0, monotonic=control.asked_at + 0.01)
    100.0002
    """

    def __init__(
        self,
        control: AgentControl,
        clock: Clock,
        busy_s: float = 0.0002,
        idle_s: float = 0.002,
        active_s: float = 0.05,
    ) -> None:
        control.lockstep = True
        self.control, self.clock = control, clock
        self.busy_s, self.idle_s, self.active_s = busy_s, idle_s, active_s

    def next_wake(self, now: float | None = None, monotonic: float | None = None) -> float:
        now = self.clock.now() if now is None else now
        mono = time.monotonic() if monotonic is None else monotonic
        active = mono - self.control.asked_at < self.active_s
        return now + (self.busy_s if active else self.idle_s)


Asked = tuple[tuple[int, ...] | None, bool, int | None, int]
"""``(action, reset?, reset_seed, ticket)``: what an agent asked of a game."""


class GameStream:
    """What the game sources' streams share: a game an agent may drive, paced in real
    time (``fps``, the agent's last action held) or in lockstep (a frame per request).

    A subclass calls :meth:`asked` for what to do now (``None``: no frame now), makes
    its frame, and hands it to :meth:`made`.
    """

    def __init__(self, stream_id: str, src: GameSource, index: int) -> None:
        self.stream_id = stream_id
        self.src = src
        self.seed = src.seed + index
        self.control = src.controls.get(stream_id) if src.controls else None
        control = self.control
        self.wake = (
            LockstepWake(control, src.clock) if src.lockstep and control is not None else None
        )
        self.pacer = Pacer(src.fps, src.clock)
        self.clock = src.clock
        self.seq = 0

    @property
    def lockstep(self) -> bool:
        return self.wake is not None

    def pending(self) -> bool:
        """In lockstep, its agent asked for a frame: :meth:`next_frames` will step the game
        (a source steps several such games at once, each in its own thread)."""
        return self.wake is not None and self.control is not None and self.control.pending()

    def asked(self) -> Asked | None:
        """In lockstep, the request not yet applied (``None``: the game waits); in real
        time, at each tick, the newest request (all zeros with no agent).
        ``StopIteration`` once the stream's frame budget is spent."""
        if 0 < self.src.frames <= self.seq:
            raise StopIteration
        if self.wake is not None and self.control is not None:
            return self.control.take_new()
        if not self.pacer.due():
            return None
        if self.control is not None:
            return self.control.take()
        return (None, False, None, 0)

    def made(self, frame: Frame, ticket: int) -> list[Frame]:
        """The frame drawn for request ``ticket``: recorded for the agent's wait."""
        if self.control is not None:
            self.control.applied(ticket, frame.seq)
        self.seq = frame.seq + 1
        self.src.missed[self.stream_id] = self.pacer.missed
        return [frame]

    def next_wake(self) -> float | None:
        if self.wake is not None:
            return self.wake.next_wake()
        return self.pacer.next_wake()


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


class GameSource(SourceBase):
    """What the game sources share (the arena, Doom): one game per stream, named
    ``<prefix>-<i>``; a frame budget per stream; real time at ``fps`` or ``lockstep``
    with ``frame_skip`` tics an action; an :class:`AgentControl` per stream in
    ``controls`` when an agent drives them. A subclass makes its streams in
    :meth:`stream`."""

    def __init__(
        self,
        prefix: str,
        *,
        streams: int,
        frames: int,
        fps: float,
        seed: int,
        lockstep: bool,
        frame_skip: int,
        controls: dict[str, AgentControl] | None,
        clock: Clock,
    ) -> None:
        super().__init__()
        at_least("capture.options.streams", streams, 1)
        check_rate(fps, frames)
        check_lockstep(lockstep, frame_skip)
        self.ids = [f"{prefix}-{i}" for i in range(int(streams))]
        self.frames = frames
        self.fps = float(fps)
        self.seed = seed
        self.lockstep = lockstep
        self.frame_skip = frame_skip
        self.controls = controls
        if controls is not None:  # an agent drives these streams
            for sid in self.ids:
                controls.setdefault(sid, AgentControl())
        self.clock = clock

    def stream_ids(self) -> list[str]:
        return list(self.ids)

    def open(self, stream_id: str) -> GameStream:
        return self.stream(stream_id, self.ids.index(stream_id))

    def stream(self, stream_id: str, index: int) -> GameStream:
        raise NotImplementedError


def check_lockstep(lockstep: Any, frame_skip: Any) -> None:
    """A game source's lockstep options: ``lockstep`` a bool, ``frame_skip`` an integer >= 1."""
    if not isinstance(lockstep, bool):
        msg = f"capture.options.lockstep = {lockstep!r} is not allowed; expected true or false"
        raise ConfigError(msg)
    check_int("capture.options.frame_skip", frame_skip, 1)


def check_rate(fps: Any, frames: Any) -> None:
    """A paced source's options: ``fps >= 0`` (0: as fast as it goes) and its frame budget."""
    at_least("capture.options.fps", fps, 0)
    check_frames(frames)
