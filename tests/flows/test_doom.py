"""A real game, end to end: Freedoom through ViZDoom on a virtual display, read and played.

The game runs in its own process (``python -m flows.doom``, as a user starts it) and logs
its own variables every tic; framewax captures its window, reads the status bar with
the local model and sends the env's actions through XTEST. Everything is checked
against the game's log, which framewax only reads.
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

from flows.rl.env import VisionPipelineEnv
from flows.runner import Pipeline
from operators.x11 import keys_down
from tests.conftest import ROOT

PRESET = "flows/configs/doom.toml"


def _vars(log) -> list[dict]:
    return [json.loads(line) for line in log.read_text().splitlines() if line.strip()]


def _over(display: str, log, **capture) -> dict:
    return {
        "capture": {"options": {"display": display, "truth_log": str(log), **capture}},
        "actions": {"options": {"display": display}},
        "batch": {"options": {"device": "cpu"}},
        "run": {"status_interval_s": 0.0, "summary": False},
    }


def test_the_game_logs_its_variables_every_tic(doom):
    _display, log = doom
    time.sleep(0.5)
    rows = _vars(log)
    assert len(rows) > 10
    for key in ("t", "tic", "HEALTH", "ARMOR", "SELECTED_WEAPON_AMMO", "POSITION_X", "ANGLE"):
        assert key in rows[-1]
    ticks = [r["tic"] for r in rows]
    assert ticks == sorted(ticks)


def test_framewax_reads_the_status_bar_as_the_game_says_it(doom):
    display, log = doom
    over = _over(display, log, frames=30, fps=10.0)
    over["actions"] = {"executor": "none"}
    with Pipeline(PRESET, overrides=over) as p:
        summary = p.wait(timeout=120)
    assert summary["ledger"]["balanced"] and summary["ledger"]["captured"] == 30
    read = summary["hud_accuracy"]["read"]
    assert read["frames"] >= 1  # frames carried the game's truth and were read
    fields = read["fields"]
    assert fields["health"] >= 0.9 and fields["armor"] >= 0.9 and fields["ammo"] >= 0.9, fields
    assert fields["money"] is None and fields["ammo_reserve"] is None  # Doom has neither


def test_the_agents_actions_reach_the_game_and_no_key_stays_down(doom):
    display, log = doom
    env = VisionPipelineEnv(PRESET, overrides=_over(display, log))
    try:
        env.reset(seed=0)
        before = _vars(log)[-1]
        acted = []
        for action in [[1, 0, 0, 0]] * 12 + [[0, 1, 0, 0]] * 12 + [[0, 0, 0, 1], [0, 0, 0, 0]] * 8:
            acted.append(env.step(np.array(action))[4]["acted"])
            time.sleep(0.04)  # about a tic between inputs: the preset allows 35 a second
        time.sleep(0.3)
        after = _vars(log)[-1]
        summary = env.pipeline.runtime.reporter.summary()
    finally:
        env.close()
    assert sum(acted) >= 0.9 * len(acted)
    moved = abs(after["POSITION_X"] - before["POSITION_X"]) + abs(
        after["POSITION_Y"] - before["POSITION_Y"]
    )
    assert moved > 1.0, (before, after)
    assert after["ANGLE"] != before["ANGLE"]
    assert after["SELECTED_WEAPON_AMMO"] < before["SELECTED_WEAPON_AMMO"]  # it fired
    assert keys_down(display) == ([], 0)
    lag = summary["lag"]
    assert lag["observation_ms"]["n"] > 0
    assert lag["probes"] >= 1  # shots were probes; answered ones are in action_to_pixels


def test_a_signal_releases_the_keys_held_in_the_game(doom):
    display, log = doom
    script = (
        "import sys, time, numpy as np\n"
        "from flows.rl.env import VisionPipelineEnv\n"
        f"over = {_over(display, log)!r}\n"
        f"env = VisionPipelineEnv({PRESET!r}, overrides=over)\n"
        "env.reset(seed=0)\n"
        "env.step(np.array([1, 1, 0, 1]))\n"  # forward, turn and fire, held
        "print('held', flush=True)\n"
        "time.sleep(60)\n"
    )
    proc = subprocess.Popen(
        [sys.executable, "-c", script], cwd=ROOT, stdout=subprocess.PIPE, text=True
    )
    try:
        assert proc.stdout is not None and proc.stdout.readline().strip() == "held"
        down, _buttons = keys_down(display)
        assert down
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert keys_down(display) == ([], 0)


@pytest.mark.parametrize("key", ["forward", "fire"])
def test_the_preset_maps_dooms_keys(key):
    from flows.config import load_config

    keys = load_config(PRESET).actions.keys
    assert {"forward": "Up", "fire": "Control_L"}[key] == keys[key]
    assert keys["turn_left"] == "Left" and keys["buy"] == ""


def test_the_log_marks_each_episodes_end_and_a_frame_after_it_says_so(tmp_path):
    """``flows.doom --log`` writes an ``episode_end`` line when an episode ends: a frame
    captured between it and the next episode's first tic carries the end in its truth
    (the live env terminates there, as the lockstep one does)."""
    from flows.doom import run
    from operators.capture.doom import DoomSettings, GameVarsLog, doom_truth

    log = tmp_path / "vars.jsonl"
    settings = DoomSettings(
        scenario="basic", resolution="160x120", window=False, mode="player", episode_timeout=20
    )
    counts = run(settings, log, seconds=2.0, focus=False)
    lines = _vars(log)
    ends = [i for i, e in enumerate(lines) if "episode_end" in e]
    assert counts["episodes"] >= 2 and len(ends) >= 2
    for i in ends:
        end = lines[i]
        assert end["episode_end"] == "truncated"  # nobody shot: the time ran out
        assert end["episode"] == lines[i - 1]["episode"]  # the episode that ended
        assert end["score"] <= lines[i - 1]["score"]  # its final score
        if i + 1 < len(lines):
            assert lines[i + 1]["episode"] == end["episode"] + 1
    said = GameVarsLog(log).at(lines[ends[-1]]["t"] + 1e-6)  # it keeps the last 4096 lines
    assert doom_truth(said).episode_end == "truncated"
    assert doom_truth(lines[ends[-1] - 1]).episode_end is None
