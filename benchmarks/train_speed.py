"""Training throughput: env steps/s through the whole pipeline in lockstep, against the
bare game's own steps/s in the same run.

    python benchmarks/train_speed.py --out benchmarks/results/train_speed.json [--seconds 15] [--warm-up 30]

For the arena (its lockstep preset: 320×180) and Doom ``basic`` (ViZDoom in-process,
320×240 with the status bar), each with 1 and ``--envs`` games:

- **bare**: the game alone, as a training loop without framewax would drive it:
  the same settings and frame skip, random actions, the frame copied out (and, for
  Doom, its labels and variables read); N games stepped in turn and, in another run,
  at once on a thread each (as the pipeline's source steps them): the faster is the
  baseline;
- **pipeline**: ``VisionPipelineVecEnv`` in lockstep with the same random actions:
  every step's frame goes through dedup, the local model (OCR of the HUD, enemy
  detection), the torch encoder and ordering before ``step()`` returns it; measured
  after ``--warm-up`` seconds of play, as a training run spends its minutes (the
  local model reads each HUD number's picture once, then remembers it).

Reported per row: env steps/s, the ratio to the bare game (the issue's target is
≥ 0.5), CPU seconds per 1,000 steps (this process and its children: ViZDoom runs
each game in a process of its own) and peak RSS, the ledger (balanced: every frame
ended), observations out of order (a sub-env getting an older frame than it had)
and stale steps (an observation from before the action), and each dataflow step's own
Python time per frame. Rows alternate bare and pipeline, so both see the same machine.
"""

from __future__ import annotations

import argparse
import contextlib
import itertools
import json
import sys
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np
import psutil

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.header import run_header
from flows.config import load_config
from flows.rl.spaces import ACTION_NVEC
from flows.rl.vec_env import VisionPipelineVecEnv
from flows.train_ppo import ENVS, make_venv
from operators.capture.arena import Arena
from operators.capture.doom import DoomSettings, doom_buttons, monster_boxes

FRAME_SKIP = 4
RESULTS = Path(__file__).resolve().parent / "results"


class Usage:
    """CPU seconds and peak RSS of this process and its children (the games)."""

    def __init__(self) -> None:
        self.me = psutil.Process()
        self.t0 = self.cpu()
        self.peak = 0

    def cpu(self) -> float:
        total = sum(self.me.cpu_times()[:2])
        for child in self.me.children(recursive=True):
            with contextlib.suppress(psutil.Error):  # a game that just ended
                total += sum(child.cpu_times()[:2])
        return total

    def sample(self) -> None:
        rss = self.me.memory_info().rss
        for child in self.me.children(recursive=True):
            with contextlib.suppress(psutil.Error):
                rss += child.memory_info().rss
        self.peak = max(self.peak, rss)

    def since(self) -> float:
        return self.cpu() - self.t0


def random_actions(rng: np.random.Generator, n: int) -> list[tuple[int, ...]]:
    return [tuple(int(rng.integers(k)) for k in ACTION_NVEC) for _ in range(n)]


def _stepping(envs: int, at_once: bool) -> Callable[[Callable[[int], None]], None]:
    """Run ``step(i)`` for every game: in turn, or at once on a thread each (as the
    pipeline's source steps a vector env's games)."""
    pool = ThreadPoolExecutor(envs, thread_name_prefix="bare") if at_once and envs > 1 else None

    def each(step: Callable[[int], None]) -> None:
        if pool is None:
            for i in range(envs):
                step(i)
        else:
            list(pool.map(step, range(envs)))

    return each


def bare_arena(envs: int, seconds: float, seed: int, at_once: bool = False) -> dict[str, Any]:
    opts = load_config(ENVS["arena"].config).capture.options
    games = [Arena(width=opts["width"], height=opts["height"], seed=seed + i) for i in range(envs)]
    rng = np.random.default_rng(seed)
    each = _stepping(envs, at_once)
    actions: list[tuple[int, ...]] = []

    def step(i: int) -> None:
        game = games[i]
        for _ in range(FRAME_SKIP):
            game.step(actions[i])
        np.array(game.render(), copy=True)
        game.truth()

    usage, steps = Usage(), 0
    t0 = time.perf_counter()
    while time.perf_counter() - t0 < seconds:
        actions = random_actions(rng, envs)
        each(step)
        steps += envs
        if steps % 64 < envs:
            usage.sample()
    return _row(steps, time.perf_counter() - t0, usage)


def bare_doom(envs: int, seconds: float, seed: int, at_once: bool = False) -> dict[str, Any]:

    opts = load_config(ENVS["doom-basic"].config).capture.options
    settings = DoomSettings(
        scenario=opts["scenario"],
        resolution=opts["resolution"],
        hud=opts["hud"],
        window=False,
        mode="player",
    )
    w, h = settings.size()
    games = []
    for i in range(envs):
        game = settings.make()
        game.set_labels_buffer_enabled(True)
        game.set_seed(seed + i)
        game.init()
        game.new_episode()
        games.append(game)
    rng = np.random.default_rng(seed)
    each = _stepping(envs, at_once)
    actions: list[tuple[int, ...]] = []

    def step(i: int) -> None:
        game = games[i]
        if game.is_episode_finished():
            game.new_episode()
        game.make_action(doom_buttons(actions[i]), FRAME_SKIP)
        state = game.get_state()
        if state is not None:
            np.array(state.screen_buffer, copy=True)
            list(state.game_variables)
            monster_boxes(state, w, h)

    usage, steps = Usage(), 0
    try:
        t0 = time.perf_counter()
        while time.perf_counter() - t0 < seconds:
            actions = random_actions(rng, envs)
            each(step)
            steps += envs
            if steps % 64 < envs:
                usage.sample()
        return _row(steps, time.perf_counter() - t0, usage)
    finally:
        for game in games:
            game.close()


POLICIES = {
    "arena": RESULTS / "policies" / "arena-seed0.pt",
    "doom-basic": RESULTS / "policies" / "doom-basic-seed1.pt",
}
"""The committed PPO policy that picks the actions in the ``with_policy`` rows."""


class RandomActions:
    """Random actions, handed out as a policy's ``predict`` does (the rows without one)."""

    def __init__(self, seed: int) -> None:
        self.rng = np.random.default_rng(seed)

    def predict(self, obs: dict[str, np.ndarray], deterministic: bool = False) -> tuple[Any, None]:
        return np.array(random_actions(self.rng, len(next(iter(obs.values()))))), None


def _play(
    venv: Any,
    envs: int,
    seconds: float,
    seed: int,
    warm_up: float,
    policy: Any = None,
    double: bool = False,
) -> dict[str, Any]:
    """A vector env in lockstep: ``warm_up`` seconds (at least 20 steps) unmeasured, then
    ``seconds`` measured. The row (:func:`_row`) with the observations out of order (a
    sub-env getting an older frame than it had) and the stale ones.

    The actions are random, or a trained ``policy``'s (SB3's ``predict``, sampling), as a
    training run's rollouts pick them: ``step()`` for the whole vector (the games wait
    while the policy computes), or ``double`` buffered (``recv`` a batch, predict,
    ``send``: while the policy computes one batch's actions, the other batch's frames are
    in the pipeline); with a policy, ``policy_s_per_1k_steps`` is the time in ``predict``.
    The warm-up loads the models and fills the local model's memo of HUD crops as a
    training run's is after its first minute (each number's picture read once, then
    reused)."""
    chooser = policy if policy is not None else RandomActions(seed)
    last = [-1] * envs
    backwards = stale = steps = 0
    in_policy = 0.0

    def act(obs: dict[str, np.ndarray]) -> np.ndarray:
        nonlocal in_policy
        t = time.perf_counter()
        actions, _ = chooser.predict(obs, deterministic=False)
        in_policy += time.perf_counter() - t
        return np.asarray(actions)

    def noted(info: dict[str, Any], ids: list[int]) -> None:
        nonlocal backwards, stale
        for k, i in enumerate(ids):
            if info["_seq"][k]:  # not a sub-env's reset
                seq = int(info["seq"][k])
                backwards += seq < last[i]
                last[i] = max(last[i], seq)
                stale += bool(info["stale"][k])

    if double:
        venv.async_reset(seed=seed)

        def one() -> int:
            obs, _r, _te, _tr, info = venv.recv()
            ids = [int(i) for i in info["env_id"]]
            noted(info, ids)
            venv.send(act(obs), ids)
            return len(ids)
    else:
        state = {"obs": venv.reset(seed=seed)[0]}

        def one() -> int:
            obs, _r, _te, _tr, info = venv.step(act(state["obs"]))
            state["obs"] = obs
            noted(info, list(range(envs)))
            return envs

    t0 = time.perf_counter()
    for k in itertools.count():
        if k >= 20 and time.perf_counter() - t0 >= warm_up:
            break
        one()
    usage = Usage()
    in_policy = 0.0
    backwards = stale = 0
    t0 = time.perf_counter()
    while time.perf_counter() - t0 < seconds:
        steps += one()
        if steps % 64 < envs:
            usage.sample()
    wall = time.perf_counter() - t0
    if double:
        while venv._pending:  # the batches still in flight end as observations
            venv.recv()
    row = {**_row(steps, wall, usage), "out_of_order": backwards, "stale_steps": stale}
    if policy is not None:
        row["policy_s_per_1k_steps"] = round(in_policy / steps * 1000, 2)
    return row


def with_policy(
    name: str, envs: int, processes: int, seconds: float, seed: int, warm_up: float
) -> dict[str, Any]:
    """The committed policy in the loop, stepping ``envs`` games in ``step()`` and double
    buffered (two batches of ``envs / 2``), on one pipeline and (``processes`` > 1) over
    processes, one batch each."""
    import torch

    from flows.rl.process_vec_env import ProcessVecEnv, merge_tables
    from flows.rl.sb3 import load_policy

    torch.set_num_threads(1)  # a rollout's small batches: one thread, as the games need the rest
    policy = load_policy(POLICIES[name])
    spec = ENVS[name]
    out: dict[str, Any] = {"policy": POLICIES[name].name}
    for double in (False, True):
        venv: Any = make_venv(name, envs, seed, batch_size=envs // 2 if double else None)
        try:
            row = _play(venv, envs, seconds, seed, warm_up, policy, double)
        finally:
            venv.close()
        row["balanced"] = venv.pipeline.ledger.balanced()
        out["double_buffered" if double else "in_step"] = row
    if processes > 1:
        over = merge_tables(spec.overrides, {"capture": {"options": {"seed": seed}}})
        for double in (False, True):
            venv = ProcessVecEnv(
                envs,
                spec.config,
                overrides=over,
                processes=processes,
                max_episode_steps=spec.max_episode_steps,
            )
            try:
                row = _play(venv, envs, seconds, seed, warm_up, policy, double)
            finally:
                venv.close()
            row["balanced"] = all(r["balanced"] for r in venv.ledgers)
            out["processes_double_buffered" if double else "processes_in_step"] = row
    return out


def pipeline(name: str, envs: int, seconds: float, seed: int, warm_up: float) -> dict[str, Any]:
    venv: VisionPipelineVecEnv = make_venv(name, envs, seed)
    try:
        row = _play(venv, envs, seconds, seed, warm_up)
    finally:
        venv.close()
    ledger = venv.pipeline.ledger.counts()  # stopped: every frame has ended
    # Each step's own Python per frame (not the model's and encoder's pool threads).
    stages = {
        step: t["us_per_frame"]
        for step, t in venv.pipeline.runtime.times.summary(ledger["captured"]).items()
    }
    row.update(
        ledger=ledger,
        balanced=venv.pipeline.ledger.balanced() and ledger["in_flight"] == 0,
        step_us_per_frame=stages,
    )
    return row


def pipeline_processes(
    name: str, envs: int, processes: int, seconds: float, seed: int, warm_up: float
) -> dict[str, Any]:
    """:func:`pipeline` with the games spread over ``processes`` worker processes
    (:class:`~flows.rl.process_vec_env.ProcessVecEnv`), each with its own dataflow."""
    from flows.rl.process_vec_env import ProcessVecEnv, merge_tables

    spec = ENVS[name]
    venv = ProcessVecEnv(
        envs,
        spec.config,
        overrides=merge_tables(spec.overrides, {"capture": {"options": {"seed": seed}}}),
        processes=processes,
        max_episode_steps=spec.max_episode_steps,
    )
    try:
        row = _play(venv, envs, seconds, seed, warm_up)
    finally:
        venv.close()
    ledgers = venv.ledgers
    row.update(
        processes=len(ledgers),
        ledger=[r.get("ledger") for r in ledgers],
        balanced=all(r["balanced"] for r in ledgers),
        step_us_per_frame=[r.get("us_per_frame") for r in ledgers],
    )
    return row


def _row(steps: int, wall: float, usage: Usage) -> dict[str, Any]:
    usage.sample()
    return {
        "steps": steps,
        "wall_s": round(wall, 2),
        "steps_per_s": round(steps / wall, 1),
        "cpu_s_per_1k_steps": round(usage.since() / steps * 1000, 2),
        "peak_rss_mb": round(usage.peak / 2**20, 1),
    }


def main() -> None:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--seconds", type=float, default=15.0)
    ap.add_argument(
        "--warm-up",
        type=float,
        default=30.0,
        help="seconds each pipeline plays before it is measured (a training run's steady "
        "state: the OCR memo warm); 0: a cold start",
    )
    ap.add_argument("--envs", type=int, default=4)
    ap.add_argument("--games", nargs="*", default=["arena", "doom-basic"], choices=sorted(ENVS))
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument(
        "--processes",
        type=int,
        default=2,
        help="also run the --envs games spread over this many processes (1: skip)",
    )
    ap.add_argument(
        "--policy",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="also the committed policy in the loop, in step() and double buffered",
    )
    ap.add_argument("--out", type=Path, default=None)
    args = ap.parse_args()
    result: dict[str, Any] = {
        **run_header("train_speed"),
        "frame_skip": FRAME_SKIP,
        "warm_up_s": args.warm_up,
        "rows": [],
    }
    bare = {"arena": bare_arena, "doom-basic": bare_doom}
    for name in args.games:
        for envs in sorted({1, args.envs}):
            b = bare[name](envs, args.seconds, args.seed)
            both = {"in_turn": b}
            if envs > 1:  # the N games at once, as the pipeline steps them: the faster counts
                both["at_once"] = bare[name](envs, args.seconds, args.seed, at_once=True)
                b = max(both.values(), key=lambda r: r["steps_per_s"])
            p = pipeline(name, envs, args.seconds, args.seed, args.warm_up)
            ratio = p["steps_per_s"] / b["steps_per_s"]
            row = {
                "game": name,
                "envs": envs,
                "bare": b,
                "bare_ways": both,
                "pipeline": p,
                "ratio": round(ratio, 3),
            }
            if envs > 1 and args.processes > 1:
                pp = pipeline_processes(
                    name, envs, args.processes, args.seconds, args.seed, args.warm_up
                )
                row["pipeline_processes"] = pp
                row["ratio_processes"] = round(pp["steps_per_s"] / b["steps_per_s"], 3)
                print(
                    f"{name:10s} {envs} env(s) over {pp['processes']} processes: pipeline "
                    f"{pp['steps_per_s']:6.1f} ({row['ratio_processes']:.2f}x); CPU s/1k steps "
                    f"{pp['cpu_s_per_1k_steps']:.2f}; RSS {pp['peak_rss_mb']:.0f} MB; balanced "
                    f"{pp['balanced']}, out of order {pp['out_of_order']}, stale {pp['stale_steps']}",
                    flush=True,
                )
            if envs > 1 and args.policy:
                wp = with_policy(name, envs, args.processes, args.seconds, args.seed, args.warm_up)
                row["with_policy"] = wp
                for way in (
                    "in_step",
                    "double_buffered",
                    "processes_in_step",
                    "processes_double_buffered",
                ):
                    if way in wp:
                        r = wp[way]
                        print(
                            f"{name:10s} {envs} env(s) with the policy, {way}: "
                            f"{r['steps_per_s']:6.1f} steps/s "
                            f"({r['steps_per_s'] / b['steps_per_s']:.2f}x bare); policy "
                            f"{r['policy_s_per_1k_steps']:.2f} s/1k steps; balanced "
                            f"{r['balanced']}, out of order {r['out_of_order']}",
                            flush=True,
                        )
            result["rows"].append(row)
            ways = ", ".join(f"{k} {v['steps_per_s']:.0f}" for k, v in both.items())
            print(
                f"{name:10s} {envs} env(s): bare {b['steps_per_s']:7.1f} steps/s ({ways}), pipeline "
                f"{p['steps_per_s']:6.1f} ({ratio:.2f}x); CPU s/1k steps {b['cpu_s_per_1k_steps']:.2f} "
                f"vs {p['cpu_s_per_1k_steps']:.2f}; RSS {p['peak_rss_mb']:.0f} MB; balanced "
                f"{p['balanced']}, out of order {p['out_of_order']}, stale {p['stale_steps']}",
                flush=True,
            )
    if args.out is not None:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(result, indent=1) + "\n")


if __name__ == "__main__":
    main()
