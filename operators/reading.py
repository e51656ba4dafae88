"""What the vision model reads from a frame: ``VisionResult``, its ``Scene`` and ``Detection``\\s.

Parsing a provider's JSON into a ``VisionResult`` lives in :mod:`operators.schema`.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from enum import Enum
from typing import Any

__all__ = ["HUD_FIELDS", "Detection", "HudFields", "Scene", "VisionResult"]

HUD_FIELDS: tuple[str, ...] = ("health", "armor", "ammo", "ammo_reserve", "money")


class Scene(str, Enum):
    """What kind of screen a frame shows."""

    GAMEPLAY = "gameplay"
    DEATH = "death"
    MENU = "menu"
    LOADING = "loading"
    UNKNOWN = "unknown"


@dataclass(frozen=True)
class Detection:
    """An object on screen; the box is in relative coordinates ``0..1`` (x0 <= x1, y0 <= y1)."""

    x0: float
    y0: float
    x1: float
    y1: float
    label: str = "enemy"
    score: float = 1.0

    def __post_init__(self) -> None:
        if not (0.0 <= self.x0 <= self.x1 <= 1.0 and 0.0 <= self.y0 <= self.y1 <= 1.0):
            msg = (
                f"Detection box must satisfy 0 <= x0 <= x1 <= 1 and 0 <= y0 <= y1 <= 1; got {self}"
            )
            raise ValueError(msg)

    @property
    def center(self) -> tuple[float, float]:
        return ((self.x0 + self.x1) / 2, (self.y0 + self.y1) / 2)

    @property
    def area(self) -> float:
        return (self.x1 - self.x0) * (self.y1 - self.y0)


class HudFields:
    """What a reading and a ground truth share: the HUD numbers and a scene, as a dataclass."""

    scene: Scene

    def hud(self) -> dict[str, Any]:
        """``{"health": ..., "armor": ..., "ammo": ..., "ammo_reserve": ..., "money": ...}``."""
        return {f: getattr(self, f) for f in HUD_FIELDS}

    def to_dict(self) -> dict[str, Any]:
        """The fields as plain JSON values (the scene by name)."""
        d = asdict(self)  # type: ignore[call-overload]
        d["scene"] = self.scene.value
        return d


@dataclass(frozen=True)
class VisionResult(HudFields):
    """The vision model's reading of one frame.

    HUD fields are ``None`` where the model could not read them, or read something the
    field cannot show (``rejected`` says what and why).
    """

    stream_id: str
    seq: int
    health: int | None = None
    armor: int | None = None
    ammo: int | None = None
    ammo_reserve: int | None = None
    money: int | None = None
    scene: Scene = Scene.UNKNOWN
    enemies: tuple[Detection, ...] = ()
    backend: str = ""
    latency_ms: float = 0.0
    """Time of the whole call as the backend saw it (encode, transfer, retries, parse)."""
    queue_ms: float = 0.0
    """How long the frame waited for a free slot before its call started (set by the vision step)."""
    model_ms: float = 0.0
    """The server's own account of the model's time, where it reports one (Ollama's
    ``total_duration``); 0 when unknown."""
    rejected: tuple[tuple[str, str], ...] = ()
    """HUD fields the backend read but did not trust, as ``(field, why)`` pairs (the
    field itself is ``None``): ``("ammo", "read 7902: 4 digits, ammo has at most 3")``."""

    @classmethod
    def from_json(
        cls, text: str, *, stream_id: str, seq: int, backend: str, latency_ms: float = 0.0
    ) -> VisionResult:
        """A model's structured output (see :func:`operators.schema.parse_reading`)."""
        from operators.schema import parse_reading

        return parse_reading(
            text, stream_id=stream_id, seq=seq, backend=backend, latency_ms=latency_ms
        )
