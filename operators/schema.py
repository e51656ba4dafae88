"""The reading a model is asked for, as a JSON schema, and the parser of its answer.

``VISION_JSON_SCHEMA`` goes in Ollama's ``format`` and OpenAI's
``response_format``; :func:`parse_reading` turns the model's text into a
:class:`~operators.reading.VisionResult` or raises ``VisionError("parse")``
keeping the raw text, so a bad answer ends ``failed(parse)``, never a guess.
"""

from __future__ import annotations

import json
import math
from typing import Any

from operators.errors import VisionError
from operators.reading import Detection, Scene, VisionResult

__all__ = ["VISION_JSON_SCHEMA", "parse_mapping", "parse_reading"]

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
