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

:class:`DoomSource` runs the game in-process instead, one game per stream, with
no window and no display: in ``lockstep`` (ViZDoom's synchronous ``PLAYER`` mode)
the game advances ``frame_skip`` tics per agent action and its ``screen_buffer``
is the frame, stamped with the game's variables, its score and where the
monsters are (the labels buffer). It is the source for training and evaluating
an agent; a person's game, or any game framewax cannot pause, goes through the
screen source.
"""

from __future__ import annotations

import json
import os
import tempfile
from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

from operators.capture.base import AgentControl, GameSource, GameStream
from operators.clock import SYSTEM_CLOCK, Clock
from operators.errors import ConfigError
from operators.frame import Frame
from operators.reading import Detection, Scene
from operators.truth import GroundTruth

__all__ = [
    "BUTTONS",
    "HUD_MODES",
    "MONSTERS",
    "VARIABLES",
    "DoomSettings",
    "DoomSource",
    "GameVarsLog",
    "RealtimeConditions",
    "doom_buttons",
    "doom_truth",
    "scenario_path",
    "vizdoom_module",
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


def vizdoom_module() -> Any:
    """The ``vizdoom`` module, or a ``ConfigError`` that says how to install it."""
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
    vzd = vizdoom_module()
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
    found = Path(vizdoom_module().__file__).parent / f"{name}.wad"
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
        """A configured, not yet started ``vizdoom.DoomGame`` (call ``init()``), taking
        :data:`BUTTONS` whatever its scenario lists."""
        vzd = vizdoom_module()
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
        # Every scenario takes the same keys (a scenario's own list would leave the others
        # dead: basic lists only strafing and fire), so one policy's actions mean the same
        # in every scenario, in-process and through the screen.
        game.set_available_buttons([getattr(vzd.Button, b) for b in BUTTONS])
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
    """The game's variables now, by name (``None`` between episodes). Read one by one,
    not from ``get_state()``, which copies the screen (1 ms a tic at 1920x1080: a
    logger that falls behind the game's 35 tics a second skips tics)."""
    if game.is_episode_finished():
        return None
    return {
        str(v).split(".")[-1]: float(game.get_game_variable(v))
        for v in game.get_available_game_variables()
    }


def doom_truth(v: Mapping[str, Any], hud: str | None = None) -> GroundTruth:
    """What the status bar shows for game variables ``v``: health and armor (percent),
    the selected weapon's ammo (``None`` for slot 1, the fist and the chainsaw, which use
    none: the status bar leaves AMMO blank; and armor ``None`` at 0 on the full-screen
    HUD, which draws it only when it is not zero), ``hud`` the HUD mode (default: the
    log line's ``hud``, which ``python -m flows.doom`` writes, else the status bar),
    the scene (death once the player is dead), and the episode's ``score`` where the
    log has it. Doom has no money and no reserve.

    >>> t = doom_truth({"HEALTH": 87.0, "ARMOR": 0.0, "SELECTED_WEAPON_AMMO": 46.0, "DEAD": 0.0})
    >>> (t.health, t.armor, t.ammo, t.money, t.scene.value)
    (87, 0, 46, None, 'gameplay')
    >>> doom_truth({"HEALTH": -12.0, "ARMOR": 5.0, "SELECTED_WEAPON_AMMO": 0.0, "DEAD": 1.0}).scene.value
    'death'
    >>> doom_truth({"HEALTH": 90.0, "ARMOR": 0.0, "SELECTED_WEAPON": 1.0, "SELECTED_WEAPON_AMMO": 0.0}).ammo
    >>> doom_truth({"HEALTH": 90.0, "ARMOR": 0.0, "hud": "fullscreen"}).armor
    >>> doom_truth({"HEALTH": 90.0, "ARMOR": 3.0}, hud="fullscreen").armor
    3
    """
    hud = hud or v.get("hud") or "statusbar"
    health = int(v.get("HEALTH", 0))
    dead = float(v.get("DEAD", 0)) > 0 or health <= 0
    ammo = v.get("SELECTED_WEAPON_AMMO")
    if int(v.get("SELECTED_WEAPON", 2)) <= 1:  # the fist or the chainsaw: AMMO is blank
        ammo = None
    score = v.get("score")
    armor = max(int(v.get("ARMOR", 0)), 0)
    return GroundTruth(
        health=max(health, 0),
        armor=None if hud == "fullscreen" and armor == 0 else armor,
        ammo=None if ammo is None or ammo < 0 else int(ammo),
        ammo_reserve=None,
        money=None,
        scene=Scene.DEATH if dead else Scene.GAMEPLAY,
        enemies=None,  # the game does not say where they are on the screen
        score=None if score is None else float(score),
        episode_end=v.get("episode_end"),  # the log's line for an episode's end says how
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


# -- the game in-process, as a capture source ------------------------------------

BUTTONS: tuple[str, ...] = (
    "MOVE_FORWARD",
    "MOVE_BACKWARD",
    "TURN_LEFT",
    "TURN_RIGHT",
    "MOVE_LEFT",
    "MOVE_RIGHT",
    "ATTACK",
    "USE",
    "SPEED",
    "SELECT_NEXT_WEAPON",
)
"""The buttons :class:`DoomSource` gives every scenario, whatever its ``.cfg`` lists, so
that one policy's actions mean the same in every scenario. They are Doom's keys (turning
at the keyboard's speed, not by a delta), so that a policy trained here plays the same
through the screen path, where the ``xtest`` executor presses those keys."""

MONSTERS: frozenset[str] = frozenset(
    {
        "Zombieman", "ShotgunGuy", "ChaingunGuy", "DoomImp", "Demon", "Spectre", "LostSoul",
        "Cacodemon", "HellKnight", "BaronOfHell", "Arachnotron", "PainElemental", "Revenant",
        "Fatso", "Archvile", "SpiderMastermind", "Cyberdemon", "WolfensteinSS", "MarineChainsawVzd",
        "ScriptedMarine",
    }
)  # fmt: skip
"""Labels (ViZDoom's ``object_name``) that are enemies in the ground truth. The agent's
own ``DoomPlayer`` label (its weapon sprite) is not one."""


def doom_buttons(action: tuple[int, ...] | None) -> list[float]:
    """framewax's ``MultiDiscrete([3, 5, 10, 8])`` action as values of :data:`BUTTONS`,
    the keys ``flows/configs/doom.toml`` gives the ``xtest`` executor for a live game.

    ``move`` 1/2 walks forward/back; ``turn`` 1/2 turns left/right as the arrow keys
    do, 3/4 the same with run held (twice as fast); ``pitch`` is ignored (Doom has no
    free look); ``command`` 1 fires, 2 uses (Doom has no reload), 3/4 strafe, 5
    switches weapon, 6 does nothing (no crouching in Doom), 7 runs (Doom's Shift).

    >>> doom_buttons((1, 3, 0, 1))
    [1.0, 0.0, 1.0, 0.0, 0.0, 0.0, 1.0, 0.0, 1.0, 0.0]
    >>> doom_buttons(None)
    [0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0]
    """
    move, turn, _pitch, cmd = (0, 0, 0, 0) if action is None else action[:4]
    return [
        float(move == 1),
        float(move == 2),
        float(turn in (1, 3)),
        float(turn in (2, 4)),
        float(cmd == 3),
        float(cmd == 4),
        float(cmd == 1),
        float(cmd == 2),
        float(cmd == 7 or turn in (3, 4)),
        float(cmd == 5),
    ]


def monster_boxes(state: Any, width: int, height: int) -> tuple[Detection, ...]:
    """The monsters the labels buffer shows, as relative boxes, left to right."""
    out = []
    for label in state.labels or ():
        if label.object_name not in MONSTERS:
            continue
        x0, y0 = label.x / width, label.y / height
        x1, y1 = (label.x + label.width) / width, (label.y + label.height) / height
        out.append(Detection(x0, y0, min(x1, 1.0), min(y1, 1.0)))
    return tuple(sorted(out, key=lambda d: (d.x0, d.y0)))


class _DoomStream(GameStream):
    src: DoomSource

    def __init__(self, stream_id: str, src: DoomSource, index: int) -> None:
        super().__init__(stream_id, src, index)
        self.game = src.settings.make()
        self.hud = src.settings.hud
        self.game.set_labels_buffer_enabled(src.labels)
        self.game.set_seed(self.seed)
        self.game.init()
        self.game.new_episode()
        self.width, self.height = src.settings.size()
        self.image = np.zeros((self.height, self.width, 3), np.uint8)
        self.vars: dict[str, float] = {}
        self.monsters: tuple[Detection, ...] | None = None
        self._var_names: list[str] | None = None
        self._seen = False  # the picture was taken already, mid-action (realtime)
        self.rng = np.random.default_rng(self.seed)
        self._read_state()

    def _new_episode(self, seed: int | None) -> None:
        if seed is not None:
            self.game.set_seed(int(seed))
        self.game.new_episode()

    def _act(self, action: tuple[int, ...] | None, tics: int) -> str | None:
        """One action held for ``tics``; how the episode ended, if it did. With the
        source's ``realtime`` conditions (lockstep only), the hold is drawn from them
        instead, and the picture is taken a drawn number of tics before the hold ends
        (as a live observation trails the game): those last tics play after it."""
        if self.game.is_episode_finished():
            self._new_episode(None)  # acting on after an episode's end starts the next
        buttons = doom_buttons(action)
        sim = self.src.realtime if self.lockstep else None
        if sim is None:
            self.game.make_action(buttons, tics)
            return self._ended()
        hold = sim.hold(self.rng)
        late = min(sim.delay(self.rng), hold - 1)
        self.game.make_action(buttons, hold - late)
        ended = self._ended()
        if ended:
            return ended
        self._read_state()  # what the agent sees: the game `late` tics before the hold ends
        self._seen = True
        if late:
            self.game.make_action(buttons, late)
        return self._ended()

    def _ended(self) -> str | None:
        if not self.game.is_episode_finished():
            return None
        return "truncated" if self.game.is_episode_timeout_reached() else "terminated"

    def _frame(self, ended: str | None) -> Frame:
        if not ended and not self._seen:
            self._read_state()
        self._seen = False
        # An episode's last frame is the picture before it ended (the game shows no
        # more), with the game's verdict and final score.
        truth = replace(
            doom_truth(self.vars, self.hud),
            enemies=self.monsters,
            score=float(self.game.get_total_reward()),
            episode_end=ended,
        )
        return Frame(self.stream_id, self.seq, self.clock.now(), self.image, truth)

    def _read_state(self) -> None:
        state = self.game.get_state()
        if state is None:  # between episodes: keep the last picture
            return
        self.image = np.array(state.screen_buffer, copy=True)  # RGB24: (H, W, 3)
        if self._var_names is None:  # fixed once the game is up; str() of each is slow
            self._var_names = [
                str(v).split(".")[-1] for v in self.game.get_available_game_variables()
            ]
        values = state.game_variables
        self.vars = dict(
            zip(self._var_names, [] if values is None else values.tolist(), strict=False)
        )
        self.monsters = monster_boxes(state, self.width, self.height) if self.src.labels else None

    def next_frames(self) -> list[Frame]:
        asked = self.asked()
        if asked is None:
            return []
        action, reset, seed, ticket = asked
        ended: str | None = None
        if reset:
            self._new_episode(seed)
        else:  # lockstep: frame_skip tics a request; real time: a tic a frame at fps
            ended = self._act(action, self.src.frame_skip if self.lockstep else 1)
        return self.made(self._frame(ended), ticket)

    def close(self) -> None:
        self.game.close()


@dataclass(frozen=True)
class RealtimeConditions:
    """A live game's timing, simulated in lockstep (``[capture.options] realtime``):
    each action is held for ``hold_tics`` and its picture taken ``delay_tics`` before the
    hold ends, each drawn per action from its weights (``{"tics": weight}``), as
    ``benchmarks/live_replay.py --timeline`` measured them live. A policy trained so
    has seen the observation trail the game and its keys held a tic more or less.

    >>> c = RealtimeConditions.from_options({"hold_tics": {"4": 3, "5": 1}, "delay_tics": {"0": 1}})
    >>> sorted({c.hold(np.random.default_rng(s)) for s in range(40)}), c.delay(np.random.default_rng(0))
    ([4, 5], 0)
    """

    hold_tics: tuple[tuple[int, float], ...]
    delay_tics: tuple[tuple[int, float], ...]

    @classmethod
    def from_options(cls, options: Mapping[str, Any]) -> RealtimeConditions:
        unknown = set(options) - {"hold_tics", "delay_tics"}
        if unknown:
            msg = f"capture.options.realtime: unknown keys {sorted(unknown)}; expected hold_tics, delay_tics"
            raise ConfigError(msg)

        def weights(key: str, least: int) -> tuple[tuple[int, float], ...]:
            given = options.get(key) or {str(least): 1.0}
            try:
                out = tuple(sorted((int(k), float(v)) for k, v in dict(given).items()))
            except (TypeError, ValueError) as ex:
                msg = f"capture.options.realtime.{key} = {given!r}: expected {{tics: weight}}"
                raise ConfigError(msg) from ex
            if any(t < least or w < 0 for t, w in out) or sum(w for _, w in out) <= 0:
                msg = f"capture.options.realtime.{key} = {given!r}: tics >= {least}, weights >= 0, some > 0"
                raise ConfigError(msg)
            return out

        return cls(weights("hold_tics", 1), weights("delay_tics", 0))

    @staticmethod
    def _draw(rng: np.random.Generator, table: tuple[tuple[int, float], ...]) -> int:
        tics = [t for t, _ in table]
        w = np.array([w for _, w in table])
        return int(tics[int(rng.choice(len(tics), p=w / w.sum()))])

    def hold(self, rng: np.random.Generator) -> int:
        return self._draw(rng, self.hold_tics)

    def delay(self, rng: np.random.Generator) -> int:
        return self._draw(rng, self.delay_tics)


class DoomSource(GameSource):
    """Freedoom through ViZDoom, in-process: one game per stream, no window, no display.

    ``lockstep`` (the default; for training and evaluation): the game waits for its
    agent and advances ``frame_skip`` tics per action. Otherwise it runs a tic a frame
    at ``fps`` (35: the game's own speed) with the agent's last action held (a stream
    with no agent plays no-ops). Actions map to :data:`BUTTONS` (:func:`doom_buttons`). Every frame's
    ground truth has the HUD numbers, the game's score (``env.reward = "game"`` pays
    it), the episode's end, and the monsters' boxes when ``labels`` is on.
    ``scenario``, ``wad``, ``resolution``, ``hud``, ``skill`` and ``episode_timeout``
    are :class:`DoomSettings`'.
    """

    def __init__(
        self,
        *,
        scenario: str = "basic",
        wad: str = "freedoom2",
        resolution: str = "320x240",
        hud: str = "statusbar",
        streams: int = 1,
        frames: int = 0,
        fps: float = 35.0,
        seed: int = 0,
        skill: int | None = None,
        episode_timeout: int | None = None,
        lockstep: bool = True,
        frame_skip: int = 4,
        labels: bool = True,
        realtime: Mapping[str, Any] | None = None,
        controls: dict[str, AgentControl] | None = None,
        clock: Clock = SYSTEM_CLOCK,
    ) -> None:
        self.realtime = RealtimeConditions.from_options(realtime) if realtime else None
        super().__init__(
            "doom",
            streams=streams,
            frames=frames,
            fps=fps,
            seed=int(seed),
            lockstep=lockstep,
            frame_skip=frame_skip,
            controls=controls,
            clock=clock,
        )
        self.settings = DoomSettings(
            scenario=scenario,
            wad=wad,
            resolution=resolution,
            hud=hud,
            window=False,
            mode="player",
            seed=seed,
            skill=skill,
            episode_timeout=episode_timeout,
        )
        scenario_path(scenario)  # fail now, naming the scenario
        wad_path(wad)
        self.labels = bool(labels)

    def stream(self, stream_id: str, index: int) -> _DoomStream:
        return _DoomStream(stream_id, self, index)
