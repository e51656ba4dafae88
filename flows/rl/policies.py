"""The baselines a learned policy is measured against: random and scripted.

(The learned policy's network is :class:`flows.rl.sb3.FramewaxExtractor`.) The baselines act from an :class:`~operators.observation.Observation`:
:class:`RandomPolicy` samples the action space; :class:`ScriptedPolicy` is an
aimbot that turns to the nearest enemy the game says is on screen (the frame's
ground truth, which the learned policy never sees) and fires when it is on the
crosshair, reloading when the clip is empty. It is an upper reference, not an
opponent: a learned policy must get a share of its return from the pixels alone.
"""

from __future__ import annotations

import numpy as np

from flows.rl.spaces import ACTION_NVEC
from operators.observation import Observation

__all__ = ["RandomPolicy", "ScriptedPolicy"]


class RandomPolicy:
    """Uniformly random actions (seeded)."""

    name = "random"

    def __init__(self, seed: int = 0) -> None:
        self.rng = np.random.default_rng(seed)

    def reset(self) -> None:
        return None

    def act(self, obs: Observation) -> np.ndarray:
        return np.array([self.rng.integers(n) for n in ACTION_NVEC], dtype=np.int64)


class ScriptedPolicy:
    """Aim at the nearest (largest) enemy the frame's ground truth shows and fire.

    Turns hard while the enemy is more than ``far`` of the screen's width off
    centre, turns gently while its centre is off the crosshair, and fires once the
    crosshair is inside the middle half of its box; with no enemy on screen it
    turns to search (``search`` turn: 4 hard right). ``strafe`` aims by side steps
    instead of gentle turns (Doom ``basic`` has its monster on a wall in front).
    Reloads an empty clip.
    """

    name = "scripted"

    def __init__(self, far: float = 0.2, search: int = 4, strafe: bool = False) -> None:
        self.far, self.search, self.strafe = far, search, strafe

    def reset(self) -> None:
        return None

    def act(self, obs: Observation) -> np.ndarray:
        truth = obs.truth
        if truth is None or truth.enemies is None:
            msg = "the scripted policy needs a source that knows its enemies (arena, doom)"
            raise ValueError(msg)
        if truth.ammo == 0 and (truth.ammo_reserve or 0) > 0:
            return np.array([0, 0, 0, 2])
        if not truth.enemies:
            return np.array([0, self.search, 0, 0])
        box = max(truth.enemies, key=lambda d: d.area)
        cx = (box.x0 + box.x1) / 2
        half = (box.x1 - box.x0) / 4
        off = cx - 0.5
        if abs(off) <= max(half, 0.005):
            return np.array([0, 0, 0, 1])
        if abs(off) > self.far:
            return np.array([0, 4 if off > 0 else 3, 0, 0])
        if self.strafe:
            return np.array([0, 0, 0, 4 if off > 0 else 3])
        return np.array([0, 2 if off > 0 else 1, 0, 0])
