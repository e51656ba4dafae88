"""The env's spaces and the encoding of an ``Observation`` into them, side by side.

The observation space and the features that fill it are defined from the same
field lists, so they cannot drift apart: :func:`features` of any observation
is in :func:`observation_space` (a property test checks it).
"""

from __future__ import annotations

import numpy as np
from gymnasium import spaces

from operators.batch.encoder import OBS_SIZE
from operators.observation import Observation
from operators.reading import Scene, VisionResult

__all__ = [
    "ACTION_NVEC",
    "CATEGORICAL_FIELDS",
    "NUMERICAL_FIELDS",
    "NUMERICAL_SCALE",
    "action_space",
    "categorical",
    "features",
    "numerical",
    "observation_space",
]

ACTION_NVEC = (3, 5, 10, 8)
"""move, turn, pitch, command (all zeros does nothing)."""

NUMERICAL_FIELDS: tuple[str, ...] = (
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
"""``numerical``: the HUD numbers (-1 where unread, money in thousands), the enemy count,
the nearest (largest) enemy's offset from the centre and size, and the share of HUD read."""

NUMERICAL_SCALE: tuple[float, ...] = (100.0, 100.0, 100.0, 100.0, 10.0, 5.0, 1.0, 1.0, 1.0, 1.0)
"""A typical size of each numerical field, for a network to divide by."""

CATEGORICAL_FIELDS: tuple[str, ...] = (
    "scene",
    "enemies",
    "health_bucket",
    "ammo_bucket",
    "armor_bucket",
)
"""``categorical``, each in ``0..BUCKETS-1``: scene, enemy count, health/ammo/armor deciles."""

BUCKETS = 10
SCENE_INDEX: dict[Scene, int] = {s: i for i, s in enumerate(Scene)}


def action_space() -> spaces.MultiDiscrete:
    return spaces.MultiDiscrete(list(ACTION_NVEC))


def observation_space() -> spaces.Dict:
    return spaces.Dict(
        {
            "visual": spaces.Box(0, 255, (OBS_SIZE, OBS_SIZE, 3), np.uint8),
            "numerical": spaces.Box(-np.inf, np.inf, (len(NUMERICAL_FIELDS),), np.float32),
            "categorical": spaces.MultiDiscrete([BUCKETS] * len(CATEGORICAL_FIELDS)),
        }
    )


def numerical(v: VisionResult) -> np.ndarray:
    """``(len(NUMERICAL_FIELDS),)`` float32, in the order of :data:`NUMERICAL_FIELDS`."""

    def val(x: int | None, scale: float = 1.0) -> float:
        return -1.0 if x is None else x / scale

    nearest = max(v.enemies, key=lambda d: d.area, default=None)
    dx, dy, size = (0.0, 0.0, 0.0)
    if nearest is not None:
        cx, cy = nearest.center
        dx, dy, size = cx - 0.5, cy - 0.5, nearest.area
    hud = v.hud()
    read = sum(x is not None for x in hud.values()) / len(hud)
    values = {
        "health": val(v.health),
        "armor": val(v.armor),
        "ammo": val(v.ammo),
        "ammo_reserve": val(v.ammo_reserve),
        "money_k": val(v.money, 1000.0),
        "enemies": float(len(v.enemies)),
        "nearest_dx": dx,
        "nearest_dy": dy,
        "nearest_size": size,
        "hud_read": read,
    }
    return np.array([values[f] for f in NUMERICAL_FIELDS], dtype=np.float32)


def categorical(v: VisionResult) -> np.ndarray:
    """``(len(CATEGORICAL_FIELDS),)`` int64, each in ``0..BUCKETS-1``."""

    def bucket(x: int | None, full: float) -> int:
        return 0 if x is None else int(min(max(x / full * (BUCKETS - 1), 0.0), BUCKETS - 1))

    values = {
        "scene": SCENE_INDEX[v.scene],
        "enemies": min(len(v.enemies), BUCKETS - 1),
        "health_bucket": bucket(v.health, 100.0),
        "ammo_bucket": bucket(v.ammo, 30.0),
        "armor_bucket": bucket(v.armor, 100.0),
    }
    return np.array([values[f] for f in CATEGORICAL_FIELDS], dtype=np.int64)


def features(obs: Observation) -> dict[str, np.ndarray]:
    """One observation as the env's ``Dict`` observation (a copy; the pipeline's arrays stay)."""
    return {
        "visual": np.array(obs.visual, dtype=np.uint8, copy=True),
        "numerical": numerical(obs.vision),
        "categorical": categorical(obs.vision),
    }
