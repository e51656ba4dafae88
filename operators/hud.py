"""HUD regions: where a game draws the numbers the vision stage reads and dedup watches.

Relative ``(x0, y0, x1, y1)`` rectangles per field, as presets (``"arena"``,
``"cs2"``, ``"doom"``) or a user's own table; :func:`hud_regions` resolves and checks them
for every stage that takes them.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence

__all__ = [
    "ARENA_HUD_REGIONS",
    "CS2_HUD_REGIONS",
    "DOOM_HUD_REGIONS",
    "HUD_PRESETS",
    "HUD_RANGES",
    "Rect",
    "check_reading",
    "hud_ranges",
    "hud_regions",
]

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
DOOM_HUD_REGIONS: dict[str, Rect] = {
    # Doom's status bar (Freedoom through ViZDoom, `screenblocks 10`, a 4:3 window): the
    # big AMMO, HEALTH % and ARMOR % numbers, as `python -m flows.calibrate` found them
    # on a 640x480 recording (named by the labels under them), with their tops moved
    # down into the bar (it is the bottom 32 of 240 lines at 4:3): calibration had them
    # start in the picture above it, which changes with every step the player takes.
    "ammo": (0.0, 0.87, 0.143, 0.9448),
    "health": (0.143, 0.87, 0.3328, 0.9448),
    "armor": (0.6056, 0.87, 0.7756, 0.9479),
}
HUD_PRESETS: dict[str, dict[str, Rect]] = {
    "arena": ARENA_HUD_REGIONS,
    "cs2": CS2_HUD_REGIONS,
    "doom": DOOM_HUD_REGIONS,
}


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


# What each HUD field can show, per game: a reading outside its range (or with more
# digits than its largest value) is a misread, not a number to hand an agent.
HUD_RANGES: dict[str, dict[str, tuple[int, int]]] = {
    "arena": {
        "health": (0, 100),
        "armor": (0, 100),
        "ammo": (0, 30),
        "ammo_reserve": (0, 90),
        "money": (0, 16000),
    },
    "cs2": {
        "health": (0, 100),
        "armor": (0, 100),
        "ammo": (0, 150),  # the largest magazine (Negev)
        "ammo_reserve": (0, 300),
        "money": (0, 16000),  # the competitive cap
    },
    "doom": {
        "health": (0, 200),  # percent; 200 with a soul sphere / megasphere
        "armor": (0, 200),
        "ammo": (0, 600),  # the selected weapon's: cells reach 600 with a backpack
    },
}


def hud_ranges(
    spec: str | Mapping[str, Sequence[int]], key: str, fields: Collection[str]
) -> dict[str, tuple[int, int]]:
    """A preset name (``"arena"``, ``"cs2"``) or a table ``{field: [lo, hi]}``, checked.

    >>> hud_ranges({"health": [0, 200]}, "k", ["health", "money"])
    {'health': (0, 200)}
    """
    if isinstance(spec, str):
        if spec not in HUD_RANGES:
            msg = f"{key} = {spec!r}: expected one of {sorted(HUD_RANGES)} or a table"
            raise ValueError(msg)
        return dict(HUD_RANGES[spec])
    out: dict[str, tuple[int, int]] = {}
    for name, r in spec.items():
        if name not in fields:
            msg = f"{key}: unknown field {name!r}; expected one of {sorted(fields)}"
            raise ValueError(msg)
        ok = len(r) == 2 and all(isinstance(v, int) and not isinstance(v, bool) for v in r)
        if not ok or not 0 <= r[0] <= r[1]:
            msg = f"{key}.{name} = {list(r)!r}: expected [lo, hi], integers with 0 <= lo <= hi"
            raise ValueError(msg)
        out[name] = (int(r[0]), int(r[1]))
    return out


def check_reading(
    field: str, value: int | None, ranges: Mapping[str, tuple[int, int]]
) -> str | None:
    """Why ``value`` cannot be what ``field`` shows (``None``: plausible, or nothing read).

    >>> check_reading("ammo", 7902, HUD_RANGES["cs2"])
    'read 7902: 4 digits, ammo has at most 3 (0..150)'
    >>> check_reading("health", 120, HUD_RANGES["cs2"]), check_reading("health", 87, HUD_RANGES["cs2"])
    ('read 120: outside 0..100', None)
    """
    if value is None or field not in ranges:
        return None
    lo, hi = ranges[field]
    if len(str(value)) > len(str(hi)):
        return f"read {value}: {len(str(value))} digits, {field} has at most {len(str(hi))} ({lo}..{hi})"
    if not lo <= value <= hi:
        return f"read {value}: outside {lo}..{hi}"
    return None
