"""Recorded streams, replayed: a folder of PNG frames and an ``index.jsonl``.

:func:`read_index` checks every index line as it reads it (a damaged line ends
that stream with an error naming the file, the line, the field and its value);
:class:`ReplaySource` replays one stream per recording, as fast as it can
(``pace = "fast"``) or at the recorded pace (``pace = "recorded"``, ``speed``).
"""

from __future__ import annotations

import json
import logging
import math
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from operators.capture.base import (
    SourceBase,
    check_frames,
)
from operators.clock import SYSTEM_CLOCK, Clock
from operators.errors import ConfigError, RecordingError
from operators.frame import Frame
from operators.options import greater_than
from operators.reading import HUD_FIELDS
from operators.truth import GroundTruth

__all__ = ["INDEX_NAME", "IndexEntry", "ReplaySource", "read_index"]

INDEX_NAME = "index.jsonl"
logger = logging.getLogger(__name__)


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
    if not any(raw.get(key) is not None for key in HUD_FIELDS):
        raise bad(f"truth = {raw!r}: expected at least one of {', '.join(HUD_FIELDS)}")
    for key in HUD_FIELDS:
        v = raw.get(key)
        if v is None:
            continue  # a field this game does not have
        if isinstance(v, bool) or not isinstance(v, int) or v < 0:
            raise bad(f"truth.{key} = {v!r}: expected an integer >= 0 (or null)")
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

    Each recording is one stream, its ``stream_id`` the folder's name (two
    recordings with one name are refused). Frames get fresh gap-free seqs and
    capture times, and keep the recording's ground truth; ``pace`` is
    ``"recorded"`` (at the recorded pace, times ``speed``) or ``"fast"`` (as
    fast as the flow takes them); ``frames`` stops each stream after that many
    (0: the whole recording).
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
        if len(self.paths) < len(paths):
            names = [Path(p).name for p in paths]
            twice = sorted({n for n in names if names.count(n) > 1})
            msg = f"capture.options.paths = {[str(p) for p in paths]!r}: two recordings are named {twice}; each stream is named by its folder, rename one"
            raise ConfigError(msg)
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
