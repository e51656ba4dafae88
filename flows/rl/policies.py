"""The baselines a learned policy is measured against: random and scripted.

(The learned policy's network is :class:`flows.rl.sb3.FramewaxExtractor`.) The baselines act from an :class:`~operators.observation.Observation`:
:class:`RandomPolicy` samples the action space; :class:`ScriptedPolicy` is an
aimbot that turns to the nearest enemy the game says is on screen (the frame's
ground truth, which the learned policy never sees) and fires when it is on the
crosshair, reloading when the clip is empty. It is a reference, not an opponent
and not the best play: a learned policy must earn a share of its return from what
the pipeline reads off the pixels, and may find better play than its rules.
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
    centre, gently while it is more than half a gentle turn (``gentle``, in screen
    widths) off, and fires whenever the crosshair is within ``fire_within`` of the
    box's half-width from its centre (1: anywhere on the box), turning and firing in
    the same step. With ``approach`` > 0 it walks towards an enemy whose box is less
    than that share of the screen's height tall, and while it searches. With no enemy
    on screen it turns hard towards the side it saw one last (``search`` at first:
    4, hard right). ``strafe`` aims by side steps instead of gentle turns, and then
    fires only when it stops stepping (Doom ``basic``: its monster is on a wall in
    front, and the attack and the side step are one action). Reloads an empty clip.
    """

    name = "scripted"

    def __init__(
        self,
        far: float = 0.2,
        search: int = 4,
        strafe: bool = False,
        *,
        gentle: float = 0.08,
        fire_within: float = 1.0,
        approach: float = 0.5,
    ) -> None:
        if search not in (3, 4):
            msg = f"search must be a hard turn (3 left, 4 right); got {search}"
            raise ValueError(msg)
        self.far, self.search, self.strafe = far, search, strafe
        self.gentle, self.fire_within, self.approach = gentle, fire_within, approach
        self._seek = search

    def reset(self) -> None:
        self._seek = self.search

    def act(self, obs: Observation) -> np.ndarray:
        truth = obs.truth
        if truth is None or truth.enemies is None:
            msg = "the scripted policy needs a source that knows its enemies (arena, doom)"
            raise ValueError(msg)
        if truth.ammo == 0 and (truth.ammo_reserve or 0) > 0:
            return np.array([0, 0, 0, 2])
        if not truth.enemies:
            return np.array([1 if self.approach > 0 else 0, self._seek, 0, 0])
        box = max(truth.enemies, key=lambda d: d.area)
        off = (box.x0 + box.x1) / 2 - 0.5
        self._seek = 4 if off > 0 else 3
        on = abs(off) <= max((box.x1 - box.x0) / 2 * self.fire_within, 0.005)
        move = 1 if box.y1 - box.y0 < self.approach else 0
        if self.strafe:
            if on:
                return np.array([move, 0, 0, 1])
            if abs(off) > self.far:
                return np.array([move, 4 if off > 0 else 3, 0, 0])
            return np.array([move, 0, 0, 4 if off > 0 else 3])
        if abs(off) > self.far:
            turn = 4 if off > 0 else 3
        elif abs(off) > self.gentle / 2:
            turn = 2 if off > 0 else 1
        else:
            turn = 0
        return np.array([move, turn, 0, 1 if on else 0])
