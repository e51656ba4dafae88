"""Train PPO through the whole framewax pipeline, in lockstep, and prove it learned.

    pip install -e ".[rl]"
    python -m flows.train_ppo --env doom-basic --minutes 30 --seeds 3
    python -m flows.train_ppo --env arena --minutes 30 --seeds 3

The game waits for the agent (``lockstep``): every action is held for
``frame_skip`` tics, then the game's picture goes through dedup, the local
vision model, the encoder and ordering, and the agent gets what the pipeline
made of it (the 84×84 picture, the HUD numbers read from the screen, the scene).
Stable-Baselines3's PPO trains on ``--envs`` games at once (one dataflow, one
stream each) for ``--minutes`` of wall time per seed.

Each trained policy, a random policy and a scripted aimbot (it knows where the
enemies are; the learned policy does not) then play ``--eval-episodes``
episodes each on the same evaluation seeds, which no training episode used
(training draws seeds below :data:`EVAL_SEED_BASE`). The results (learning
curves, evaluation returns, the targets) go to ``--out``
(``benchmarks/results/learning.json``, merged with the runs already there), the
curves to a PNG beside it, and each policy to ``--policies/<env>-seed<N>.pt``
(:func:`flows.rl.sb3.load_policy`; replay it with ``--replay``).

    python -m flows.train_ppo --replay benchmarks/results/policies/doom-basic-seed0.pt \\
        --env doom-basic --eval-episodes 20
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import platform
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path
from typing import Any

import numpy as np

import flows.rl  # noqa: F401  (registers the env)
from flows.config import load_config
from flows.rl.env import TRAIN_SEEDS
from flows.rl.policies import RandomPolicy, ScriptedPolicy
from flows.rl.vec_env import VisionPipelineVecEnv
from operators.observation import Observation

__all__ = ["ENVS", "EnvSpec", "evaluate", "main", "train"]

CONFIGS = Path(__file__).resolve().parent / "configs"
EVAL_SEED_BASE = TRAIN_SEEDS
"""Evaluation episodes use seeds from here up; training episodes draw theirs below it."""


@dataclass(frozen=True)
class EnvSpec:
    """A training target: its config, how long its episodes are, its scripted baseline."""

    config: str | None
    overrides: dict[str, Any]
    max_episode_steps: int
    scripted: Callable[[], ScriptedPolicy]
    ppo: dict[str, Any] = field(default_factory=dict)


_QUIET = {"run": {"status_interval_s": 0, "summary": False}}

ENVS: dict[str, EnvSpec] = {
    "arena": EnvSpec(
        config=str(CONFIGS / "arena-lockstep.toml"),  # the default config, in lockstep
        overrides=dict(_QUIET),
        max_episode_steps=150,
        scripted=lambda: ScriptedPolicy(),
        # Six passes over each rollout at 3e-4. With 1e-3 and four passes, two seeds of
        # three settled on turning and firing blindly (return ~1) and never aimed; ten
        # passes at 3e-4 aimed on every seed, but spent half the time updating (87
        # steps/s) and reached 0.43-0.66 of the aimbot in 28 minutes; six passes ran
        # 120-128 steps/s and reached 2.3-2.5 times it.
        ppo={"learning_rate": 3e-4, "n_epochs": 6},
    ),
    "doom-basic": EnvSpec(
        config=str(CONFIGS / "doom-basic.toml"),
        overrides=dict(_QUIET),
        max_episode_steps=1000,  # the scenario ends its episodes (300 tics)
        scripted=lambda: ScriptedPolicy(strafe=True, fire_within=0.5, approach=0.0),
    ),
}

PPO_DEFAULTS: dict[str, Any] = {
    "n_steps": 128,
    "batch_size": 128,
    "n_epochs": 4,
    "learning_rate": 2.5e-4,
    "gamma": 0.99,
    "gae_lambda": 0.95,
    "clip_range": 0.2,
    "ent_coef": 0.01,
}


def make_venv(
    name: str,
    num_envs: int,
    seed: int,
    realtime: dict[str, Any] | None = None,
    batch_size: int | None = None,
    **capture: Any,
) -> VisionPipelineVecEnv:
    """``num_envs`` games of ``name`` on one pipeline, the first seeded ``seed``; with
    ``realtime`` (:func:`realtime_conditions`), a live game's timing simulated;
    ``batch_size``: double-buffered stepping's batches (:class:`~flows.rl.vec_env.SendRecv`);
    ``capture``: other ``[capture.options]`` (``frame_skip``, ``resolution``...)."""
    spec = ENVS[name]
    options: dict[str, Any] = {**capture, "seed": seed}
    if realtime:
        options["realtime"] = realtime
    cfg = load_config(load_config(spec.config, spec.overrides), {"capture": {"options": options}})
    return VisionPipelineVecEnv(
        num_envs, cfg, max_episode_steps=spec.max_episode_steps, batch_size=batch_size
    )


def realtime_conditions(timeline: Path, frame_skip: int = 4) -> dict[str, Any]:
    """The live timing a ``benchmarks/live_replay.py --timeline`` file measured, as
    ``[capture.options] realtime`` (:class:`~operators.capture.doom.RealtimeConditions`):
    ``hold_tics``, how many tics each action lasted (from the tic it reached the game to
    the tic the next one did, within an episode; the step's call where the game's log
    did not show the keys), and ``delay_tics``, how many of them came after the picture
    the next action was chosen on (the next action's tic less the observation's, less
    one: the tic it lands on is its own)."""
    rows = json.loads(timeline.read_text())["steps"]
    holds: dict[str, int] = {}
    delays: dict[str, int] = {}

    def landed(r: dict[str, Any]) -> int | None:
        return r.get("down_tic") if r.get("down_tic") is not None else r["call_tic"]

    for a, b in itertools.pairwise(rows):
        start, end = landed(a), landed(b)
        if a["episode"] != b["episode"] or None in (start, end, a["obs_tic"]):
            continue
        hold = end - start  # type: ignore[operator]
        if not 1 <= hold <= 2 * frame_skip:  # a reset or a stall between them, not a step
            continue
        delay = min(max(end - 1 - a["obs_tic"], 0), hold - 1)  # type: ignore[operator]
        holds[str(hold)] = holds.get(str(hold), 0) + 1
        delays[str(delay)] = delays.get(str(delay), 0) + 1
    if not holds:
        msg = f"{timeline}: no two steps of one episode in it to measure the timing by"
        raise ValueError(msg)
    return {"hold_tics": holds, "delay_tics": delays}


# -- evaluation -----------------------------------------------------------------------

Act = Callable[[list[dict[str, np.ndarray]], list[Observation]], list[np.ndarray]]


def evaluate(venv: VisionPipelineVecEnv, act: Act, seeds: Sequence[int]) -> dict[str, Any]:
    """Play one episode per seed on ``venv``'s sub-envs (as many at once as it has);
    ``act(features, observations)`` gives the actions of the sub-envs it is asked for.
    Returns every episode's return and length, and their mean and standard deviation."""
    queue = list(seeds)
    n = venv.num_envs
    feats: list[dict[str, np.ndarray] | None] = [None] * n
    ret = [0.0] * n
    steps = [0] * n
    episodes: list[dict[str, Any]] = []
    seed_of: list[int | None] = [None] * n
    for i in range(n):
        if queue:
            seed_of[i] = queue.pop(0)
            feats[i], _ = venv.reset_env(i, seed=seed_of[i])
    t0 = time.perf_counter()
    total_steps = 0
    while any(s is not None for s in seed_of):
        live = [i for i in range(n) if seed_of[i] is not None]
        actions = act(
            [feats[i] for i in live],  # type: ignore[misc]
            [venv.envs[i].observation for i in live],  # type: ignore[misc]
        )
        per_env: list[Any] = [None] * n
        for i, a in zip(live, actions, strict=True):
            per_env[i] = a
        results = venv.step_envs(per_env, skip=[seed_of[i] is None for i in range(n)])
        for i in live:
            result = results[i]
            assert result is not None
            feats[i], reward, terminated, truncated, _info = result
            ret[i] += float(reward)
            steps[i] += 1
            total_steps += 1
            if terminated or truncated:
                episodes.append({"seed": seed_of[i], "return": ret[i], "length": steps[i]})
                ret[i], steps[i] = 0.0, 0
                seed_of[i] = queue.pop(0) if queue else None
                if seed_of[i] is not None:
                    feats[i], _ = venv.reset_env(i, seed=seed_of[i])
    episodes.sort(key=lambda e: e["seed"])  # in seed order, however the sub-envs finished
    returns = np.array([e["return"] for e in episodes], dtype=np.float64)
    return {
        "episodes": len(episodes),
        "mean": float(returns.mean()),
        "std": float(returns.std(ddof=1)) if len(returns) > 1 else 0.0,
        "seeds": [int(e["seed"]) for e in episodes],
        "returns": [round(float(r), 3) for r in returns],
        "lengths": [int(e["length"]) for e in episodes],
        "steps_per_s": total_steps / max(time.perf_counter() - t0, 1e-9),
    }


def baseline_act(policy: RandomPolicy | ScriptedPolicy) -> Act:
    def act(
        _feats: list[dict[str, np.ndarray]], observations: list[Observation]
    ) -> list[np.ndarray]:
        return [policy.act(o) for o in observations]

    return act


def model_act(model: Any, deterministic: bool = True) -> Act:
    def act(feats: list[dict[str, np.ndarray]], _obs: list[Observation]) -> list[np.ndarray]:
        batch = {k: np.stack([f[k] for f in feats]) for k in feats[0]}
        actions, _ = model.predict(batch, deterministic=deterministic)
        return list(actions)

    return act


def targets(
    trained: dict[str, Any], random: dict[str, Any], scripted: dict[str, Any]
) -> dict[str, Any]:
    """The issue's targets, and the weaker test of the means they imply: the trained mean
    at least the random mean + 3 standard deviations of the random returns (``sd``), and
    + 3 standard errors of the random mean (``se``); at least 70 % of the scripted mean."""
    sd, n = random["std"], max(random["episodes"], 1)
    se = sd / np.sqrt(n)
    ratio = trained["mean"] / scripted["mean"] if scripted["mean"] > 0 else None
    return {
        "random_plus_3sd": random["mean"] + 3 * sd,
        "random_plus_3se": random["mean"] + 3 * se,
        "beats_random_3sd": bool(trained["mean"] >= random["mean"] + 3 * sd),
        "beats_random_3se": bool(trained["mean"] >= random["mean"] + 3 * se),
        "share_of_scripted": None if ratio is None else float(ratio),
        "at_least_70pct_scripted": bool(ratio is not None and ratio >= 0.7),
    }


def play_baselines(venv: VisionPipelineVecEnv, name: str, seeds: Sequence[int]) -> dict[str, Any]:
    """The random and the scripted policy on ``seeds``: they do not depend on a training
    seed, so every run of an env is compared with the same baseline episodes."""
    return {
        "random": evaluate(venv, baseline_act(RandomPolicy(0)), seeds),
        "scripted": evaluate(venv, baseline_act(ENVS[name].scripted()), seeds),
    }


def baselines_for(name: str, episodes: int, num_envs: int) -> dict[str, Any]:
    venv = make_venv(name, num_envs, 0)
    try:
        return play_baselines(venv, name, range(EVAL_SEED_BASE, EVAL_SEED_BASE + episodes))
    finally:
        venv.close()


# -- training ---------------------------------------------------------------------------


def train(
    name: str,
    seed: int,
    minutes: float,
    num_envs: int,
    max_steps: int | None,
    eval_episodes: int,
    policies: Path,
    baselines: dict[str, Any] | None = None,
    realtime: dict[str, Any] | None = None,
    processes: int = 1,
) -> dict[str, Any]:
    """Train one seed for ``minutes`` (or ``max_steps``), save it, evaluate it on the
    evaluation seeds beside the random and scripted policies (``baselines``, from
    :func:`baselines_for`; played here if not given); returns the run's record. With
    ``processes`` > 1 the training games are spread over that many worker processes
    (:class:`~flows.rl.process_vec_env.ProcessVecEnv`, a dataflow each); the evaluation
    runs on one, as always."""
    import torch
    from stable_baselines3 import PPO
    from stable_baselines3.common.callbacks import BaseCallback
    from stable_baselines3.common.vec_env import VecMonitor, VecNormalize

    from flows.rl.sb3 import FramewaxExtractor, SB3ProcessVecEnv, SB3VecEnv

    spec = ENVS[name]
    pvenv = None
    if processes > 1:
        from flows.rl.process_vec_env import ProcessVecEnv, merge_tables

        options: dict[str, Any] = {"seed": seed, **({"realtime": realtime} if realtime else {})}
        pvenv = ProcessVecEnv(
            num_envs,
            spec.config,
            overrides=merge_tables(spec.overrides, {"capture": {"options": options}}),
            processes=processes,
            max_episode_steps=spec.max_episode_steps,
        )
    venv = make_venv(name, num_envs, seed, realtime) if pvenv is None else None
    label = f"{name}+realtime" if realtime else name  # its own row of the results
    if pvenv is not None:
        label += f"+processes{processes}"
    curve: list[dict[str, float]] = []
    ages: list[float] = []
    last_seq: dict[int, int] = {}
    backwards = [0]  # observations older than one the same sub-env already had
    t0 = time.perf_counter()
    printed = [t0]
    budget_s = minutes * 60.0

    class Progress(BaseCallback):
        """The learning curve (every training episode's return, steps and wall time),
        the observations' ages, and the time budget."""

        def _on_step(self) -> bool:
            for i, info in enumerate(self.locals.get("infos", [])):
                ages.append(float(info.get("age_ms", 0.0)))
                if info.get("seq", 0) < last_seq.get(i, -1):
                    backwards[0] += 1
                last_seq[i] = max(last_seq.get(i, -1), int(info.get("seq", 0)))
                ep = info.get("episode")
                if ep is not None:
                    curve.append(
                        {
                            "steps": int(self.num_timesteps),
                            "wall_s": round(time.perf_counter() - t0, 2),
                            "return": float(ep["r"]),
                            "length": int(ep["l"]),
                        }
                    )
            now = time.perf_counter()
            if now - printed[0] >= 60.0:
                printed[0] = now
                recent = [c["return"] for c in curve[-20:]]
                print(
                    f"  {name} seed {seed}: {self.num_timesteps} steps in {now - t0:.0f} s, "
                    f"{len(curve)} episodes, mean return of the last 20 "
                    f"{np.mean(recent) if recent else float('nan'):.1f}",
                    flush=True,
                )
            over_time = now - t0 >= budget_s
            over_steps = max_steps is not None and self.num_timesteps >= max_steps
            return not (over_time or over_steps)

    sb3_env: Any = SB3VecEnv(venv) if pvenv is None else SB3ProcessVecEnv(pvenv)
    sb3_env.seed(seed)
    train_env = VecNormalize(VecMonitor(sb3_env), norm_obs=False, norm_reward=True)
    try:
        model = PPO(
            "MultiInputPolicy",
            train_env,
            seed=seed,
            device="cpu",
            verbose=0,
            policy_kwargs={"features_extractor_class": FramewaxExtractor},
            **{**PPO_DEFAULTS, **spec.ppo},
        )
        torch.set_num_threads(max(os.cpu_count() or 1, 1))  # the encoder had set 1
        model.learn(total_timesteps=10**9 if max_steps is None else max_steps, callback=Progress())
        train_s = time.perf_counter() - t0
        trained_steps = int(model.num_timesteps)
        policies.mkdir(parents=True, exist_ok=True)
        path = policies / f"{label.replace('+', '-')}-seed{seed}.pt"
        model.policy.save(path)  # the network alone (3 MB; with PPO's optimizer, 11)
        if pvenv is not None:  # its processes stopped, their ledgers read; one to evaluate
            train_env.close()
            ledger = _summed([r.get("ledger") or {} for r in pvenv.ledgers])
            balanced = all(r["balanced"] for r in pvenv.ledgers)
            venv = make_venv(name, num_envs, seed)
        else:
            ledger = venv.pipeline.ledger.counts()
            balanced = venv.pipeline.ledger.balanced() and ledger["in_flight"] == 0
        seeds = range(EVAL_SEED_BASE, EVAL_SEED_BASE + eval_episodes)
        evals = {
            "trained": evaluate(venv, model_act(model), seeds),
            **(baselines or play_baselines(venv, name, seeds)),
        }
    finally:
        train_env.close()
        if pvenv is not None and venv is not None:
            venv.close()
    return {
        "env": label,
        "realtime": realtime,
        "seed": seed,
        "minutes": minutes,
        "envs": num_envs,
        "train_s": round(train_s, 1),
        "steps": trained_steps,
        "steps_per_s": round(trained_steps / train_s, 1),
        "policy": str(path),
        "ppo": {**PPO_DEFAULTS, **spec.ppo},
        "curve": curve,
        "age_ms_p50": float(np.percentile(ages, 50)) if ages else None,
        "processes": processes,
        "ledger_after_training": ledger,
        "ledger_balanced": balanced,
        "out_of_order": backwards[0],
        "eval": evals,
        "targets": targets(evals["trained"], evals["random"], evals["scripted"]),
    }


def replay(path: Path, name: str, episodes: int, num_envs: int) -> dict[str, Any]:
    """A saved policy on the evaluation seeds."""
    from flows.rl.sb3 import load_policy

    model = load_policy(path)
    venv = make_venv(name, num_envs, 0)
    try:
        seeds = range(EVAL_SEED_BASE, EVAL_SEED_BASE + episodes)
        return evaluate(venv, model_act(model), seeds)
    finally:
        venv.close()


# -- the record -------------------------------------------------------------------------


def header() -> dict[str, Any]:
    def version(pkg: str) -> str | None:
        try:
            return metadata.version(pkg)
        except metadata.PackageNotFoundError:
            return None

    try:
        commit = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, timeout=10
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        commit = ""
    return {
        "command": "python -m flows.train_ppo " + " ".join(sys.argv[1:]),
        "cores": os.cpu_count(),
        "cpu": platform.processor() or platform.machine(),
        "python": platform.python_version(),
        "versions": {p: version(p) for p in ("bytewax", "torch", "stable-baselines3", "vizdoom")},
        "commit": commit or None,
        "date": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    }


def _summed(counts: list[dict[str, int]]) -> dict[str, int]:
    """Ledger counts added up over processes.

    >>> _summed([{"captured": 3, "failed": 0}, {"captured": 2, "failed": 1}])
    {'captured': 5, 'failed': 1}
    """
    out: dict[str, int] = {}
    for c in counts:
        for k, v in c.items():
            out[k] = out.get(k, 0) + int(v)
    return out


def merge(out: Path, runs: list[dict[str, Any]]) -> dict[str, Any]:
    """``out``'s runs with these added (a run of the same env and seed replaced)."""
    doc: dict[str, Any] = {"runs": []}
    if out.exists():
        doc = json.loads(out.read_text())
    keep = [
        r
        for r in doc.get("runs", [])
        if (r["env"], r["seed"]) not in {(n["env"], n["seed"]) for n in runs}
    ]
    doc["runs"] = sorted(keep + runs, key=lambda r: (r["env"], r["seed"]))
    doc.setdefault("headers", []).append(header())
    doc["summary"] = summarize(doc["runs"])
    return doc


def summarize(runs: list[dict[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for name in sorted({r["env"] for r in runs}):
        mine = [r for r in runs if r["env"] == name]
        out[name] = {
            "seeds": [r["seed"] for r in mine],
            "minutes": [r["minutes"] for r in mine],
            "steps": [r["steps"] for r in mine],
            "trained_mean": [round(r["eval"]["trained"]["mean"], 2) for r in mine],
            "random_mean": [round(r["eval"]["random"]["mean"], 2) for r in mine],
            "random_std": [round(r["eval"]["random"]["std"], 2) for r in mine],
            "scripted_mean": [round(r["eval"]["scripted"]["mean"], 2) for r in mine],
            "beats_random_3sd": [r["targets"]["beats_random_3sd"] for r in mine],
            "beats_random_3se": [r["targets"]["beats_random_3se"] for r in mine],
            "share_of_scripted": [
                None
                if r["targets"]["share_of_scripted"] is None
                else round(r["targets"]["share_of_scripted"], 3)
                for r in mine
            ],
        }
    return out


def plot(doc: dict[str, Any], png: Path) -> None:
    """One panel per env: each seed's training returns (a moving mean over 20 episodes)
    against environment steps, with the random and scripted policies' evaluation means."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = sorted({r["env"] for r in doc["runs"]})
    fig, axes = plt.subplots(1, len(names), figsize=(6 * len(names), 4), squeeze=False)
    for ax, name in zip(axes[0], names, strict=True):
        for r in (r for r in doc["runs"] if r["env"] == name):
            steps = np.array([c["steps"] for c in r["curve"]])
            rets = np.array([c["return"] for c in r["curve"]])
            if len(rets) == 0:
                continue
            k = min(20, len(rets))
            smooth = np.convolve(rets, np.ones(k) / k, mode="valid")
            (line,) = ax.plot(steps[k - 1 :], smooth, label=f"seed {r['seed']} (training)")
            ax.axhline(r["eval"]["trained"]["mean"], color=line.get_color(), ls=":", lw=1)
        runs = [r for r in doc["runs"] if r["env"] == name]
        ax.axhline(
            np.mean([r["eval"]["random"]["mean"] for r in runs]),
            color="grey",
            ls="--",
            label="random (eval)",
        )
        ax.axhline(
            np.mean([r["eval"]["scripted"]["mean"] for r in runs]),
            color="black",
            ls="--",
            label="scripted (eval)",
        )
        ax.set_title(f"{name}: PPO through the framewax pipeline (lockstep)")
        ax.set_xlabel("environment steps")
        ax.set_ylabel("episode return")
        ax.legend(fontsize=7)
    fig.tight_layout()
    png.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(png, dpi=100)
    plt.close(fig)


def main(argv: Sequence[str] | None = None) -> None:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--env", choices=sorted(ENVS), default="doom-basic")
    ap.add_argument("--minutes", type=float, default=30.0, help="training wall time per seed")
    ap.add_argument("--steps", type=int, default=None, help="stop a seed at this many env steps")
    ap.add_argument("--seeds", type=int, default=3, help="seeds 0..N-1 (or --seed-list)")
    ap.add_argument("--seed-list", type=int, nargs="*", default=None)
    ap.add_argument("--envs", type=int, default=4, help="games trained on at once")
    ap.add_argument(
        "--processes",
        type=int,
        default=1,
        help="spread the training games over this many processes, a dataflow each "
        "(ProcessVecEnv: more than one core for the pipeline); evaluation uses one",
    )
    ap.add_argument("--eval-episodes", type=int, default=100)
    ap.add_argument("--out", type=Path, default=Path("benchmarks/results/learning.json"))
    ap.add_argument("--policies", type=Path, default=Path("benchmarks/results/policies"))
    ap.add_argument("--replay", type=Path, default=None, help="evaluate a saved policy instead")
    ap.add_argument(
        "--realtime",
        type=Path,
        default=None,
        help="train with the live timing this `benchmarks/live_replay.py --timeline` file "
        "measured, simulated in lockstep (observation delayed, hold varied)",
    )
    args = ap.parse_args(argv)
    realtime = realtime_conditions(args.realtime) if args.realtime is not None else None
    if realtime is not None:
        print(f"simulated real-time conditions: {json.dumps(realtime)}", flush=True)
    if args.replay is not None:
        result = replay(args.replay, args.env, args.eval_episodes, args.envs)
        print(json.dumps({k: v for k, v in result.items() if k not in ("returns", "lengths")}))
        return
    seeds = args.seed_list if args.seed_list else list(range(args.seeds))
    baselines = baselines_for(args.env, args.eval_episodes, args.envs)
    print(
        f"{args.env} baselines over {args.eval_episodes} evaluation episodes: random "
        f"{baselines['random']['mean']:.2f} ± {baselines['random']['std']:.2f}, scripted "
        f"{baselines['scripted']['mean']:.2f} ± {baselines['scripted']['std']:.2f}",
        flush=True,
    )
    for seed in seeds:
        run = train(
            args.env,
            seed,
            args.minutes,
            args.envs,
            args.steps,
            args.eval_episodes,
            args.policies,
            baselines,
            realtime,
            args.processes,
        )
        doc = merge(args.out, [run])  # after each seed, so a stopped run keeps what it did
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(doc, indent=1) + "\n")
        plot(doc, args.out.with_suffix(".png"))
        ev, tg = run["eval"], run["targets"]
        print(
            f"{args.env} seed {seed}: {run['steps']} steps in {run['train_s']:.0f} s "
            f"({run['steps_per_s']:.0f}/s); eval over {ev['trained']['episodes']} episodes: trained "
            f"{ev['trained']['mean']:.1f}, random {ev['random']['mean']:.1f} ± {ev['random']['std']:.1f}, "
            f"scripted {ev['scripted']['mean']:.1f}; beats random+3sd {tg['beats_random_3sd']}, "
            f"+3se {tg['beats_random_3se']}, share of scripted {tg['share_of_scripted']}",
            flush=True,
        )


if __name__ == "__main__":
    main()
