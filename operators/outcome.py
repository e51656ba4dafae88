"""The ledger's vocabulary: every captured ``(stream_id, seq)`` ends in exactly one ``Outcome``.

``processed``, ``duplicate(of)``, ``cached(of)``, ``dropped(reason)`` or
``failed(reason)``. ``CacheEntry`` is the dedup step's note to the order step
that a kept frame's result is a scene-cache entry.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import Enum
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from operators.frame import Frame
    from operators.truth import GroundTruth

__all__ = ["CacheEntry", "Outcome", "Status"]


class Status(str, Enum):
    """Terminal ledger status of a captured frame."""

    PROCESSED = "processed"
    DUPLICATE = "duplicate"
    CACHED = "cached"
    DROPPED = "dropped"
    FAILED = "failed"


@dataclass(frozen=True)
class Outcome:
    """Terminal ledger status of one captured ``(stream_id, seq)``.

    ``of`` names the kept frame a duplicate or cached frame reuses;
    ``reason`` says which policy dropped a frame or why it failed;
    ``detail`` keeps debugging text (raw model output, exception message);
    ``truth`` is what a simulator knows this frame shows (a duplicate's own
    truth, not its kept frame's), for scoring what the agent receives.
    """

    stream_id: str
    seq: int
    status: Status
    captured_at: float = 0.0
    of: int | None = None
    reason: str | None = None
    detail: str = ""
    truth: GroundTruth | None = field(default=None, compare=False, repr=False)

    def __post_init__(self) -> None:
        if self.status in (Status.DUPLICATE, Status.CACHED) and self.of is None:
            msg = f"Outcome {self.status.value} of seq {self.seq} needs `of`"
            raise ValueError(msg)
        if self.status in (Status.DROPPED, Status.FAILED) and not self.reason:
            msg = f"Outcome {self.status.value} of seq {self.seq} needs a `reason`"
            raise ValueError(msg)

    @classmethod
    def failed(cls, frame: Frame, reason: str, detail: str = "") -> Outcome:
        return cls(
            frame.stream_id, frame.seq, Status.FAILED, frame.captured_at, None, reason, detail
        )

    @classmethod
    def dropped(cls, frame: Frame, reason: str, detail: str = "") -> Outcome:
        return cls(
            frame.stream_id, frame.seq, Status.DROPPED, frame.captured_at, None, reason, detail
        )

    @classmethod
    def duplicate(cls, frame: Frame, of: int) -> Outcome:
        return cls(
            frame.stream_id,
            frame.seq,
            Status.DUPLICATE,
            frame.captured_at,
            of=of,
            truth=frame.truth,
        )

    @classmethod
    def cached(cls, frame: Frame, of: int) -> Outcome:
        return cls(
            frame.stream_id, frame.seq, Status.CACHED, frame.captured_at, of=of, truth=frame.truth
        )

    @property
    def label(self) -> str:
        """``processed``, ``duplicate(of=3)``, ``dropped(stale)``..."""
        if self.of is not None:
            return f"{self.status.value}(of={self.of})"
        if self.reason:
            return f"{self.status.value}({self.reason})"
        return self.status.value


@dataclass(frozen=True)
class CacheEntry:
    """Tells the order step that kept frame ``seq`` is a scene-cache entry: keep its
    result, later frames may be ``cached(of=seq)`` however much later they come."""

    stream_id: str
    seq: int
