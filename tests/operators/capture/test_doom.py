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
