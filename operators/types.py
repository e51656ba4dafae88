"""One frozen dataclass per boundary of the dataflow.

``Frame`` (capture → dedup → vision / encoder), ``VisionResult`` (vision →
order), ``Encoded`` (encoder → order), ``Observation`` (order → sink → env)
and ``Outcome`` (the ledger's terminal status of one captured ``seq``).

Every captured ``(stream_id, seq)`` ends in exactly one ``Outcome``:
``processed``, ``duplicate(of)``, ``cached(of)``, ``dropped(reason)`` or
``failed(reason)``.
"""

from __future__ import annotations

import json
import math
import time
from dataclasses import asdict, dataclass, field
from enum import Enum
from typing import Any, ClassVar

import numpy as np

from operators.errors import ConfigError, VisionError

__all__ = [
    "CacheEntry",
    "Detection",
    "Encoded",
    "Frame",
    "GroundTruth",
    "Observation",
    "Outcome",
    "Scene",
    "Status",
    "VisionResult",
    "choice",
]


def choice(enum: type[Enum], value: object, key: str) -> Any:
    """Turn a config string into a member of ``enum``, naming ``key`` and the valid values."""
    if isinstance(value, enum):
        return value
    try:
        return enum(value)
    except ValueError:
        valid = ", ".join(repr(m.value) for m in enum)
        msg = f"{key} = {value!r} is not valid; expected one of {valid}"
        raise ConfigError(msg) from None


class Status(str, Enum):
    """Terminal ledger status of a captured frame."""

    PROCESSED = "processed"
    DUPLICATE = "duplicate"
    CACHED = "cached"
    DROPPED = "dropped"
    FAILED = "failed"


class Scene(str, Enum):
    """What kind of screen a frame shows."""

    GAMEPLAY = "gameplay"
    DEATH = "death"
    MENU = "menu"
    LOADING = "loading"
    UNKNOWN = "unknown"


SCENE_INDEX: dict[Scene, int] = {s: i for i, s in enumerate(Scene)}


@dataclass(frozen=True)
class Detection:
    """An object on screen; the box is in relative coordinates ``0..1`` (x0 < x1, y0 < y1)."""

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


@dataclass(frozen=True)
class GroundTruth:
    """What a simulator knows a frame shows; used to score the vision stage."""

    health: int
    armor: int
    ammo: int
    ammo_reserve: int
    money: int
    scene: Scene = Scene.GAMEPLAY
    enemies: tuple[Detection, ...] = ()

    HUD_FIELDS: ClassVar[tuple[str, ...]] = ("health", "armor", "ammo", "ammo_reserve", "money")

    def hud(self) -> dict[str, int]:
        return {f: getattr(self, f) for f in self.HUD_FIELDS}

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["scene"] = self.scene.value
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> GroundTruth:
        return cls(
            health=int(d["health"]),
            armor=int(d["armor"]),
            ammo=int(d["ammo"]),
            ammo_reserve=int(d["ammo_reserve"]),
            money=int(d["money"]),
            scene=Scene(d.get("scene", "gameplay")),
            enemies=tuple(Detection(**e) for e in d.get("enemies", ())),
        )


@dataclass(frozen=True, eq=False)
class Frame:
    """One captured picture.

    ``image`` is ``(H, W, 3)`` uint8 RGB, passed by reference inside a process.
    ``seq`` is gap-free per ``stream_id``; ``captured_at`` is wall-clock seconds
    (``time.time()``) when the picture was taken.
    """

    stream_id: str
    seq: int
    captured_at: float
    image: np.ndarray
    truth: GroundTruth | None = None
    error: str | None = None  # set by a source that could not produce the picture

    def __post_init__(self) -> None:
        if not isinstance(self.stream_id, str) or not self.stream_id:
            msg = f"Frame.stream_id must be a non-empty str; got {self.stream_id!r}"
            raise ValueError(msg)
        if not isinstance(self.seq, int) or self.seq < 0:
            msg = f"Frame.seq must be an int >= 0; got {self.seq!r}"
            raise ValueError(msg)

    def image_error(self) -> str | None:
        """Why ``image`` is unusable, or ``None``: checked by dedup, so bad frames fail early."""
        if self.error:
            return self.error
        img = self.image
        if not isinstance(img, np.ndarray):
            return f"image is {type(img).__name__}, expected numpy.ndarray"
        if img.dtype != np.uint8:
            return f"image dtype is {img.dtype}, expected uint8"
        if img.ndim != 3 or img.shape[2] != 3:
            return f"image shape is {img.shape}, expected (H, W, 3)"
        if img.shape[0] < 8 or img.shape[1] < 8:
            return f"image shape is {img.shape}, smaller than 8x8"
        return None

    def age_ms(self, now: float | None = None) -> float:
        return ((time.time() if now is None else now) - self.captured_at) * 1000.0


@dataclass(frozen=True)
class VisionResult:
    """The vision model's reading of one frame.

    HUD fields are ``None`` where the model could not read them.
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

    # The fields a model is asked for, as a JSON schema (Ollama ``format`` /
    # OpenAI ``response_format``); boxes are relative coordinates.
    JSON_SCHEMA: ClassVar[dict[str, Any]] = {
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

    def hud(self) -> dict[str, int | None]:
        return {f: getattr(self, f) for f in GroundTruth.HUD_FIELDS}

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["scene"] = self.scene.value
        return d

    @classmethod
    def from_json(
        cls, text: str, *, stream_id: str, seq: int, backend: str, latency_ms: float = 0.0
    ) -> VisionResult:
        """Parse a model's structured output; raises ``VisionError("parse")`` keeping the raw text."""
        try:
            data = json.loads(text)
        except (json.JSONDecodeError, TypeError) as ex:
            raise VisionError("parse", f"invalid JSON ({ex}): {text[:500]!r}") from ex
        return cls.from_mapping(
            data, stream_id=stream_id, seq=seq, backend=backend, latency_ms=latency_ms, raw=text
        )

    @classmethod
    def from_mapping(
        cls,
        data: object,
        *,
        stream_id: str,
        seq: int,
        backend: str,
        latency_ms: float = 0.0,
        raw: str = "",
    ) -> VisionResult:
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
            raise VisionError(
                "parse", f"scene={data.get('scene')!r} unknown: {raw[:500]!r}"
            ) from None
        enemies = []
        for e in data.get("enemies") or ():
            try:
                x0, y0, x1, y1 = (min(max(float(e[k]), 0.0), 1.0) for k in ("x0", "y0", "x1", "y1"))
                enemies.append(Detection(x0, y0, x1, y1, score=float(e.get("score", 1.0))))
            except (KeyError, TypeError, ValueError) as ex:
                raise VisionError("parse", f"bad enemy {e!r} ({ex}): {raw[:500]!r}") from ex
        return cls(
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


@dataclass(frozen=True)
class Outcome:
    """Terminal ledger status of one captured ``(stream_id, seq)``.

    ``of`` names the kept frame a duplicate or cached frame reuses;
    ``reason`` says which policy dropped a frame or why it failed;
    ``detail`` keeps debugging text (raw model output, exception message).
    """

    stream_id: str
    seq: int
    status: Status
    captured_at: float = 0.0
    of: int | None = None
    reason: str | None = None
    detail: str = ""

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
            frame.stream_id,
            frame.seq,
            Status.FAILED,
            frame.captured_at,
            reason=reason,
            detail=detail,
        )

    @classmethod
    def dropped(cls, frame: Frame, reason: str, detail: str = "") -> Outcome:
        return cls(
            frame.stream_id,
            frame.seq,
            Status.DROPPED,
            frame.captured_at,
            reason=reason,
            detail=detail,
        )

    @classmethod
    def duplicate(cls, frame: Frame, of: int) -> Outcome:
        return cls(frame.stream_id, frame.seq, Status.DUPLICATE, frame.captured_at, of=of)

    @classmethod
    def cached(cls, frame: Frame, of: int) -> Outcome:
        return cls(frame.stream_id, frame.seq, Status.CACHED, frame.captured_at, of=of)

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


@dataclass(frozen=True, eq=False)
class Observation:
    """What the agent gets for one frame: model reading, visual observation, provenance.

    ``seq`` / ``captured_at`` are the frame this observation stands for;
    ``source_seq`` is the frame whose model result it reuses (itself when
    processed, the kept frame when it is a duplicate).
    """

    stream_id: str
    seq: int
    captured_at: float
    status: Status
    source_seq: int
    vision: VisionResult
    visual: np.ndarray
    embedding: np.ndarray
    emitted_at: float = field(default_factory=time.time)
    truth: GroundTruth | None = None

    NUMERICAL_FIELDS: ClassVar[tuple[str, ...]] = (
        "health",
        "armor",
        "ammo",
        "ammo_reserve",
        "money_k",
        "enemies",
        "nearest_dx",
        "nearest_dy",
        "nearest_size",
        "hud_read",
    )
    CATEGORICAL_FIELDS: ClassVar[tuple[str, ...]] = (
        "scene",
        "enemies",
        "health_bucket",
        "ammo_bucket",
        "armor_bucket",
    )

    def age_ms(self, now: float | None = None) -> float:
        return ((time.time() if now is None else now) - self.captured_at) * 1000.0

    @property
    def outcome(self) -> Outcome:
        of = None if self.status is Status.PROCESSED else self.source_seq
        return Outcome(self.stream_id, self.seq, self.status, self.captured_at, of=of)

    def numerical(self) -> np.ndarray:
        """``(10,)`` float32: the HUD numbers (-1 where unread) and the nearest enemy."""
        v = self.vision

        def val(x: int | None, scale: float = 1.0) -> float:
            return -1.0 if x is None else x / scale

        nearest = max(v.enemies, key=lambda d: d.area, default=None)
        dx, dy, size = (0.0, 0.0, 0.0)
        if nearest is not None:
            cx, cy = nearest.center
            dx, dy, size = cx - 0.5, cy - 0.5, nearest.area
        hud = v.hud()
        read = sum(x is not None for x in hud.values()) / len(hud)
        return np.array(
            [
                val(v.health),
                val(v.armor),
                val(v.ammo),
                val(v.ammo_reserve),
                val(v.money, 1000.0),
                float(len(v.enemies)),
                dx,
                dy,
                size,
                read,
            ],
            dtype=np.float32,
        )

    def categorical(self) -> np.ndarray:
        """``(5,)`` int64, each in ``0..9``: scene, enemy count, health/ammo/armor deciles."""
        v = self.vision

        def bucket(x: int | None, full: float) -> int:
            return 0 if x is None else int(min(max(x / full * 9.0, 0.0), 9.0))

        return np.array(
            [
                SCENE_INDEX[v.scene],
                min(len(v.enemies), 9),
                bucket(v.health, 100.0),
                bucket(v.ammo, 30.0),
                bucket(v.armor, 100.0),
            ],
            dtype=np.int64,
        )
