"""Dedup: skip frames that look the same as the last kept frame of their stream.

A skipped frame is ledgered ``duplicate(of=<kept seq>)`` and later resolved
by the order step to its kept frame's result, so every skip saves one model
call. Frames whose picture is unusable are turned into ``failed(...)`` here,
before any expensive stage sees them.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol

import bytewax.operators as op
import cv2
import numpy as np
from bytewax.dataflow import operator
from bytewax.operators import KeyedStream

from operators.types import Frame, Outcome

__all__ = ["ChangeDetector", "DedupOut", "ThumbnailDetector", "dedup"]


class ChangeDetector(Protocol):
    """Decides whether a frame shows the same thing as a reference frame."""

    def signature(self, image: np.ndarray) -> Any: ...

    def same(self, a: Any, b: Any) -> bool: ...


class ThumbnailDetector:
    """Compares grey thumbnails of sampled pixels by their largest cell difference.

    The frame is sampled every ``stride`` pixels (cheap even at 1080p), then
    area-resized to ``size``; two frames are the same when no thumbnail cell
    differs by more than ``threshold`` grey levels. A two-digit HUD change
    moves some cells by tens of levels; re-encoding noise moves them by a few.

    >>> det = ThumbnailDetector()
    >>> a = np.zeros((360, 640, 3), np.uint8)
    >>> b = a.copy(); b[300:340, 20:120] = 255
    >>> det.same(det.signature(a), det.signature(a.copy())), det.same(det.signature(a), det.signature(b))
    (True, False)
    """

    def __init__(self, size: tuple[int, int] = (96, 54), stride: int = 2, threshold: float = 12.0):
        if threshold < 0:
            msg = f"dedup.options.threshold must be >= 0; got {threshold}"
            raise ValueError(msg)
        self.size = (int(size[0]), int(size[1]))
        self.stride = max(int(stride), 1)
        self.threshold = float(threshold)

    def signature(self, image: np.ndarray) -> np.ndarray:
        small = image[:: self.stride, :: self.stride]
        grey = cv2.cvtColor(np.ascontiguousarray(small), cv2.COLOR_RGB2GRAY)
        return cv2.resize(grey, self.size, interpolation=cv2.INTER_AREA).astype(np.int16)

    def same(self, a: np.ndarray, b: np.ndarray) -> bool:
        if a.shape != b.shape:
            return False
        return int(np.abs(a - b).max()) <= self.threshold


@dataclass(frozen=True)
class DedupOut:
    """Streams out of :func:`dedup`."""

    kept: KeyedStream[Frame]
    """Frames worth a model call: ``(stream_id, Frame)``."""

    skipped: KeyedStream[Outcome]
    """``duplicate(of)`` and ``failed(capture)`` outcomes: ``(stream_id, Outcome)``."""


@operator
def dedup(
    step_id: str, up: KeyedStream[Frame], detector: ChangeDetector | None, enabled: bool = True
) -> DedupOut:
    """Split frames into kept ones and duplicates of the last kept frame, per stream.

    With ``enabled=False`` (or no detector) every valid frame is kept.
    """

    def mapper(
        state: tuple[int, Any] | None, frame: Frame
    ) -> tuple[tuple[int, Any] | None, Frame | Outcome]:
        problem = frame.image_error()
        if problem is not None:
            return state, Outcome.failed(frame, "capture", problem)
        if not enabled or detector is None:
            return state, frame
        sig = detector.signature(frame.image)
        if state is not None and detector.same(state[1], sig):
            return state, Outcome.duplicate(frame, of=state[0])
        return (frame.seq, sig), frame

    marked = op.stateful_map("check", up, mapper)
    split = op.branch("split", marked, lambda kv: isinstance(kv[1], Frame))
    return DedupOut(split.trues, split.falses)  # type: ignore[arg-type]
