"""Freedoom through ViZDoom: the game, and its own variables as the ground truth of a frame.

ViZDoom (``pip install vizdoom``) ships Freedoom's WADs and scenarios
(``deathmatch``, ``basic``, ``defend_the_center``...). :class:`DoomSettings`
makes a configured ``vizdoom.DoomGame`` (scenario, resolution, HUD mode, window,
mode, seed); ``python -m flows.doom`` runs one on an X display and logs its
variables every tic, which :class:`GameVarsLog` follows so that a screen
capture of the game's window is stamped with what the game said at that
moment (:func:`doom_truth`: health, armor, the selected weapon's ammo, the
scene). Doom has no money and no separate reserve: those truth fields are
``None`` and are not scored. ``vizdoom`` is imported only when a game is made.
"""

from __future__ import annotations

import json
import os
import tempfile
from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from operators.errors import ConfigError
from operators.reading import Scene
from operators.truth import GroundTruth

__all__ = [
    "HUD_MODES",
    "VARIABLES",
    "DoomSettings",
    "GameVarsLog",
    "doom_truth",
    "scenario_path",
    "wad_path",
]

VARIABLES: tuple[str, ...] = (
    "HEALTH",
    "ARMOR",
    "SELECTED_WEAPON",
    "SELECTED_WEAPON_AMMO",
    "POSITION_X",
    "POSITION_Y",
    "ANGLE",
    "KILLCOUNT",
    "DEAD",
    "ATTACK_READY",
)
"""The game variables logged every tic (``vizdoom.GameVariable`` names)."""

HUD_MODES: tuple[str, ...] = ("fullscreen", "none", "statusbar")
"""How the game draws its numbers: Doom's status bar, the full-screen HUD over the
picture (ViZDoom's minimal HUD), or none."""


def _vizdoom() -> Any:
    try:
        import vizdoom
    except ImportError as ex:
        msg = "Doom needs ViZDoom: pip install vizdoom (it ships Freedoom)"
        raise ConfigError(msg) from ex
    return vizdoom


def scenario_path(name: str) -> Path:
    """A scenario's ``.cfg``: a name in ViZDoom's scenarios (``deathmatch``) or a path."""
    p = Path(name)
    if p.suffix == ".cfg" and p.is_file():
        return p
    vzd = _vizdoom()
    found = Path(vzd.scenarios_path) / f"{name}.cfg"
    if not found.is_file():
        names = sorted(q.stem for q in Path(vzd.scenarios_path).glob("*.cfg"))
        msg = f"doom scenario {name!r}: not a .cfg file nor one of {names}"
        raise ConfigError(msg)
    return found


def wad_path(name: str) -> Path:
    """The game's IWAD: ``freedoom1`` / ``freedoom2`` (shipped with ViZDoom) or a path."""
    p = Path(name)
    if p.suffix.lower() == ".wad" and p.is_file():
        return p
    found = Path(_vizdoom().__file__).parent / f"{name}.wad"
    if not found.is_file():
        msg = f"doom wad {name!r}: expected 'freedoom1', 'freedoom2' or a path to a .wad"
        raise ConfigError(msg)
    return found


@dataclass(frozen=True)
class DoomSettings:
    """How to run the game. ``mode``: ``spectator`` (real time, input from the X display:
    a person or the ``xtest`` executor plays), ``async_player`` (real time, input through
    the API) or ``player`` (synchronous: the game waits for each action)."""

    scenario: str = "deathmatch"
    wad: str = "freedoom2"
    resolution: str = "640x480"
    hud: str = "statusbar"
    window: bool = True
    mode: str = "spectator"
    seed: int | None = None
    skill: int | None = None
    episode_timeout: int | None = None
    """Tics per episode (the scenario's own by default; 0: none)."""
    extra_args: tuple[str, ...] = field(default_factory=tuple)

    def __post_init__(self) -> None:
        if self.hud not in HUD_MODES:
            msg = f"doom hud = {self.hud!r}: expected one of {sorted(HUD_MODES)}"
            raise ConfigError(msg)
        if self.mode not in ("spectator", "async_player", "player"):
            msg = f"doom mode = {self.mode!r}: expected 'spectator', 'async_player' or 'player'"
            raise ConfigError(msg)
        self.size()

    def size(self) -> tuple[int, int]:
        """``(width, height)`` of the resolution, checked against ViZDoom's modes."""
        try:
            w, h = (int(v) for v in self.resolution.lower().split("x"))
        except ValueError:
            msg = f"doom resolution = {self.resolution!r}: expected WIDTHxHEIGHT, e.g. '640x480'"
            raise ConfigError(msg) from None
        return w, h

    def make(self) -> Any:
        """A configured, not yet started ``vizdoom.DoomGame`` (call ``init()``)."""
        vzd = _vizdoom()
        w, h = self.size()
        res = getattr(vzd.ScreenResolution, f"RES_{w}X{h}", None)
        if res is None:
            have = sorted(r[4:].lower() for r in dir(vzd.ScreenResolution) if r.startswith("RES_"))
            msg = f"doom resolution = {self.resolution!r}: ViZDoom has {have}"
            raise ConfigError(msg)
        game = vzd.DoomGame()
        game.load_config(str(scenario_path(self.scenario)))
        # The engine's own settings file, and its folder of saves: not in the user's
        # working directory (a project checkout).
        here = Path(tempfile.gettempdir()) / f"framewax-vizdoom-{os.getuid()}"
        here.mkdir(parents=True, exist_ok=True)
        game.set_doom_config_path(str(here / "_vizdoom.ini"))
        game.set_doom_game_path(str(wad_path(self.wad)))
        game.set_screen_resolution(res)
        game.set_screen_format(vzd.ScreenFormat.RGB24)
        game.set_window_visible(self.window)
        game.set_mode(
            {
                "spectator": vzd.Mode.ASYNC_SPECTATOR,
                "async_player": vzd.Mode.ASYNC_PLAYER,
                "player": vzd.Mode.PLAYER,
            }[self.mode]
        )
        game.set_render_hud(self.hud != "none")
        game.set_render_minimal_hud(self.hud == "fullscreen")  # numbers over the picture
        game.set_render_crosshair(False)
        game.set_render_messages(False)
        if self.seed is not None:
            game.set_seed(int(self.seed))
        if self.skill is not None:
            game.set_doom_skill(int(self.skill))
        if self.episode_timeout is not None:
            game.set_episode_timeout(int(self.episode_timeout))
        have = {str(v).split(".")[-1] for v in game.get_available_game_variables()}
        for name in VARIABLES:
            if name not in have:
                game.add_available_game_variable(getattr(vzd.GameVariable, name))
        for arg in self.extra_args:
            game.add_game_args(arg)
        return game


def game_vars(game: Any) -> dict[str, float] | None:
    """The game's variables now, by name (``None`` between episodes)."""
    state = game.get_state()
    if state is None:
        return None
    names = [str(v).split(".")[-1] for v in game.get_available_game_variables()]
    return {n: float(v) for n, v in zip(names, state.game_variables, strict=False)}


def doom_truth(v: Mapping[str, Any]) -> GroundTruth:
    """What the status bar shows for game variables ``v``: health and armor (percent),
    the selected weapon's ammo (``None`` for slot 1, the fist and the chainsaw, which use
    none: the status bar leaves AMMO blank),
    the scene (death once the player is dead). Doom has no money and no reserve.

    >>> t = doom_truth({"HEALTH": 87.0, "ARMOR": 0.0, "SELECTED_WEAPON_AMMO": 46.0, "DEAD": 0.0})
    >>> (t.health, t.armor, t.ammo, t.money, t.scene.value)
    (87, 0, 46, None, 'gameplay')
    >>> doom_truth({"HEALTH": -12.0, "ARMOR": 5.0, "SELECTED_WEAPON_AMMO": 0.0, "DEAD": 1.0}).scene.value
    'death'
    >>> doom_truth({"HEALTH": 90.0, "ARMOR": 0.0, "SELECTED_WEAPON": 1.0, "SELECTED_WEAPON_AMMO": 0.0}).ammo
    """
    health = int(v.get("HEALTH", 0))
    dead = float(v.get("DEAD", 0)) > 0 or health <= 0
    ammo = v.get("SELECTED_WEAPON_AMMO")
    if int(v.get("SELECTED_WEAPON", 2)) <= 1:  # the fist or the chainsaw: AMMO is blank
        ammo = None
    return GroundTruth(
        health=max(health, 0),
        armor=max(int(v.get("ARMOR", 0)), 0),
        ammo=None if ammo is None or ammo < 0 else int(ammo),
        ammo_reserve=None,
        money=None,
        scene=Scene.DEATH if dead else Scene.GAMEPLAY,
        enemies=None,  # the game does not say where they are on the screen
    )


class GameVarsLog:
    """Follows a game-variables log (``python -m flows.doom --log``: one JSON object per
    tic, ``{"t": wall time, "tic": ..., "HEALTH": ..., ...}``) as it grows, and answers
    what the game said at a moment: the last tic logged at or before it.

    Reading never blocks: :meth:`at` reads the lines appended since the last call (a
    partial last line waits for its end). Keeps the last ``keep`` tics (35 a second).
    """

    def __init__(self, path: str | os.PathLike[str], keep: int = 4096) -> None:
        self.path = Path(path)
        self.entries: deque[dict[str, Any]] = deque(maxlen=keep)
        self._fh: Any = None
        self._partial = ""
        self.bad_lines = 0

    def _read(self) -> None:
        if self._fh is None:
            try:
                self._fh = self.path.open("r", encoding="utf-8")
            except OSError:
                return  # not there yet: the game is starting
        chunk = self._fh.read()
        if not chunk:
            return
        text = self._partial + chunk
        lines = text.split("\n")
        self._partial = lines.pop()  # "" after a complete line
        for line in lines:
            if not line.strip():
                continue
            try:
                entry = json.loads(line)
                float(entry["t"])
            except (ValueError, KeyError, TypeError):
                self.bad_lines += 1
                continue
            self.entries.append(entry)

    def at(self, t: float) -> dict[str, Any] | None:
        """The last entry logged at or before ``t`` (``None`` if none is)."""
        self._read()
        for entry in reversed(self.entries):
            if entry["t"] <= t:
                return entry
        return None

    def around(self, t: float, tics: int = 1) -> list[dict[str, Any]]:
        """The entry at ``t`` and up to ``tics`` either side of it, in tic order."""
        self._read()
        items = list(self.entries)
        idx = max((i for i, e in enumerate(items) if e["t"] <= t), default=None)
        if idx is None:
            return []
        return items[max(idx - tics, 0) : idx + tics + 1]

    def close(self) -> None:
        if self._fh is not None:
            self._fh.close()
            self._fh = None
