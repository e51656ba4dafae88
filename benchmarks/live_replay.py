"""A policy trained in lockstep, played in real time through the screen path.

    python benchmarks/live_replay.py --policy benchmarks/results/policies/doom-basic-seed0.pt \\
        --episodes 5 --out benchmarks/results/live_replay.json

Starts Xvfb and ``python -m flows.doom --scenario basic --resolution 320x240
--scenario-timeout`` on it (the game in real time, 35 tics a second, taking its
input from the X display), then drives it with the policy through the Doom preset
(``flows/configs/doom.toml``): the window grabbed with mss, the status bar read by
the local model, keys pressed with XTest, one action every 4 tics (8.75 Hz, the
lockstep frame skip) on the freshest observation. The game does not wait: what
the policy sees is tens of milliseconds old, and a key is held for a control
period whatever the game did meanwhile.

Each episode's return is the game's own (its log's ``score`` at the episode's last
tic); only episodes that started after the agent took over and ended before it
stopped count. Beside it: the same policy in lockstep on ``--episodes`` evaluation
seeds (``--lockstep-episodes``; the game waits; same config as training).
"""

from __future__ import annotations

import argparse
import json
import os
import select
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.header import run_header
from flows.rl.env import VisionPipelineEnv
from flows.rl.sb3 import load_policy
from flows.train_ppo import EVAL_SEED_BASE, evaluate, make_venv, model_act
from operators.capture.doom import GameVarsLog
from operators.testing.xvfb import start_xvfb

ROOT = Path(__file__).resolve().parents[1]
PERIOD_TICS = 4


def episode_returns(log: Path, first: int, last: int) -> list[float]:
    """The final score of each episode numbered ``first..last`` in a game log."""
    final: dict[int, float] = {}
    with log.open(encoding="utf-8") as fh:
        for line in fh:
            try:
                e = json.loads(line)
            except ValueError:
                continue
            final[int(e["episode"])] = float(e["score"])
    return [final[k] for k in range(first, last + 1) if k in final]


def live(policy: Any, episodes: int, timeout_s: float, seed: int, workdir: Path) -> dict[str, Any]:
    display, xvfb = start_xvfb(640, 480)
    log = workdir / "doom-live.jsonl"
    env_vars = {**os.environ, "DISPLAY": display}
    game = subprocess.Popen(
        [sys.executable, "-m", "flows.doom", "--display", display, "--scenario", "basic",
         "--resolution", "320x240", "--log", str(log), "--scenario-timeout", "--seed", str(seed)],
        cwd=ROOT, env=env_vars, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    env = None
    ledger: dict[str, int] = {}
    balanced = False
    try:
        assert game.stdout is not None
        started, _, _ = select.select([game.stdout], [], [], 60.0)  # never wait without a limit
        line = game.stdout.readline() if started else "(nothing within 60 s)"
        if not line.startswith("ready"):
            msg = f"the game did not start: {line!r} {game.stderr.read() if game.stderr else ''}"
            raise RuntimeError(msg)
        env = VisionPipelineEnv(
            str(ROOT / "flows" / "configs" / "doom.toml"),
            overrides={
                "capture": {"options": {"truth_log": str(log), "display": display}},
                "actions": {"options": {"display": display}},
                "env": {"max_episode_steps": 10**9, "reward": "game"},
                "run": {"status_interval_s": 0, "summary": False},
            },
            control_hz=35.0 / PERIOD_TICS,
        )
        obs, _info = env.reset()
        vars_log = GameVarsLog(log)
        start = int(vars_log.at(time.time())["episode"])  # type: ignore[index]
        first, steps, ages, acted = start + 1, 0, [], 0
        t_end = time.monotonic() + timeout_s
        while time.monotonic() < t_end:
            action, _ = policy.predict(obs, deterministic=True)
            obs, _r, _t, _tr, info = env.step(action)
            steps += 1
            ages.append(float(info["age_ms"]))
            acted += bool(info.get("acted"))
            now = vars_log.at(time.time())
            if now is not None and int(now["episode"]) >= first + episodes:
                break
    finally:
        if env is not None:
            env.close()
            ledger = env.session.ledger()  # after the stop: every frame has ended
            balanced = env.session.pipeline.ledger.balanced() and ledger["in_flight"] == 0
        game.terminate()
        try:
            game.wait(10)
        except subprocess.TimeoutExpired:
            game.kill()
        xvfb.terminate()
    returns = episode_returns(log, first, first + episodes - 1)
    return {
        "episodes": len(returns),
        "returns": returns,
        "mean": float(np.mean(returns)) if returns else None,
        "std": float(np.std(returns, ddof=1)) if len(returns) > 1 else None,
        "steps": steps,
        "acted_share": acted / max(steps, 1),
        "age_ms_p50": float(np.percentile(ages, 50)) if ages else None,
        "ledger": ledger,
        "balanced": balanced,
    }


def lockstep(policy: Any, episodes: int) -> dict[str, Any]:
    venv = make_venv("doom-basic", 2, 0)
    try:
        return evaluate(venv, model_act(policy), range(EVAL_SEED_BASE, EVAL_SEED_BASE + episodes))
    finally:
        venv.close()


def main() -> None:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--policy", type=Path, required=True)
    ap.add_argument("--episodes", type=int, default=5)
    ap.add_argument(
        "--timeout", type=float, default=300.0, help="stop the live run after this long"
    )
    ap.add_argument("--lockstep-episodes", type=int, default=20)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", type=Path, default=None)
    args = ap.parse_args()
    policy = load_policy(args.policy)
    workdir = Path(os.environ.get("TMPDIR", "/tmp")) / f"framewax-live-{os.getpid()}"
    workdir.mkdir(parents=True, exist_ok=True)
    result = {
        **run_header("live_replay"),
        "policy": str(args.policy),
        "live": live(policy, args.episodes, args.timeout, args.seed, workdir),
        "lockstep": lockstep(policy, args.lockstep_episodes),
    }
    lv, ls = result["live"], result["lockstep"]
    print(
        f"live (real time, screen path): {lv['episodes']} episodes, mean return "
        f"{lv['mean']}, returns {lv['returns']}, observation age p50 {lv['age_ms_p50']:.0f} ms; "
        f"lockstep: {ls['episodes']} episodes, mean {ls['mean']:.1f} ± {ls['std']:.1f}",
        flush=True,
    )
    if args.out is not None:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(result, indent=1) + "\n")


if __name__ == "__main__":
    main()
