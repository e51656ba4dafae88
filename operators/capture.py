"""Capture sources: the arena simulator and recorded-stream replay.

A capture stage (:class:`CaptureStage`) lists its streams and opens one
:class:`FrameStream` per stream. A stream stamps each frame with its
``stream_id``, a gap-free ``seq`` and the wall-clock capture time; it paces
itself by saying when it next wants to be asked (``next_wake``, never by
sleeping) and ends with ``StopIteration`` at its frame budget or the end of
its recording. The Bytewax source that drives them, records each capture in
the run's ledger and stops them when the run is stopped is
:class:`operators.steps.FrameSource`; the live screen is :mod:`operators.screen`.
"""

from __future__ import annotations

import json
import logging
import math
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

import cv2
import numpy as np

from operators.arena import Arena, Autopilot
from operators.clock import SYSTEM_CLOCK, Clock
from operators.errors import ConfigError, RecordingError
from operators.frame import Frame
from operators.options import at_least, greater_than
from operators.reading import HUD_FIELDS
from operators.truth import GroundTruth

__all__ = [
    "INDEX_NAME",
    "ArenaControl",
    "ArenaSource",
    "CaptureStage",
    "FrameStream",
    "IndexEntry",
    "Pacer",
    "ReplaySource",
    "SourceBase",
    "read_index",
]

INDEX_NAME = "index.jsonl"
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


class ArenaControl:
    """Thread-safe hand-off of actions and resets from an agent to an arena source.

    The agent's thread calls :meth:`act` / :meth:`reset`, each returning a
    ticket; the source applies the newest request when it draws its next
    frame and records the ``seq`` of that frame, which :meth:`wait_applied`
    returns, so an env can wait for an observation captured after its action.
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

    def act(self, action: Sequence[int]) -> int:
        with self._cond:
            self._action = tuple(int(a) for a in action)
            self._ticket += 1
            return self._ticket

    def reset(self, seed: int | None = None) -> int:
        with self._cond:
            self._reset_pending, self._reset_seed = True, seed
            self._action = None
            self._ticket += 1
            return self._ticket

    def take(self) -> tuple[tuple[int, ...] | None, bool, int | None, int]:
        """Source side: ``(action, reset?, reset_seed, ticket)``, clearing the reset request."""
        with self._cond:
            out = (self._action, self._reset_pending, self._reset_seed, self._ticket)
            self._reset_pending = False
            return out

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
        """The ``seq`` of the first frame drawn after request ``ticket``, or ``None`` on timeout."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while ticket > self._taken:
                left = deadline - time.monotonic()
                if left <= 0:
                    return None
                self._cond.wait(left)
            return self._applied.get(ticket, self.last_seq)


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


class _ArenaStream:
    def __init__(self, stream_id: str, src: ArenaSource, index: int) -> None:
        self.stream_id = stream_id
        self.src = src
        self.seed = src.seed + index
        self.arena = Arena(seed=self.seed, **src.arena_kwargs)
        self.autopilot = Autopilot(self.seed) if src.autopilot else None
        self.control = src.controls.get(stream_id) if src.controls else None
        self.pacer = Pacer(src.fps, src.clock)
        self.seq = 0

    def next_frames(self) -> list[Frame]:
        if 0 < self.src.frames <= self.seq:
            raise StopIteration
        if not self.pacer.due():
            return []
        ticket = 0
        if self.control is not None:
            action, reset, seed, ticket = self.control.take()
            if reset:
                self.arena.reset(seed)
                if seed is not None and self.autopilot is not None:
                    self.autopilot = Autopilot(seed)
            else:
                self.arena.step(action)
        else:
            self.arena.step(self.autopilot.act(self.arena) if self.autopilot else None)
        image = self.arena.render()
        frame = Frame(self.stream_id, self.seq, self.src.clock.now(), image, self.arena.truth())
        if self.control is not None:
            self.control.applied(ticket, self.seq)
        self.seq += 1
        self.src.missed[self.stream_id] = self.pacer.missed
        return [frame]

    def next_wake(self) -> float | None:
        return self.pacer.next_wake()

    def close(self) -> None:
        return None


class ArenaSource(SourceBase):
    """The built-in arena simulator, one partition (and stream) per game instance.

    Emits :class:`Frame` items with ground truth. ``frames`` is the budget per
    stream (0 = until the run is stopped); ``fps`` 0 draws as fast as possible.
    ``controls`` maps stream ids to :class:`ArenaControl` for an agent to
    drive; streams without one are played by the seeded :class:`Autopilot`
    (or stand still when ``autopilot`` is false).
    """

    def __init__(
        self,
        *,
        streams: int = 1,
        frames: int = 300,
        fps: float = 30.0,
        seed: int = 0,
        width: int = 640,
        height: int = 360,
        n_enemies: int = 3,
        enemy_fire_rate: float = 0.02,
        autopilot: bool = True,
        controls: dict[str, ArenaControl] | None = None,
        clock: Clock = SYSTEM_CLOCK,
    ) -> None:
        super().__init__()
        at_least("capture.options.streams", streams, 1)
        check_rate(fps, frames)
        self.ids = [f"arena-{i}" for i in range(int(streams))]
        self.frames = frames
        self.fps = float(fps)
        self.seed = seed
        self.arena_kwargs: dict[str, Any] = {
            "width": width,
            "height": height,
            "n_enemies": n_enemies,
            "enemy_fire_rate": enemy_fire_rate,
        }
        Arena(**self.arena_kwargs)  # validate sizes now, at build time
        self.autopilot = autopilot
        self.controls = controls
        if controls is not None:  # an agent drives these streams
            for sid in self.ids:
                controls.setdefault(sid, ArenaControl())
        self.clock = clock

    def stream_ids(self) -> list[str]:
        return list(self.ids)

    def open(self, stream_id: str) -> _ArenaStream:
        return _ArenaStream(stream_id, self, self.ids.index(stream_id))


# -- recorded streams ----------------------------------------------------------


@dataclass(frozen=True)
class IndexEntry:
    """One checked line of a recording's ``index.jsonl``."""

    line: int
    file: str | None
    """The frame's image, relative to the recording (``None``: a failed capture)."""
    error: str | None
    """Why the capture failed when it was recorded."""
    captured_at: float | None
    truth: GroundTruth | None


def _entry(index: Path, no: int, line: str) -> IndexEntry:
    """Parse and check one index line; every problem names the file, the line and the field."""

    def bad(what: str) -> RecordingError:
        return RecordingError(f"{index}:{no}: {what}")

    try:
        data = json.loads(line)
    except ValueError as ex:
        raise bad(f"corrupt or truncated index line ({ex})") from ex
    if not isinstance(data, dict):
        raise bad(f"expected a JSON object, got {type(data).__name__}")
    file, error = data.get("file"), data.get("error")
    if file is None and error is None:
        raise bad("entry needs a 'file' (or the 'error' of a failed capture)")
    if file is not None:
        if not isinstance(file, str) or not file:
            raise bad(f"file = {file!r}: expected a path relative to the recording")
        if Path(file).is_absolute() or ".." in Path(file).parts:
            raise bad(f"file = {file!r}: must stay inside the recording's folder")
    if error is not None and not isinstance(error, str):
        raise bad(f"error = {error!r}: expected a string")
    at = data.get("captured_at")
    if at is not None and (
        isinstance(at, bool) or not isinstance(at, int | float) or not math.isfinite(at)
    ):
        raise bad(f"captured_at = {at!r}: expected a number (epoch seconds)")
    truth = _truth(data.get("truth"), bad)
    return IndexEntry(no, file, error, None if at is None else float(at), truth)


def _truth(raw: Any, bad: Callable[[str], RecordingError]) -> GroundTruth | None:
    if raw is None:
        return None
    if not isinstance(raw, dict):
        raise bad(f"truth = {raw!r}: expected an object")
    for key in HUD_FIELDS:
        v = raw.get(key)
        if isinstance(v, bool) or not isinstance(v, int) or v < 0:
            raise bad(f"truth.{key} = {v!r}: expected an integer >= 0")
    try:
        return GroundTruth.from_dict(raw)
    except (KeyError, TypeError, ValueError) as ex:
        raise bad(f"truth: {ex}") from ex


def read_index(path: Path) -> Iterable[IndexEntry]:
    """Yield the checked lines of a recording's ``index.jsonl``.

    Raises :class:`RecordingError` naming the file, the line and the field on
    damage, after yielding every good line before it.
    """
    index = path / INDEX_NAME
    if not index.is_file():
        msg = f"{path}: not a recorded stream (no {INDEX_NAME})"
        raise RecordingError(msg)
    with index.open("r", encoding="utf-8", errors="replace") as fh:
        for no, line in enumerate(fh, start=1):
            if line.strip():
                yield _entry(index, no, line)


class _ReplayStream:
    def __init__(self, stream_id: str, path: Path, src: ReplaySource) -> None:
        self.stream_id = stream_id
        self.path = path
        self.src = src
        self.entries = iter(read_index(path))
        self.seq = 0
        self.t0_rec: float | None = None
        self.t0 = src.clock.now()
        self.next_at: float | None = None
        self.pending: IndexEntry | None = None

    def next_frames(self) -> list[Frame]:
        if 0 < self.src.frames <= self.seq:
            raise StopIteration
        if self.pending is None:
            try:
                self.pending = next(self.entries)  # StopIteration ends the stream
            except RecordingError as ex:
                # The frames before the damage were delivered; end this stream
                # here, and say where and why in the log and the run summary.
                self.src.report_error(f"replay {self.stream_id} stopped: {ex}", fatal=True)
                raise StopIteration from ex
        entry = self.pending
        if self.src.pace == "recorded" and entry.captured_at is not None:
            if self.t0_rec is None:
                self.t0_rec = entry.captured_at
            due = self.t0 + (entry.captured_at - self.t0_rec) / self.src.speed
            if self.src.clock.now() < due:
                self.next_at = due
                return []
        self.pending = None
        return [self._load(entry)]

    def _load(self, entry: IndexEntry) -> Frame:
        image = None
        if entry.file is None:  # a capture that failed when it was recorded
            error = f"{self.path} (index line {entry.line}): recorded failure: {entry.error}"
        else:
            file = self.path / entry.file
            image = cv2.imread(str(file), cv2.IMREAD_COLOR) if file.is_file() else None
            error = None
            if image is None:
                why = "cannot decode image" if file.is_file() else "no such file"
                error = f"{file} (index line {entry.line}): {why}"
                self.src.report_error(error)
        if image is None:
            image = np.zeros((0, 0, 3), np.uint8)
        else:
            image = np.ascontiguousarray(image[..., ::-1])
        now = self.src.clock.now()
        frame = Frame(self.stream_id, self.seq, now, image, entry.truth, error=error)
        self.seq += 1
        return frame

    def next_wake(self) -> float | None:
        return self.next_at

    def close(self) -> None:
        return None


class ReplaySource(SourceBase):
    """Replays recorded streams (folders with ``index.jsonl`` + image files).

    Each recording is one partition and stream (``stream_id`` = the folder's
    name unless the index names one). Frames get fresh gap-free seqs and
    capture times; ``pace`` is ``"recorded"`` (at the recorded pace, times
    ``speed``) or ``"fast"`` (as fast as the flow takes them).
    """

    def __init__(
        self,
        *,
        paths: Sequence[str | Path],
        pace: str = "fast",
        speed: float = 1.0,
        frames: int = 0,
        clock: Clock = SYSTEM_CLOCK,
    ) -> None:
        super().__init__()
        if pace not in ("recorded", "fast"):
            msg = (
                f"capture.options.pace = {pace!r} is not valid; expected one of 'recorded', 'fast'"
            )
            raise ConfigError(msg)
        if isinstance(paths, str | Path) or not paths:
            msg = f"capture.options.paths = {paths!r}: expected a list naming at least one recorded stream"
            raise ConfigError(msg)
        greater_than("capture.options.speed", speed, 0)
        check_frames(frames)
        self.paths = {Path(p).name: Path(p) for p in paths}
        for name, p in self.paths.items():
            if not (p / INDEX_NAME).is_file():
                msg = f"capture.options.paths: {p} is not a recorded stream (no {INDEX_NAME}) [{name}]"
                raise RecordingError(msg)
        self.pace = pace
        self.speed = float(speed)
        self.frames = frames
        self.clock = clock

    def stream_ids(self) -> list[str]:
        return list(self.paths)

    def open(self, stream_id: str) -> _ReplayStream:
        return _ReplayStream(stream_id, self.paths[stream_id], self)
