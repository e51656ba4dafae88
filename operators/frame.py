"""``Frame``: one captured picture, and the one check of whether a picture is usable."""

from __future__ import annotations

import os
from dataclasses import dataclass, field

import numpy as np

from operators.truth import GroundTruth

__all__ = ["MIN_SIDE", "Frame", "image_problem"]

MIN_SIDE = 8


def image_problem(image: object) -> str | None:
    """Why ``image`` is not an ``(H, W, 3)`` uint8 RGB picture of at least 8×8, or ``None``.

    >>> image_problem(np.zeros((8, 8, 3), np.uint8)) is None
    True
    >>> image_problem(np.zeros((8, 8), np.uint8))
    'image shape is (8, 8), expected (H, W, 3)'
    """
    if not isinstance(image, np.ndarray):
        return f"image is {type(image).__name__}, expected numpy.ndarray"
    if image.dtype != np.uint8:
        return f"image dtype is {image.dtype}, expected uint8"
    if image.ndim != 3 or image.shape[2] != 3:
        return f"image shape is {image.shape}, expected (H, W, 3)"
    if image.shape[0] < MIN_SIDE or image.shape[1] < MIN_SIDE:
        return f"image shape is {image.shape}, smaller than {MIN_SIDE}x{MIN_SIDE}"
    return None


@dataclass(frozen=True, eq=False)
class Frame:
    """One captured picture.

    ``image`` is ``(H, W, 3)`` uint8 RGB, passed by reference inside a process.
    ``seq`` is gap-free per ``stream_id``; ``captured_at`` is wall-clock seconds
    when the picture was taken. A source that could not produce the picture
    sets ``error`` (the frame then ends ``failed(capture)``); ``truth`` is what
    a simulator knows the frame shows. ``origin`` is the id of the process that
    captured it (the run counts frames that reached another process: they were
    pickled across the network).
    """

    stream_id: str
    seq: int
    captured_at: float
    image: np.ndarray
    truth: GroundTruth | None = None
    error: str | None = None
    origin: int = field(default_factory=os.getpid, repr=False)

    def __post_init__(self) -> None:
        if not isinstance(self.stream_id, str) or not self.stream_id:
            msg = f"Frame.stream_id must be a non-empty str; got {self.stream_id!r}"
            raise ValueError(msg)
        if not isinstance(self.seq, int) or isinstance(self.seq, bool) or self.seq < 0:
            msg = f"Frame.seq must be an int >= 0; got {self.seq!r}"
            raise ValueError(msg)

    def image_error(self) -> str | None:
        """Why this frame cannot be used (the source's error or :func:`image_problem`), or ``None``."""
        return self.error or image_problem(self.image)

    def age_ms(self, now: float) -> float:
        return (now - self.captured_at) * 1000.0
