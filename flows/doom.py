"""Run Freedoom on an X display for framewax to watch and play: ``python -m flows.doom``.

    python -m flows.doom --display :1 --log doom-vars.jsonl [--scenario deathmatch]
        [--resolution 640x480] [--hud statusbar|fullscreen|none] [--seconds 0]
        [--scenario-timeout]

Starts the game through ViZDoom in real time with its window on the display
(``spectator`` mode: it takes its input from the X display, as from a
person, so the env's ``xtest`` executor plays it), respawns the player after
a death and starts a new episode after the last, and writes the game's own
variables every tic to ``--log`` (one JSON object a line: ``t`` the wall time,
``tic``, ``episode``, ``score`` (the episode's reward so far, as the scenario pays
it), ``buttons`` (the game's buttons the player held on that tic), and ``HEALTH``, ``ARMOR``, ``SELECTED_WEAPON_AMMO``,
``POSITION_X/Y``, ``ANGLE``, ``KILLCOUNT``, ``DEAD``..., and ``hud``, the HUD mode the
numbers are drawn in; when an episode ends, one
more line with ``episode_end``, ``terminated`` or ``truncated``): the ground truth a
screen capture with ``[capture.options] truth_log`` is scored against. It
prints ``ready`` with the window's title when the first tic is logged, and
stops on SIGINT / SIGTERM or after ``--seconds``.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from operators.capture.doom import BUTTONS, HUD_MODES, DoomSettings, game_vars
from operators.errors import ConfigError
from operators.x11 import focus_window

WINDOW_TITLE = "VIZDOOM"
"""What ViZDoom's window title contains (``[capture.options] window`` in the preset)."""


def tic_entry(game: Any, episode: int, hud: str, held: bool = True) -> dict[str, Any]:
    """A log line's own fields for the game now: wall time, tic, episode, score, the HUD
    mode the numbers are drawn in, and (``held``) the buttons the player held on this
    tic, an agent's keys as the game took them (``benchmarks/live_replay.py
    --timeline``); the game's variables go with it."""
    buttons = game.get_last_action() if held else []
    return {
        "t": time.time(),
        "tic": None if game.is_episode_finished() else game.get_episode_time(),
        "episode": episode,
        "score": game.get_total_reward(),
        "buttons": [n for n, down in zip(BUTTONS, buttons, strict=False) if down],
        "hud": hud,
    }


def write(out: Any, line: dict[str, Any]) -> None:
    """One line of the log, flushed: a reader follows it as it grows."""
    out.write(json.dumps(line) + "\n")
    out.flush()


def run(
    settings: DoomSettings,
    log: Path | None,
    seconds: float = 0.0,
    stop: threading.Event | None = None,
    focus: bool = True,
    on_ready: Any = None,
) -> dict[str, Any]:
    """Play until ``stop`` is set or ``seconds`` pass; returns counts (tics, episodes,
    deaths). Respawns after a death, starts a new episode after the last."""
    stop = stop or threading.Event()
    game = settings.make()  # every scenario takes the same keys, as in lockstep
    game.init()
    out = log.open("w", encoding="utf-8") if log is not None else None
    tics = episodes = deaths = 0
    last: dict[str, Any] | None = None  # the last tic logged
    t_end = time.monotonic() + seconds if seconds > 0 else None
    ready = False
    try:
        while not stop.is_set() and (t_end is None or time.monotonic() < t_end):
            if game.is_episode_finished():
                if out is not None and last is not None:
                    # the episode's end, as lockstep reports it: frames from now until the
                    # next episode's first tic show it ended (the env terminates there)
                    end = "truncated" if game.is_episode_timeout_reached() else "terminated"
                    line = (
                        last
                        | tic_entry(game, episodes, settings.hud, held=False)
                        | {"episode_end": end}
                    )
                    line["tic"] = last["tic"]  # no tic was played: the last one, ended
                    if game.is_player_dead():  # the status bar shows 0 % from the fatal tic
                        line |= {"HEALTH": 0.0, "DEAD": 1.0}
                    write(out, line)
                    last = None
                game.new_episode()
                episodes += 1
                continue
            if game.is_player_dead():
                deaths += 1
                dead = game_vars(game)
                if out is not None and dead is not None:
                    # the death itself, as the status bar shows it (0 %) until the respawn:
                    # unlogged, a read of it was scored against the health before it
                    write(out, tic_entry(game, episodes, settings.hud, held=False) | dead)
                game.respawn_player()
                continue
            game.advance_action()
            v = game_vars(game)
            if v is None:
                continue
            tics += 1
            if out is not None:
                last = tic_entry(game, episodes, settings.hud) | v
                write(out, last)
            if not ready:
                ready = True
                if focus and settings.window:
                    focus_window(None, WINDOW_TITLE)
                if on_ready is not None:
                    on_ready()
    finally:
        if out is not None:
            out.close()
        game.close()
    return {"tics": tics, "episodes": episodes, "deaths": deaths}


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(
        prog="python -m flows.doom",
        description=__doc__.split("\n\n")[0],
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog=__doc__.split("\n\n", 1)[1],
    )
    ap.add_argument("--display", help="X display for the window (default $DISPLAY)")
    ap.add_argument("--log", type=Path, help="write the game's variables here, every tic")
    ap.add_argument("--scenario", default="deathmatch", help="a ViZDoom scenario or a .cfg")
    ap.add_argument("--wad", default="freedoom2", help="freedoom1, freedoom2 or a .wad path")
    ap.add_argument("--resolution", default="640x480")
    ap.add_argument("--hud", default="statusbar", choices=sorted(HUD_MODES))
    ap.add_argument("--seconds", type=float, default=0.0, help="stop after this long (0: never)")
    ap.add_argument("--seed", type=int)
    ap.add_argument("--skill", type=int)
    ap.add_argument("--no-focus", action="store_true", help="leave the keyboard focus alone")
    ap.add_argument(
        "--scenario-timeout",
        action="store_true",
        help="end episodes at the scenario's own time limit (default: none, play on)",
    )
    args = ap.parse_args(argv)
    if args.display:
        os.environ["DISPLAY"] = args.display
    if not os.environ.get("DISPLAY"):
        print("flows.doom: no display: pass --display or set DISPLAY", file=sys.stderr)
        return 2
    try:
        settings = DoomSettings(
            scenario=args.scenario,
            wad=args.wad,
            resolution=args.resolution,
            hud=args.hud,
            seed=args.seed,
            skill=args.skill,
            episode_timeout=None if args.scenario_timeout else 0,
        )
    except ConfigError as ex:
        print(f"flows.doom: {ex}", file=sys.stderr)
        return 2
    stop = threading.Event()

    def on_signal(signum: int, _frame: Any) -> None:
        stop.set()

    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, on_signal)

    def ready() -> None:
        w, h = settings.size()
        print(f"ready: window {WINDOW_TITLE!r} {w}x{h} on {os.environ['DISPLAY']}", flush=True)

    try:
        counts = run(settings, args.log, args.seconds, stop, not args.no_focus, ready)
    except ConfigError as ex:
        print(f"flows.doom: {ex}", file=sys.stderr)
        return 2
    print(f"flows.doom: {counts['tics']} tics, {counts['deaths']} deaths", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
