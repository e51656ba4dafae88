"""Train a small PPO agent on the arena through the framewax pipeline (Stable-Baselines3).

    pip install -e ".[rl]"
    python -m flows.train_ppo --steps 4000 --out benchmarks/results/ppo-arena.json

The agent sees what the pipeline makes of the screen (the 84×84 visual
observation, the HUD numbers the vision model read, the scene) at a fixed
control rate, and gets the default reward (kills, damage taken, death). The
output file holds every episode's return and length and every step's
observation age, for ``notebooks/training.ipynb``.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from typing import Any

import gymnasium as gym

import flows.rl  # noqa: F401  (registers the env)


def train(
    steps: int, control_hz: float, config: str | None, seed: int, episode_steps: int
) -> dict[str, Any]:
    from stable_baselines3 import PPO
    from stable_baselines3.common.callbacks import BaseCallback
    from stable_baselines3.common.monitor import Monitor

    ages: list[float] = []
    stale: list[bool] = []

    class Provenance(BaseCallback):
        def _on_step(self) -> bool:
            for info in self.locals.get("infos", []):
                ages.append(float(info["age_ms"]))
                stale.append(bool(info["stale"]))
            return True

    env = Monitor(
        gym.make(
            "framewax/VisionPipeline-v0",
            config=config,
            overrides={
                "batch": {"options": {"device": "cpu", "threads": 1}},
                "run": {"status_interval_s": 0},
            },
            control_hz=control_hz,
            max_episode_steps=episode_steps,
        )
    )
    t0 = time.time()
    try:
        model = PPO(
            "MultiInputPolicy",
            env,
            n_steps=256,
            batch_size=64,
            n_epochs=4,
            seed=seed,
            device="cpu",
            verbose=0,
        )
        model.learn(total_timesteps=steps, callback=Provenance())
        returns, lengths, times = (
            env.get_episode_rewards(),
            env.get_episode_lengths(),
            env.get_episode_times(),
        )
        pipeline = getattr(env.unwrapped, "pipeline", None)
        ledger = pipeline.ledger.counts() if pipeline is not None else {}
    finally:
        env.close()
    return {
        "steps": steps,
        "control_hz": control_hz,
        "seed": seed,
        "wall_s": time.time() - t0,
        "episodes": [
            {"return": float(r), "length": int(n), "t": float(t)}
            for r, n, t in zip(returns, lengths, times, strict=True)
        ],
        "age_ms": ages,
        "stale_share": sum(stale) / max(len(stale), 1),
        "ledger": ledger,
    }


def main() -> None:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--steps", type=int, default=4000)
    ap.add_argument("--control-hz", type=float, default=15.0)
    ap.add_argument("--episode-steps", type=int, default=200)
    ap.add_argument("--config", default=None)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", type=Path, default=Path("ppo-arena.json"))
    args = ap.parse_args()
    result = train(args.steps, args.control_hz, args.config, args.seed, args.episode_steps)
    result["command"] = "python -m flows.train_ppo " + " ".join(
        f"--{k.replace('_', '-')} {v}" for k, v in vars(args).items() if v is not None
    )
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result) + "\n")
    eps = result["episodes"]
    print(
        f"{len(eps)} episodes in {result['wall_s']:.0f} s; mean return first 5 "
        f"{sum(e['return'] for e in eps[:5]) / max(len(eps[:5]), 1):.2f}, last 5 "
        f"{sum(e['return'] for e in eps[-5:]) / max(len(eps[-5:]), 1):.2f}; stale {result['stale_share']:.1%}"
    )


if __name__ == "__main__":
    main()
