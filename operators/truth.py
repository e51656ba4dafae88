"""``GroundTruth``: what a simulator (or a labelled recording) knows a frame shows.

Used to score the vision stage against; never an input to any stage.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

from operators.reading import HUD_FIELDS, Detection, HudFields, Scene

__all__ = ["HUD_FIELDS", "GroundTruth"]


@dataclass(frozen=True)
class GroundTruth(HudFields):
    """The HUD numbers, the scene and the enemies' boxes of one frame. A field the game
    does not have (Doom has no money) is ``None`` and is not scored."""

    health: int | None
    armor: int | None
    ammo: int | None
    ammo_reserve: int | None
    money: int | None
    scene: Scene = Scene.GAMEPLAY
    enemies: tuple[Detection, ...] | None = ()
    """The enemies on screen; ``None`` where the source does not know them (not scored)."""
    score: float | None = None
    """The game's own running score of this episode at this frame (ViZDoom's total
    reward), where the game keeps one: what :func:`flows.rl.rewards.game_reward` pays."""
    episode_end: str | None = None
    """``"terminated"`` (the game ended the episode: a kill, a death) or ``"truncated"``
    (its time ran out) on an episode's last frame; ``None`` otherwise."""

    HUD_FIELDS: ClassVar[tuple[str, ...]] = HUD_FIELDS

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> GroundTruth:
        def num(key: str) -> int | None:
            v = d.get(key)
            return None if v is None else int(v)

        return cls(
            health=num("health"),
            armor=num("armor"),
            ammo=num("ammo"),
            ammo_reserve=num("ammo_reserve"),
            money=num("money"),
            scene=Scene(d.get("scene", "gameplay")),
            enemies=None
            if d.get("enemies", ()) is None
            else tuple(Detection(**e) for e in d.get("enemies", ())),
            score=None if d.get("score") is None else float(d["score"]),
            episode_end=d.get("episode_end"),
        )
