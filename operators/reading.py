"""What the vision model reads from a frame: ``VisionResult``, its ``Scene`` and ``Detection``\\s,
and the same reading as JSON.

``VISION_JSON_SCHEMA`` goes in Ollama's ``format`` and OpenAI's
``response_format``; :func:`parse_reading` (``VisionResult.from_json``) turns the
model's text into a :class:`VisionResult` or raises ``VisionError("parse")``
keeping the raw text, so a bad answer ends ``failed(parse)``, never a guess.
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass
from enum import Enum
from typing import Any

from operators.errors import VisionError

__all__ = [
    "HUD_FIELDS",
    "VISION_JSON_SCHEMA",
    "Detection",
    "HudFields",
    "Scene",
    "VisionResult",
    "parse_mapping",
    "parse_reading",
]

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
    confidence: tuple[tuple[str, float], ...] = ()
    """How sure the model was of each HUD field it delivered, ``(field, 0..1)`` pairs (the
    recogniser's score; fields a backend gives no score for are absent)."""

    def confidence_of(self, field: str) -> float | None:
        """The confidence in ``field``'s reading (``None``: no score, or not read)."""
        return dict(self.confidence).get(field)

    @classmethod
    def from_json(
        cls, text: str, *, stream_id: str, seq: int, backend: str, latency_ms: float = 0.0
    ) -> VisionResult:
        """A model's structured output (see :func:`parse_reading`)."""
        return parse_reading(
            text, stream_id=stream_id, seq=seq, backend=backend, latency_ms=latency_ms
        )


VISION_JSON_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "health": {"type": ["integer", "null"], "minimum": 0, "maximum": 200},
        "armor": {"type": ["integer", "null"], "minimum": 0, "maximum": 200},
        "ammo": {"type": ["integer", "null"], "minimum": 0, "maximum": 999},
        "ammo_reserve": {"type": ["integer", "null"], "minimum": 0, "maximum": 999},
        "money": {"type": ["integer", "null"], "minimum": 0, "maximum": 100000},
        "scene": {"type": "string", "enum": [s.value for s in Scene]},
        "enemies": {
            "type": "array",
            "items": {
                "type": "object",
                "properties": {
                    "x0": {"type": "number"},
                    "y0": {"type": "number"},
                    "x1": {"type": "number"},
                    "y1": {"type": "number"},
                },
                "required": ["x0", "y0", "x1", "y1"],
                "additionalProperties": False,
            },
        },
    },
    "required": ["health", "armor", "ammo", "ammo_reserve", "money", "scene", "enemies"],
    "additionalProperties": False,
}


def parse_reading(
    text: str, *, stream_id: str, seq: int, backend: str, latency_ms: float = 0.0
) -> VisionResult:
    """Parse a model's JSON answer; raises ``VisionError("parse")`` with the raw text."""
    try:
        data = json.loads(text)
    except (json.JSONDecodeError, TypeError) as ex:
        raise VisionError("parse", f"invalid JSON ({ex}): {str(text)[:500]!r}") from ex
    return parse_mapping(
        data, stream_id=stream_id, seq=seq, backend=backend, latency_ms=latency_ms, raw=text
    )


def parse_mapping(
    data: object,
    *,
    stream_id: str,
    seq: int,
    backend: str,
    latency_ms: float = 0.0,
    raw: str = "",
) -> VisionResult:
    """A decoded JSON object in the schema's shape → ``VisionResult``."""
    if not isinstance(data, dict):
        raise VisionError(
            "parse", f"expected a JSON object, got {type(data).__name__}: {raw[:500]!r}"
        )

    def num(key: str) -> int | None:
        v = data.get(key)
        if v is None:
            return None
        if isinstance(v, bool) or not isinstance(v, int | float) or not math.isfinite(v):
            raise VisionError("parse", f"{key}={v!r} is not a number: {raw[:500]!r}")
        if v < 0:
            raise VisionError("parse", f"{key}={v!r} is negative: {raw[:500]!r}")
        return int(v)

    try:
        scene = Scene(data.get("scene", "unknown"))
    except ValueError:
        raise VisionError("parse", f"scene={data.get('scene')!r} unknown: {raw[:500]!r}") from None
    enemies = []
    for e in data.get("enemies") or ():
        try:
            x0, y0, x1, y1 = (min(max(float(e[k]), 0.0), 1.0) for k in ("x0", "y0", "x1", "y1"))
            enemies.append(Detection(x0, y0, x1, y1, score=float(e.get("score", 1.0))))
        except (KeyError, TypeError, ValueError, AttributeError) as ex:
            raise VisionError("parse", f"bad enemy {e!r} ({ex}): {raw[:500]!r}") from ex
    return VisionResult(
        stream_id=stream_id,
        seq=seq,
        health=num("health"),
        armor=num("armor"),
        ammo=num("ammo"),
        ammo_reserve=num("ammo_reserve"),
        money=num("money"),
        scene=scene,
        enemies=tuple(enemies),
        backend=backend,
        latency_ms=latency_ms,
    )
