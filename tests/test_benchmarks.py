"""The benchmarks report the capture side, not only the model side (no timing asserted)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys

import pytest

from tests.conftest import ROOT


def test_the_overhead_benchmark_reports_capture_rate_and_per_stage_cost(tmp_path):
    out = tmp_path / "overhead.json"
    subprocess.run(
        [
            sys.executable,
            "benchmarks/overhead.py",
            "--out",
            str(out),
            "--frames",
            "200",
            "--resolutions",
            "360p",
            "--streams",
            "1,2",
            "--distinct",
            "4",
        ],
        cwd=ROOT,
        check=True,
        timeout=300,
        capture_output=True,
    )
    result = json.loads(out.read_text())
    assert result["benchmark"] == "overhead" and result["machine"]["cpus"] >= 1
    assert [(r["resolution"], r["streams"]) for r in result["rows"]] == [("360p", 1), ("360p", 2)]
    for row in result["rows"]:
        fw, bare = row["framewax"], row["bytewax_identity"]
        assert fw["balanced"] and fw["frames"] == bare["frames"] == 200 * row["streams"]
        assert fw["capture_fps"] > 0 and fw["fps_per_core"] > 0 and bare["fps_per_core"] > 0
        assert set(fw["steps_us_per_frame"]) == {
            "capture",
            "dedup",
            "vision",
            "batch",
            "order",
            "sink",
        }
    assert result["checks"]["min_capture_fps"] > 0


def test_the_vision_benchmark_reports_the_capture_side_of_each_row():
    sys.path.insert(0, str(ROOT))
    from benchmarks.vision import run_framewax
    from operators.testing.ollama_server import spawn_server

    proc, host = spawn_server(["--latency-ms", "50", "--parallel", "8"])
    try:
        row = run_framewax(
            [{"url": f"http://{host}", "max_in_flight": 4}], 4, 30.0, 2.0, 0.05, 200.0
        )
    finally:
        proc.terminate()
        proc.wait(timeout=10)
    assert row["balanced"] and row["ledger"]["captured"] == 60
    assert row["captured_fps_achieved"] > 0
    assert row["capture_of_target"] == row["captured_fps_achieved"] / 30.0
    assert row["missed_ticks"] >= 0
    assert {"capture", "vision", "batch", "order", "sink"} <= set(row["dataflow_us_per_frame"])


def test_the_train_speed_benchmark_compares_the_pipeline_with_the_bare_game(tmp_path):
    out = tmp_path / "train_speed.json"
    subprocess.run(
        [
            sys.executable,
            "benchmarks/train_speed.py",
            "--seconds",
            "1",
            "--warm-up",
            "0",
            "--envs",
            "2",
            "--out",
            str(out),
        ],
        cwd=ROOT,
        check=True,
        timeout=300,
        capture_output=True,
    )
    result = json.loads(out.read_text())
    assert [(r["game"], r["envs"]) for r in result["rows"]] == [
        ("arena", 1),
        ("arena", 2),
        ("doom-basic", 1),
        ("doom-basic", 2),
    ]
    for row in result["rows"]:
        p, bare = row["pipeline"], row["bare"]
        assert p["balanced"] and p["out_of_order"] == 0 and p["stale_steps"] == 0
        assert p["steps"] > 0 and bare["steps"] > 0 and row["ratio"] > 0
        assert p["cpu_s_per_1k_steps"] > 0 and p["peak_rss_mb"] > 0
        if row["envs"] > 1:  # the committed policy in the loop, in step() and double buffered
            ways = row["with_policy"]
            for way in (
                "in_step",
                "double_buffered",
                "processes_in_step",
                "processes_double_buffered",
            ):
                r = ways[way]
                assert r["balanced"] and r["out_of_order"] == 0 and r["stale_steps"] == 0, way
                assert r["steps"] > 0 and r["policy_s_per_1k_steps"] > 0, way


def test_the_live_replay_plays_a_saved_policy_in_real_time_and_in_lockstep(tmp_path):
    """An untrained policy, saved as training saves one, played through the screen path on
    Xvfb (the game in real time, keys by XTest) at 5 Hz and in lockstep, at that rate
    and as trained; returns from the game."""
    import gymnasium as gym
    from stable_baselines3.common.policies import MultiInputActorCriticPolicy

    from flows.rl.sb3 import FramewaxExtractor
    from flows.rl.spaces import action_space, observation_space

    if shutil.which("Xvfb") is None:  # as the suite's other screen tests do
        if os.environ.get("FRAMEWAX_REQUIRE_XVFB"):
            pytest.fail("Xvfb is not installed (apt-get install xvfb); .ci/run installs it")
        pytest.skip("Xvfb is not installed (apt-get install xvfb)")
    obs_space = gym.spaces.Dict(
        {
            k: (gym.spaces.Box(0, 255, (3, 84, 84), "uint8") if k == "visual" else v)
            for k, v in observation_space().items()
        }
    )
    policy = MultiInputActorCriticPolicy(
        obs_space, action_space(), lambda _: 0.0, features_extractor_class=FramewaxExtractor
    )
    path = tmp_path / "policy.pt"
    policy.save(path)
    out = tmp_path / "live.json"
    subprocess.run(
        [sys.executable, "benchmarks/live_replay.py", "--policy", str(path), "--episodes", "1",
         "--lockstep-episodes", "2", "--timeout", "60", "--control-hz", "5", "--out", str(out)],
        cwd=ROOT, check=True, timeout=240, capture_output=True,
    )  # fmt: skip
    result = json.loads(out.read_text())
    live, lock = result["live"], result["lockstep"]
    assert live["episodes"] == 1 and live["steps"] > 0 and live["ledger"]["captured"] > 0
    assert live["balanced"] and live["ledger"]["in_flight"] == 0  # read after the stop
    assert -400 <= live["returns"][0] <= 120  # basic: -1 a tic for 300 tics at worst, +101 a kill
    assert lock["episodes"] == 2
    # at 5 Hz (7 tics an action) the baseline is lockstep at 7 tics too, beside the
    # policy as trained (4 tics)
    assert result["lockstep_conditions"] == {"tics_per_action": 7, "resolution": "320x240"}
    assert result["lockstep_as_trained"]["episodes"] == 2
