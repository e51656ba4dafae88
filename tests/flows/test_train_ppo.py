"""``python -m flows.train_ppo``: a short real run writes its record, curve and policy,
and the saved policy replays."""

import json

from flows import train_ppo


def test_a_short_run_records_its_evaluation_and_the_policy_replays(tmp_path, capsys):
    out, policies = tmp_path / "learning.json", tmp_path / "policies"
    args = ["--env", "doom-basic", "--steps", "256", "--seed-list", "4", "--envs", "2"]
    train_ppo.main([*args, "--eval-episodes", "3", "--out", str(out), "--policies", str(policies)])
    doc = json.loads(out.read_text())
    (run,) = doc["runs"]
    assert run["env"] == "doom-basic" and run["seed"] == 4 and run["steps"] >= 256
    for name in ("trained", "random", "scripted"):
        assert run["eval"][name]["episodes"] == 3
    assert run["ledger_balanced"] and run["out_of_order"] == 0
    assert set(run["targets"]) >= {"beats_random_3sd", "share_of_scripted"}
    assert out.with_suffix(".png").stat().st_size > 1000
    policy = policies / "doom-basic-seed4.pt"
    capsys.readouterr()
    train_ppo.main(
        ["--replay", str(policy), "--env", "doom-basic", "--eval-episodes", "2", "--envs", "1"]
    )
    replayed = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert replayed["episodes"] == 2
    # the same policy, deterministic, on the same first seeds: the same returns
    assert replayed["mean"] == sum(run["eval"]["trained"]["returns"][:2]) / 2


def test_the_committed_policies_replay_their_recorded_returns():
    """The saved policies see what they trained on: a change to what the pipeline makes
    of a frame (the encoder's resize was one: OpenCV's differs from torch's by a few
    levels) moves a policy's returns, and this replay catches it. Doom's seed 0 is the
    policy the change moved."""
    from pathlib import Path

    root = Path(__file__).resolve().parents[2]
    doc = json.loads((root / "benchmarks/results/learning.json").read_text())
    run = next(r for r in doc["runs"] if r["env"] == "doom-basic" and r["seed"] == 0)
    recorded = run["eval"]["trained"]
    n = 8
    played = train_ppo.replay(root / run["policy"], "doom-basic", n, 2)
    assert played["seeds"] == recorded["seeds"][:n]
    assert played["returns"] == recorded["returns"][:n]


def test_training_over_two_processes_records_a_balanced_run(tmp_path):
    """``--processes 2``: PPO trains on games spread over two worker processes (a dataflow
    each, Stable-Baselines3's same-step reset), the run is labelled so, both ledgers
    balanced and summed, and the policy is evaluated on one process as always."""
    out, policies = tmp_path / "learning.json", tmp_path / "policies"
    args = ["--env", "arena", "--steps", "256", "--seed-list", "0", "--envs", "2"]
    train_ppo.main(
        [*args, "--processes", "2", "--eval-episodes", "2", "--out", str(out),
         "--policies", str(policies)]
    )  # fmt: skip
    (run,) = json.loads(out.read_text())["runs"]
    assert run["env"] == "arena+processes2" and run["processes"] == 2
    assert run["steps"] >= 256 and run["ledger_balanced"] and run["out_of_order"] == 0
    assert run["ledger_after_training"]["captured"] >= 256
    assert run["eval"]["trained"]["episodes"] == 2
    assert (policies / "arena-processes2-seed0.pt").stat().st_size > 0
