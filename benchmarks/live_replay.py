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
import itertools
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
from flows.config import load_config
from flows.rl.env import VisionPipelineEnv
from flows.rl.sb3 import load_policy
from flows.train_ppo import ENVS, EVAL_SEED_BASE, evaluate, make_venv, model_act
from operators.capture.doom import BUTTONS, GameVarsLog, doom_buttons
from operators.testing.xvfb import start_xvfb

ROOT = Path(__file__).resolve().parents[1]
PERIOD_TICS = 4
TRAINING_SIZE = "320x240"
"""The window size and the tics an action that the Doom policies were trained with."""
TIC_S = 1.0 / 35.0


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


def live(
    policy: Any,
    episodes: int,
    timeout_s: float,
    seed: int,
    workdir: Path,
    timing: str = "free",
    control_hz: float = 35.0 / PERIOD_TICS,
    max_wait_ms: float = 0.0,
    resolution: str = "320x240",
) -> tuple[dict[str, Any], list[dict[str, Any]], Path]:
    """Play ``episodes`` live; the summary, every step's record (for the timeline) and
    the game's log."""
    display, xvfb = start_xvfb(640, 480)
    log = workdir / "doom-live.jsonl"
    env_vars = {**os.environ, "DISPLAY": display}
    game = subprocess.Popen(
        [sys.executable, "-m", "flows.doom", "--display", display, "--scenario", "basic",
         "--resolution", resolution, "--log", str(log), "--scenario-timeout", "--seed", str(seed)],
        cwd=ROOT, env=env_vars, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    env = None
    ledger: dict[str, int] = {}
    balanced = False
    records: list[dict[str, Any]] = []
    overruns = episode_starts = 0
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
                # the policy reads the HUD as it did in training: the training config's
                # regions (doom.toml's are fitted at 640-1024; at 320x240 Doom draws its
                # status bar unscaled, and they cut the digits' feet: health unread)
                "hud": {"regions": training_regions()},
                "actions": {"options": {"display": display}},
                "env": {"max_episode_steps": 10**9, "reward": "game", "timing": timing},
                "run": {"status_interval_s": 0, "summary": False},
            },
            control_hz=control_hz,
            max_wait_ms=max_wait_ms,
        )
        obs, _info = env.reset()
        vars_log = GameVarsLog(log)
        start = int(vars_log.at(time.time())["episode"])  # type: ignore[index]
        first, current, ended = start + 1, start, False
        t_end = time.monotonic() + timeout_s
        while time.monotonic() < t_end:
            if ended:
                # The game ended the episode (its log says so: the env terminated): as
                # lockstep's reset, let go of every key and start from a picture of the next
                # episode, not the last frames of this one or the black screen between.
                env.session.release()
                began = next_episode_start(vars_log, current, time.monotonic() + 5.0)
                if began is not None:
                    env.session.wait_captured(began + TIC_S, time.monotonic() + 2.0)
                obs, _info = env.reset()
                current = max((int(e["episode"]) for e in vars_log.entries), default=current)
                episode_starts += 1
            t_think = time.time()
            action, _ = policy.predict(obs, deterministic=True)
            t_call = time.time()
            obs, _r, terminated, truncated, info = env.step(action)
            ended = terminated or truncated
            t_back = time.time()
            seen = env.observation
            records.append({
                "think_ms": (t_call - t_think) * 1000.0,
                "called": t_call,
                "returned": t_back,
                "action": [int(a) for a in action],
                "action_at": info.get("action_at") if info.get("acted") else None,
                "captured_at": info["captured_at"],
                "emitted_at": seen.emitted_at if seen is not None else None,
                "seq": info["seq"],
                "age_ms": float(info["age_ms"]),
                "stale": bool(info["stale"]),
                "thinking_ms": info.get("thinking_ms"),
                "overrun": bool(info.get("overrun")),
                "numerical": [round(float(x), 3) for x in obs["numerical"]],
                "categorical": [int(x) for x in obs["categorical"]],
            })  # fmt: skip
            now = vars_log.at(time.time())
            if now is not None and int(now["episode"]) >= first + episodes:
                break
        overruns = env.overruns
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
    ages = [r["age_ms"] for r in records]
    summary = {
        "timing": timing,
        "control_hz": control_hz,
        "max_wait_ms": max_wait_ms,
        "resolution": resolution,
        "episodes": len(returns),
        "returns": returns,
        "mean": float(np.mean(returns)) if returns else None,
        "std": float(np.std(returns, ddof=1)) if len(returns) > 1 else None,
        "lost_to_timeout": sum(r <= TIMED_OUT for r in returns),
        "steps": len(records),
        "acted_share": sum(r["action_at"] is not None for r in records) / max(len(records), 1),
        "age_ms_p50": float(np.percentile(ages, 50)) if ages else None,
        "age_ms_p99": float(np.percentile(ages, 99)) if ages else None,
        "stale_share": sum(r["stale"] for r in records) / max(len(records), 1),
        "overruns": overruns,
        "episode_starts": episode_starts,
        "ledger": ledger,
        "balanced": balanced,
    }
    return summary, records, log


def next_episode_start(vars_log: GameVarsLog, after: int, deadline: float) -> float | None:
    """When the first tic of the episode after ``after`` was logged (waits, up to
    ``deadline`` on ``time.monotonic()``, for the game to start it)."""
    while time.monotonic() < deadline:
        vars_log.at(time.time())  # reads what the game logged since
        firsts = [float(e["t"]) for e in vars_log.entries if int(e["episode"]) > after]
        if firsts:
            return min(firsts)
        time.sleep(0.005)
    return None


def training_regions() -> Any:
    """The HUD regions the policies were trained with (``doom-basic.toml``'s)."""
    return load_config(ENVS["doom-basic"].config).hud.regions


TIMED_OUT = -250.0
"""A ``basic`` episode that scores this or less ran out of time: -1 a tic for 300 tics,
and no kill (+101) before it (a stuck policy)."""


def timeline(records: list[dict[str, Any]], log: Path) -> list[dict[str, Any]]:
    """Each step against the game's own tics: the tic the observation's frame shows (the
    last one logged before its capture), the tics the action's buttons went down and up
    (as the game took them), the observation's age and the model's share of it."""
    tics = []
    with log.open(encoding="utf-8") as fh:
        for line in fh:
            try:
                e = json.loads(line)
                tics.append(
                    (float(e["t"]), int(e["tic"]), int(e["episode"]), set(e.get("buttons", [])))
                )
            except (ValueError, KeyError, TypeError):
                continue
    times = np.array([t for t, *_ in tics])

    def at(t: float | None) -> int | None:  # index of the last tic logged at or before t
        if t is None or not len(times):
            return None
        i = int(np.searchsorted(times, t, side="right")) - 1
        return i if i >= 0 else None

    out = []
    for r in records:
        want = {b for b, v in zip(BUTTONS, doom_buttons(tuple(r["action"])), strict=True) if v}
        i_obs, i_call, i_back = at(r["captured_at"]), at(r["called"]), at(r["returned"])
        down = up = None
        if want and r["action_at"] is not None:
            j = (at(r["action_at"]) or 0) + 1
            while j < len(tics) and tics[j][0] <= r["action_at"] + 1.0:
                if want <= tics[j][3]:
                    down = j
                    break
                j += 1
            if down is not None:
                j = down + 1
                while j < len(tics) and want <= tics[j][3]:
                    j += 1
                up = j if j < len(tics) else None
        out.append({
            "episode": tics[i_call][2] if i_call is not None else None,
            "call_tic": tics[i_call][1] if i_call is not None else None,
            "obs_tic": tics[i_obs][1] if i_obs is not None else None,
            "return_tic": tics[i_back][1] if i_back is not None else None,
            "keys": sorted(want),
            "down_tic": tics[down][1] if down is not None else None,
            "up_tic": tics[up][1] if up is not None else None,
            "held_tics": (up - down) if down is not None and up is not None else None,
            # the same four as lines of the game's log: a clock across episodes (the plot's)
            "at": {"call": i_call, "obs": i_obs, "down": down, "up": up},
            "age_ms": round(r["age_ms"], 1),
            "model_ms": round((r["emitted_at"] - r["captured_at"]) * 1000.0, 1)
            if r["emitted_at"]
            else None,
            "step_ms": round((r["returned"] - r["called"]) * 1000.0, 1),
            "think_ms": round(r["think_ms"], 1),
            "stale": r["stale"],
            "numerical": r["numerical"],
            "categorical": r["categorical"],
        })  # fmt: skip
    return out


def timeline_stats(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """What the timeline says in numbers: how many tics the observation trails the step,
    how long keys were held, how often the same observation came back twice."""

    def pct(xs: list[float]) -> dict[str, float] | None:
        return (
            {q: float(np.percentile(xs, int(q[1:]))) for q in ("p1", "p50", "p99")} if xs else None
        )

    behind = [
        r["return_tic"] - r["obs_tic"]
        for r in rows
        if r["return_tic"] is not None and r["obs_tic"] is not None
    ]
    held = [r["held_tics"] for r in rows if r["held_tics"] is not None]
    repeated = sum(
        a["obs_tic"] is not None and a["obs_tic"] == b["obs_tic"]
        for a, b in itertools.pairwise(rows)
    )
    return {
        "obs_tics_behind_return": pct(behind),
        "held_tics": pct(held),
        "held_tics_histogram": {str(k): held.count(k) for k in sorted(set(held))},
        "model_ms": pct([r["model_ms"] for r in rows if r["model_ms"] is not None]),
        "step_ms": pct([r["step_ms"] for r in rows]),
        "same_frame_twice": repeated / max(len(rows) - 1, 1),
        "pressed_not_seen": sum(r["keys"] != [] and r["down_tic"] is None for r in rows),
    }  # fmt: skip


def plot_timeline(rows: list[dict[str, Any]], out: Path, steps: int = 48) -> None:
    """``steps`` steps from the tenth on, across episodes, on the game's own clock (its
    log's lines, a tic each): each action's keys as a bar over the tics the game held
    them, the tic its observation shows, the tic the step was called on."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    part = rows[10 : 10 + steps]
    fig, ax = plt.subplots(figsize=(12, 0.2 * len(part) + 1.6))
    for i, r in enumerate(part):
        at = r.get("at") or {}
        if at.get("down") is not None and at.get("up") is not None:
            ax.barh(i, at["up"] - at["down"], left=at["down"], height=0.6,
                    color="tab:blue", alpha=0.6)  # fmt: skip
        if at.get("obs") is not None:
            ax.plot(at["obs"] + 0.5, i, "k|", markersize=8)
        if at.get("call") is not None:
            ax.plot(at["call"] + 0.5, i, "r.", markersize=5)
        if i and r["episode"] != part[i - 1]["episode"]:
            ax.axhline(i - 0.5, color="grey", linewidth=0.6)
    ax.invert_yaxis()
    ax.set_xlabel("game tic (the log's lines, 35 a second; grey lines: a new episode)")
    ax.set_ylabel("step")
    ax.set_title(
        "keys held (blue), tic the observation shows (black), tic the step was called on (red)"
    )
    fig.tight_layout()
    fig.savefig(out, dpi=90)
    plt.close(fig)


def arena_live(
    policies: dict[str, Any], episodes: int, timing: str, control_hz: float, max_wait_ms: float
) -> dict[str, Any]:
    """The arena in its real-time mode (30 frames a second; it does not wait), through
    the same dataflow and env as in lockstep training: each of ``policies``
    (``act(observation) -> action``) plays ``episodes`` episodes on the evaluation
    seeds; returns per policy the returns, their mean, and the lags."""
    spec = ENVS["arena"]
    out: dict[str, Any] = {}
    for name, act in policies.items():
        env = VisionPipelineEnv(
            spec.config,
            overrides={
                **spec.overrides,
                "capture": {"options": {"lockstep": False, "fps": 30.0, "frame_skip": 1}},
                "env": {"timing": timing},
            },
            control_hz=control_hz,
            max_wait_ms=max_wait_ms,
            max_episode_steps=spec.max_episode_steps,
        )
        returns, ages, steps = [], [], 0
        try:
            for k in range(episodes):
                env.reset(seed=EVAL_SEED_BASE + k)
                total, done = 0.0, False
                while not done:
                    _obs, reward, terminated, truncated, info = env.step(act(env.observation))
                    total += float(reward)
                    ages.append(float(info["age_ms"]))
                    steps += 1
                    done = terminated or truncated
                returns.append(total)
        finally:
            env.close()
        out[name] = {
            "episodes": len(returns),
            "mean": float(np.mean(returns)),
            "std": float(np.std(returns, ddof=1)) if len(returns) > 1 else None,
            "returns": returns,
            "steps": steps,
            "age_ms_p50": float(np.percentile(ages, 50)),
            "age_ms_p99": float(np.percentile(ages, 99)),
            "overruns": env.overruns,
            "balanced": env.pipeline.ledger.balanced(),
        }
        print(f"arena live {name}: mean {out[name]['mean']:.2f} over {len(returns)} episodes, "
              f"age p50 {out[name]['age_ms_p50']:.0f} / p99 {out[name]['age_ms_p99']:.0f} ms", flush=True)  # fmt: skip
    return out


def arena_lockstep(policies: dict[str, Any], episodes: int) -> dict[str, Any]:
    """The same policies in lockstep (the arena waits), one game at a time per call."""
    venv = make_venv("arena", 2, 0)
    try:
        seeds = range(EVAL_SEED_BASE, EVAL_SEED_BASE + episodes)
        return {
            name: evaluate(venv, lambda _f, obs, a=act: [a(o) for o in obs], seeds)
            for name, act in policies.items()
        }
    finally:
        venv.close()


def lockstep(
    policy: Any, episodes: int, frame_skip: int = PERIOD_TICS, resolution: str = TRAINING_SIZE
) -> dict[str, Any]:
    """The policy in lockstep on the evaluation seeds, each action held ``frame_skip``
    tics (the training's 4, or a live control rate's period), the game drawn at
    ``resolution`` (the training's, or the live window's)."""
    venv = make_venv("doom-basic", 2, 0, frame_skip=frame_skip, resolution=resolution)
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
    ap.add_argument("--timing", choices=("free", "period"), default="free",
                    help="[env] timing of the live env (see flows.config.EnvConfig.timing)")  # fmt: skip
    ap.add_argument("--control-hz", type=float, default=35.0 / PERIOD_TICS)
    ap.add_argument("--max-wait-ms", type=float, default=None,
                    help="[env] max_wait_ms (default: 60 with period timing, 0 with free)")  # fmt: skip
    ap.add_argument("--resolution", default=TRAINING_SIZE)
    ap.add_argument("--timeline", type=Path, default=None,
                    help="write every step against the game's tics here (JSON) and a picture (.png)")  # fmt: skip
    ap.add_argument("--runs", type=int, default=1, help="live runs, each a fresh game")
    ap.add_argument("--out", type=Path, default=None)
    ap.add_argument("--game", choices=("doom-basic", "arena"), default="doom-basic")
    ap.add_argument(
        "--only",
        nargs="*",
        default=None,
        help="--game arena: play only these of trained, random, scripted",
    )
    args = ap.parse_args()
    policy = load_policy(args.policy)
    if args.game == "arena":
        main_arena(policy, args)
        return
    workdir = Path(os.environ.get("TMPDIR", "/tmp")) / f"framewax-live-{os.getpid()}"
    workdir.mkdir(parents=True, exist_ok=True)
    wait = (
        args.max_wait_ms
        if args.max_wait_ms is not None
        else (60.0 if args.timing == "period" else 0.0)
    )
    runs, rows = [], []
    for run in range(args.runs):
        summary, records, log = live(
            policy, args.episodes, args.timeout, args.seed + run, workdir,
            args.timing, args.control_hz, wait, args.resolution,
        )  # fmt: skip
        rows = timeline(records, log)
        summary["timeline"] = timeline_stats(rows)
        runs.append(summary)
        print(
            f"live run {run} ({args.timing}, {args.control_hz:.2f} Hz, screen path): "
            f"{summary['episodes']} episodes, mean return {summary['mean']}, "
            f"{summary['lost_to_timeout']} timed out, observation age p50 "
            f"{summary['age_ms_p50']:.0f} / p99 {summary['age_ms_p99']:.0f} ms, overruns "
            f"{summary['overruns']}; timeline {json.dumps(summary['timeline'])}",
            flush=True,
        )
    ls = lockstep(policy, args.lockstep_episodes) if args.lockstep_episodes else None
    # At another control rate or window size than the training's (4 tics an action,
    # 320x240), the baseline is the policy in lockstep under those conditions too: what
    # real time costs, apart from what acting less often or seeing another picture costs
    # (a policy trained on one size's pixels plays worse on another's, lockstep or not).
    tics = max(1, round(35.0 / args.control_hz))
    ls_training = None
    if ls is not None and (tics != PERIOD_TICS or args.resolution != TRAINING_SIZE):
        ls_training = ls
        ls = lockstep(policy, args.lockstep_episodes, tics, args.resolution)
    means = [r["mean"] for r in runs if r["mean"] is not None]
    result = {
        **run_header("live_replay"),
        "policy": str(args.policy),
        "live": runs[0] if len(runs) == 1 else None,
        "runs": runs,
        "lockstep": ls,
        "lockstep_conditions": {"tics_per_action": tics, "resolution": args.resolution},
        "lockstep_as_trained": ls_training,
        "targets": None
        if ls is None or not means
        else {
            "live_over_lockstep": [round(m / ls["mean"], 3) for m in means],
            "spread_over_lockstep": round((max(means) - min(means)) / abs(ls["mean"]), 3),
            "episodes_lost_to_a_stuck_policy": sum(r["lost_to_timeout"] for r in runs),
            "age_p99_over_period": round(
                max(r["age_ms_p99"] or 0.0 for r in runs) / (1000.0 / args.control_hz), 3
            ),
        },
    }
    if ls is not None:
        print(
            f"lockstep ({tics} tics an action, {args.resolution}): {ls['episodes']} episodes, mean "
            f"{ls['mean']:.1f} ± {ls['std']:.1f}",
            flush=True,
        )
    if ls_training is not None:
        print(
            f"lockstep as trained ({PERIOD_TICS} tics an action, {TRAINING_SIZE}): mean "
            f"{ls_training['mean']:.1f} ± {ls_training['std']:.1f}",
            flush=True,
        )
        print(f"targets: {json.dumps(result['targets'])}", flush=True)
    if args.timeline is not None:
        args.timeline.parent.mkdir(parents=True, exist_ok=True)
        args.timeline.write_text(json.dumps({"summary": summary, "steps": rows}, indent=0) + "\n")
        plot_timeline(rows, args.timeline.with_suffix(".png"))
    if args.out is not None:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(result, indent=1) + "\n")


def main_arena(policy: Any, args: argparse.Namespace) -> None:
    """``--game arena``: the trained policy, random and scripted play, live (``--runs``
    times) and in lockstep, on the same evaluation seeds."""
    from flows.rl.policies import RandomPolicy, ScriptedPolicy
    from flows.rl.spaces import features

    acts = {
        "trained": lambda o: policy.predict(features(o), deterministic=True)[0],
        "random": RandomPolicy(0).act,
        "scripted": ScriptedPolicy().act,
    }
    if args.only:
        acts = {k: v for k, v in acts.items() if k in args.only}
    hz = args.control_hz if args.control_hz != 35.0 / PERIOD_TICS else 30.0 / PERIOD_TICS
    wait = args.max_wait_ms if args.max_wait_ms is not None else 0.0
    runs = [arena_live(acts, args.episodes, args.timing, hz, wait) for _ in range(args.runs)]
    lock = arena_lockstep(acts, args.lockstep_episodes) if args.lockstep_episodes else None
    means = [r["trained"]["mean"] for r in runs]
    result = {
        **run_header("live_replay"),
        "game": "arena",
        "policy": str(args.policy),
        "timing": args.timing,
        "control_hz": hz,
        "runs": runs,
        "lockstep": None if lock is None else {
            k: {kk: v for kk, v in r.items() if kk != "lengths"} for k, r in lock.items()
        },
        "targets": None if lock is None else {
            "live_over_lockstep": [round(m / lock["trained"]["mean"], 3) for m in means],
            "spread_over_lockstep": round((max(means) - min(means)) / abs(lock["trained"]["mean"]), 3),
            "age_p99_over_period": round(max(r["trained"]["age_ms_p99"] for r in runs) * hz / 1000.0, 3),
        },
    }  # fmt: skip
    if lock is not None:
        print("lockstep: " + ", ".join(f"{k} {r['mean']:.2f}" for k, r in lock.items()), flush=True)
        print(f"targets: {json.dumps(result['targets'])}", flush=True)
    if args.out is not None:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(result, indent=1) + "\n")


if __name__ == "__main__":
    main()
