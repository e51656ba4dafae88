"""HUD regions: where a game draws the numbers the vision stage reads and dedup watches.

Relative ``(x0, y0, x1, y1)`` rectangles per field, as presets (``"arena"``,
``"cs2"``) or a user's own table; :func:`hud_regions` resolves and checks them
for every stage that takes them.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence

__all__ = ["ARENA_HUD_REGIONS", "CS2_HUD_REGIONS", "HUD_PRESETS", "Rect", "hud_regions"]

Rect = tuple[float, float, float, float]
"""A rectangle in relative coordinates ``(x0, y0, x1, y1)``, each in ``0..1``."""

# Where the built-in arena draws each HUD number.
ARENA_HUD_REGIONS: dict[str, Rect] = {
    "health": (0.02, 0.88, 0.24, 0.99),
    "armor": (0.27, 0.88, 0.49, 0.99),
    "ammo": (0.70, 0.88, 0.98, 0.99),  # "clip/reserve"
    "money": (0.74, 0.02, 0.98, 0.13),
}

CS2_HUD_REGIONS: dict[str, Rect] = {
    # Counter-Strike 2's default HUD on a 16:9 screen (approximate; override per setup).
    "health": (0.00, 0.94, 0.10, 1.00),
    "armor": (0.10, 0.94, 0.20, 1.00),
    "ammo": (0.86, 0.93, 1.00, 1.00),
    "money": (0.00, 0.20, 0.13, 0.27),
}
HUD_PRESETS: dict[str, dict[str, Rect]] = {"arena": ARENA_HUD_REGIONS, "cs2": CS2_HUD_REGIONS}


def hud_regions(
    spec: str | Mapping[str, Sequence[float]],
    key: str,
    fields: Collection[str] | None = None,
) -> dict[str, Rect]:
    """A preset name or a table of rectangles, checked; errors name ``key`` and what is valid.

    ``fields`` limits the names a table may use (``None``: any name).
    """
    if isinstance(spec, str):
        if spec not in HUD_PRESETS:
            msg = f"{key} = {spec!r}: expected one of {sorted(HUD_PRESETS)} or a table"
            raise ValueError(msg)
        spec = HUD_PRESETS[spec]
    out: dict[str, Rect] = {}
    for name, r in spec.items():
        if fields is not None and name not in fields:
            msg = f"{key}: unknown field {name!r}; expected one of {sorted(fields)}"
            raise ValueError(msg)
        if len(r) != 4 or not (0 <= r[0] < r[2] <= 1 and 0 <= r[1] < r[3] <= 1):
            msg = f"{key}.{name} = {list(r)!r}: expected [x0, y0, x1, y1] in 0..1"
            raise ValueError(msg)
        out[name] = (float(r[0]), float(r[1]), float(r[2]), float(r[3]))
    return out
