"""What comes out of the pipeline: the encoder's half (``Encoded``) and the joined ``Observation``.

How an observation becomes the env's arrays (the RL feature encoding) is the
env's business: :mod:`flows.rl.spaces`.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from operators.outcome import Outcome, Status
from operators.reading import VisionResult
from operators.truth import GroundTruth

__all__ = ["Encoded", "Observation"]


@dataclass(frozen=True, eq=False)
class Encoded:
    """The encoder's half of a frame: the 84×84 RGB visual observation and an embedding.

    It also carries the frame's provenance (capture time, ground truth) to the
    order step, so the vision half need not.
    """

    stream_id: str
    seq: int
    captured_at: float
    visual: np.ndarray  # (84, 84, 3) uint8
    embedding: np.ndarray  # (D,) float32
    truth: GroundTruth | None = None


@dataclass(frozen=True, eq=False)
class Observation:
    """What the agent gets for one frame: model reading, visual observation, provenance.

    ``seq`` / ``captured_at`` are the frame this observation stands for;
    ``source_seq`` is the frame whose model result it reuses (itself when
    processed, the kept frame when it is a duplicate or cached); ``emitted_at``
    is when the order step emitted it.
    """

    stream_id: str
    seq: int
    captured_at: float
    status: Status
    source_seq: int
    vision: VisionResult
    visual: np.ndarray
    embedding: np.ndarray
    emitted_at: float
    truth: GroundTruth | None = None

    @classmethod
    def build(
        cls,
        frame: Encoded | Outcome,
        status: Status,
        source_seq: int,
        reading: VisionResult,
        picture: Encoded | Observation,
        emitted_at: float,
    ) -> Observation:
        """The one way an observation is made: ``frame``'s provenance (stream, seq, capture
        time, ground truth), ``reading`` and the visual half of ``picture`` (the frame's own
        encoding, or the kept frame's observation a duplicate reuses)."""
        return cls(
            stream_id=frame.stream_id,
            seq=frame.seq,
            captured_at=frame.captured_at,
            status=status,
            source_seq=source_seq,
            vision=reading,
            visual=picture.visual,
            embedding=picture.embedding,
            emitted_at=emitted_at,
            truth=frame.truth,
        )

    def age_ms(self, now: float) -> float:
        return (now - self.captured_at) * 1000.0

    @property
    def outcome(self) -> Outcome:
        of = None if self.status is Status.PROCESSED else self.source_seq
        return Outcome(self.stream_id, self.seq, self.status, self.captured_at, of=of)
