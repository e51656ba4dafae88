"""The Gymnasium env while the pipeline runs at 60 fps against a 300 ms model.

    python benchmarks/env.py --out benchmarks/results/env.json [--seconds 20]

The Ollama-protocol emulator (300 ms a call, enough slots) runs in its own
process; ``framewax/VisionPipeline-v0`` runs the arena at 60 fps through the
Ollama backend with 24 calls in flight. An agent steps as fast as it can with
random actions (non-blocking ``step()``), then at a fixed control rate of 30
Hz (``control_hz``), and as fast as it can with a small torch policy's
forward pass between steps (what a real agent does). Reported: steps/s, ``step()`` latency p50/p99 and the
distribution of observation age (``info["age_ms"]``) against the target
``model latency + 2 frame intervals``.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import flows.rl  # noqa: F401  (registers the env)
from benchmarks.header import run_header
from operators.testing.ollama_server import spawn_server


def pct(values: list[float], qs: tuple[int, ...] = (50, 90, 99)) -> dict[str, float]:
    return {f"p{q}": float(np.percentile(values, q)) for q in qs}


def policy_net() -> Any:
    """A small policy's forward pass (torch, CPU): what a real agent does between steps."""
    import torch

    net = torch.nn.Sequential(
        torch.nn.Linear(84 * 84 * 3 // 16, 256), torch.nn.ReLU(), torch.nn.Linear(256, 4)
    ).eval()

    def think(obs: dict[str, np.ndarray]) -> None:
        with torch.inference_mode():
            x = torch.from_numpy(
                obs["visual"][::4, ::1].reshape(1, -1)[:, : 84 * 84 * 3 // 16]
            ).float()
            net(x)

    return think


def measure(env: gym.Env, seconds: float, label: str, think: Any = None) -> dict[str, Any]:
    obs, _ = env.reset(seed=0)
    lat, ages, stale = [], [], 0
    t_end = time.perf_counter() + seconds
    steps = 0
    t0 = time.perf_counter()
    while time.perf_counter() < t_end:
        if think is not None:
            think(obs)
        action = env.action_space.sample()
        s = time.perf_counter()
        obs, _r, terminated, truncated, info = env.step(action)
        lat.append((time.perf_counter() - s) * 1000.0)
        ages.append(info["age_ms"])
        stale += bool(info["stale"])
        steps += 1
        if terminated or truncated:
            env.reset()
    dt = time.perf_counter() - t0
    row = {
        "mode": label,
        "steps": steps,
        "steps_per_s": steps / dt,
        "step_ms": pct(lat),
        "age_ms": pct(ages),
        "stale_share": stale / steps,
    }
    print(
        f"{label}: {row['steps_per_s']:.0f} steps/s, step() p50 {row['step_ms']['p50']:.3f} ms "
        f"p99 {row['step_ms']['p99']:.3f} ms; observation age p50 {row['age_ms']['p50']:.0f} ms "
        f"p99 {row['age_ms']['p99']:.0f} ms; stale {row['stale_share']:.1%}",
        flush=True,
    )
    return row


def main() -> None:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--seconds", type=float, default=20.0)
    ap.add_argument("--latency-ms", type=float, default=300.0)
    ap.add_argument("--fps", type=float, default=60.0)
    args = ap.parse_args()
    proc, host = spawn_server(["--latency-ms", str(args.latency_ms), "--parallel", "64"])
    rows = []
    try:
        overrides = {
            "capture": {"options": {"fps": args.fps, "width": 640, "height": 360}},
            "vision": {
                "backend": "ollama",
                "max_in_flight": 24,
                "staleness_ms": 500.0,
                "options": {"endpoints": [f"http://{host}"], "preload": False, "max_side": 640},
            },
            "batch": {"options": {"device": "cpu", "threads": 1}},
            "env": {"max_episode_steps": 10**9},
            "run": {"status_interval_s": 0.0},
        }
        env = gym.make("framewax/VisionPipeline-v0", overrides=overrides)
        try:
            rows.append(measure(env, args.seconds, "non-blocking, random actions"))
            rows.append(
                measure(env, args.seconds, "non-blocking, a small torch policy", think=policy_net())
            )
        finally:
            env.close()
        env = gym.make("framewax/VisionPipeline-v0", overrides=overrides, control_hz=30.0)
        try:
            rows.append(measure(env, args.seconds, "control_hz=30"))
        finally:
            env.close()
    finally:
        proc.terminate()
        proc.wait(timeout=10)
    target_age = args.latency_ms + 2 * 1000.0 / args.fps
    result = {
        **run_header("env"),
        "model_latency_ms": args.latency_ms,
        "capture_fps": args.fps,
        "rows": rows,
        "checks": {
            "step_p99_ms_non_blocking": rows[0]["step_ms"]["p99"],
            "step_p99_ms_with_policy": rows[1]["step_ms"]["p99"],
            "age_p50_ms": rows[0]["age_ms"]["p50"],
            "age_p50_target_ms": target_age,
        },
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result["checks"], indent=2))


if __name__ == "__main__":
    main()
