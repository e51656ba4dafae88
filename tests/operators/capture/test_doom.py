"""Doom's variables as ground truth, and the log a game writes them to (no game needed)."""

from __future__ import annotations

import json

import pytest

from operators.capture.doom import DoomSettings, GameVarsLog, doom_truth
from operators.errors import ConfigError
from operators.reading import Scene


def test_the_truth_is_what_the_status_bar_shows():
    alive = doom_truth(
        {"HEALTH": 87.0, "ARMOR": 25.0, "SELECTED_WEAPON": 2.0, "SELECTED_WEAPON_AMMO": 46.0}
    )
    assert alive.hud() == {
        "health": 87,
        "armor": 25,
        "ammo": 46,
        "ammo_reserve": None,  # Doom has none: not scored
        "money": None,
    }
    assert alive.scene is Scene.GAMEPLAY and alive.enemies is None
    fist = doom_truth(
        {"HEALTH": 50.0, "ARMOR": 0.0, "SELECTED_WEAPON": 1.0, "SELECTED_WEAPON_AMMO": 0.0}
    )
    assert fist.ammo is None  # the status bar leaves AMMO blank for the fist and chainsaw
    dead = doom_truth({"HEALTH": -20.0, "ARMOR": 0.0, "SELECTED_WEAPON_AMMO": 3.0, "DEAD": 1.0})
    assert (dead.health, dead.scene) == (0, Scene.DEATH)


def test_the_log_answers_with_the_last_tic_at_or_before_a_moment(tmp_path):
    path = tmp_path / "vars.jsonl"
    log = GameVarsLog(path)
    assert log.at(10.0) is None  # not written yet: the game is starting
    with path.open("w") as fh:
        for i in range(5):
            fh.write(json.dumps({"t": 1.0 + i, "tic": i, "HEALTH": 100.0 - i}) + "\n")
        fh.write('{"t": 6.0, "tic": 5, "HEA')  # a line still being written
        fh.flush()
        assert log.at(3.5)["tic"] == 2
        assert log.at(0.5) is None
        assert [e["tic"] for e in log.around(3.0, 1)] == [1, 2, 3]
        fh.write('LTH": 95.0}\nnot json\n')
    assert log.at(99.0)["tic"] == 5  # the partial line, completed
    assert log.bad_lines == 1
    log.close()


def test_bad_settings_are_refused_naming_the_key():
    with pytest.raises(ConfigError, match="doom hud = 'big'"):
        DoomSettings(hud="big")
    with pytest.raises(ConfigError, match="doom resolution = 'wide'"):
        DoomSettings(resolution="wide")
    with pytest.raises(ConfigError, match="doom mode = 'fast'"):
        DoomSettings(mode="fast")


def test_a_scenario_or_wad_that_is_not_there_is_named():
    pytest.importorskip("vizdoom")
    with pytest.raises(ConfigError, match="doom scenario 'nope'"):
        DoomSettings(scenario="nope").make()
    with pytest.raises(ConfigError, match="resolution = '641x480'"):
        DoomSettings(resolution="641x480").make()


# -- the game in-process (ViZDoom, no display) ------------------------------------------


def _doom_stream(**options):
    from operators.capture.base import AgentControl
    from operators.capture.doom import DoomSource

    controls: dict[str, AgentControl] = {}
    src = DoomSource(controls=controls, **options)
    return src.open("doom-0"), controls["doom-0"]


def test_buttons_mean_the_same_in_every_scenario():
    from operators.capture.doom import BUTTONS, doom_buttons

    pressed = dict(zip(BUTTONS, doom_buttons((2, 4, 7, 4)), strict=True))
    assert pressed["MOVE_BACKWARD"] == 1 and pressed["MOVE_RIGHT"] == 1
    assert pressed["TURN_RIGHT"] == 1 and pressed["SPEED"] == 1  # a hard turn runs
    assert pressed["ATTACK"] == 0 and pressed["TURN_LEFT"] == 0
    assert dict(zip(BUTTONS, doom_buttons((0, 0, 0, 7)), strict=True))["SPEED"] == 1  # run
    assert dict(zip(BUTTONS, doom_buttons((1, 1, 0, 0)), strict=True))["SPEED"] == 0  # walk


def test_the_buttons_are_the_keys_the_live_preset_presses():
    import tomllib
    from pathlib import Path

    import flows

    keys = tomllib.loads((Path(flows.__file__).parent / "configs" / "doom.toml").read_text())[
        "actions"
    ]["keys"]
    # the commands the lockstep game maps to a button have a key in the live game
    for command in (
        "forward",
        "back",
        "turn_left",
        "turn_right",
        "turn_fast",
        "fire",
        "strafe_left",
        "strafe_right",
        "walk",
    ):
        assert keys[command], command


def test_lockstep_doom_advances_only_when_asked_and_carries_the_games_score():
    stream, control = _doom_stream(scenario="basic", frame_skip=4, seed=11)
    try:
        assert stream.next_frames() == []  # the game waits for its agent
        control.reset(11)
        (first,) = stream.next_frames()
        assert first.image.shape == (240, 320, 3) and first.truth.score == 0.0
        assert first.truth.health == 100 and first.truth.ammo == 50
        assert first.truth.enemies and len(first.truth.enemies) == 1  # basic's one monster
        tic = stream.game.get_episode_time()
        control.act([0, 0, 0, 0])
        (second,) = stream.next_frames()
        assert stream.game.get_episode_time() == tic + 4
        assert second.truth.score == -4.0  # basic pays -1 a tic alive
        assert stream.next_frames() == []
        # Firing until the episode ends: its last frame says how, with the final score.
        end = None
        for _ in range(200):
            control.act([0, 0, 0, 1])
            (frame,) = stream.next_frames()
            if frame.truth.episode_end is not None:
                end = frame
                break
        assert end is not None and end.truth.episode_end in ("terminated", "truncated")
        assert end.truth.score == stream.game.get_total_reward()
        assert end.truth.ammo < 50
    finally:
        stream.close()


def test_the_same_seed_replays_the_same_episode():
    pictures = []
    for _ in range(2):
        stream, control = _doom_stream(scenario="basic", seed=3)
        try:
            control.reset(42)
            stream.next_frames()
            control.act([0, 1, 0, 3])
            pictures.append(stream.next_frames()[0])
        finally:
            stream.close()
    a, b = pictures
    assert a.truth.enemies == b.truth.enemies
    assert (a.image == b.image).all()


def test_a_doom_source_with_bad_options_fails_at_build_naming_them():
    from operators.capture.doom import DoomSource

    with pytest.raises(ConfigError, match="frame_skip"):
        DoomSource(frame_skip=0)
    with pytest.raises(ConfigError, match="no_such_scenario"):
        DoomSource(scenario="no_such_scenario")
