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
    """The HUD numbers, the scene and the enemies' boxes of one frame."""

    health: int
    armor: int
    ammo: int
    ammo_reserve: int
    money: int
    scene: Scene = Scene.GAMEPLAY
    enemies: tuple[Detection, ...] = ()

    HUD_FIELDS: ClassVar[tuple[str, ...]] = HUD_FIELDS

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
