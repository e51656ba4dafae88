"""Freedoom recorded in-process (ViZDoom's synchronous mode, no window): frames with the
game's own variables as their truth, in the folder format ``flows.record`` writes.

Every frame's truth is exact (the screen buffer of the tic the variables belong to),
so the calibration and the local model can be scored on the real game's pixels at any
size and HUD mode, without a display. ``cheats`` gives armor, health and ammo now and
then (``give armor`` shows 200 %), so a recording holds the widest values a field can
show, which a minute of ordinary play seldom does.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from operators.capture.doom import DoomSettings, doom_truth, game_vars
from operators.frame import Frame
from sinks.recorder import RecordingWriter

__all__ = ["record_doom"]

_CHEATS = ("give armor", "give health", "give ammo", "give backpack", "take health 30")


def record_doom(
    out: Path,
    resolution: str = "800x600",
    hud: str = "statusbar",
    wad: str = "freedoom2",
    scenario: str = "deathmatch",
    frames: int = 200,
    seed: int = 0,
    cheats: bool = False,
    tics: int = 3,
) -> None:
    """``frames`` frames of random play, ``tics`` tics apart, with their truth, to ``out``."""
    settings = DoomSettings(
        scenario=scenario,
        wad=wad,
        resolution=resolution,
        hud=hud,
        window=False,
        mode="player",
        seed=seed,
        episode_timeout=0,
        extra_args=("+sv_cheats 1",),
    )
    game = settings.make()
    game.init()
    rng = np.random.default_rng(seed)
    seq = 0
    try:
        with RecordingWriter(out) as writer:
            while seq < frames:
                if game.is_episode_finished():
                    game.new_episode()
                if game.is_player_dead():
                    game.respawn_player()
                if cheats and rng.random() < 0.04:
                    game.send_game_command(str(rng.choice(_CHEATS)))
                odds = (0.5, 0.1, 0.3, 0.3, 0.2, 0.2, 0.4, 0.1, 0.0, 0.05)
                game.make_action([float(rng.random() < p) for p in odds], tics)
                state = game.get_state()
                variables = game_vars(game)
                if state is None or variables is None:
                    continue
                image = np.ascontiguousarray(state.screen_buffer)
                writer.write(Frame("doom", seq, float(seq), image, truth=doom_truth(variables)))
                seq += 1
    finally:
        game.close()
