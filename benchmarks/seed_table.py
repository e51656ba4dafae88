"""The design's performance table, reproduced: sequential vs thread pool vs framewax.

    python benchmarks/seed_table.py --out benchmarks/results/seed_table.json [--seconds 10]

One run, side by side, against the same emulated vision-language model
(``operators.testing.ollama_server`` in its own process, ``--latency-ms`` a call, enough
slots). Each design is a Gymnasium env with framewax's spaces, driven by the
same agent, each in its own subprocess (so CPU time and peak memory are its
own):

- **sequential**: ``step()`` renders the arena, calls the model, parses, returns
  (the design's capture → call → parse, one frame at a time);
- **thread_pool**: the design's ``ParallelProcessingManager`` (``--workers``
  threads fed by an unbounded queue while the arena is captured at ``--fps``);
  ``step()`` takes the next frame's result in order (``get_result``);
- **framewax**: ``framewax/VisionPipeline-v0`` with the Ollama backend, capture at
  ``--fps``, ``--workers`` calls in flight; ``step()`` returns the freshest
  observation without waiting.

For each: observations read per second, end-to-end latency (capture → the agent
holds the observation: its age when ``step()`` returns it), ``step()`` time, a
training iteration's time (Stable-Baselines3 PPO: ``--n-steps`` env steps and
one update), CPU use (cores, over the design's whole run), peak RSS, and GPU
utilisation where a GPU is present. Writes JSON to ``--out`` and a PNG next to
it (same name, ``.png``).
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import resource
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks.header import run_header  # noqa: E402

DESIGNS = ("sequential", "thread_pool", "framewax")
WIDTH, HEIGHT = 320, 180


def _vision_bench() -> Any:
    """benchmarks/vision.py: the design's request and its thread pool, shared, not copied."""
    spec = importlib.util.spec_from_file_location("bench_vision", ROOT / "benchmarks" / "vision.py")
    assert spec is not None and spec.loader is not None
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def pct(values: list[float], q: float) -> float | None:
    return float(np.percentile(values, q)) if values else None


# -- the designs as envs -------------------------------------------------------------


def _design_env(design: str, host: str, args: argparse.Namespace) -> Any:
    import cv2
    import gymnasium as gym

    from flows.rl.spaces import action_space, categorical, numerical, observation_space
    from operators.capture.arena import Arena
    from operators.reading import VisionResult

    if design == "framewax":
        import flows.rl  # noqa: F401  (registers the env)

        return gym.make(
            "framewax/VisionPipeline-v0",
            overrides={
                "capture": {
                    "options": {"fps": args.fps, "width": WIDTH, "height": HEIGHT, "seed": 0}
                },
                "dedup": {"enabled": False},  # every frame is a model call, as in the designs
                "vision": {
                    "backend": "ollama",
                    "max_in_flight": args.workers,
                    "options": {
                        "endpoints": [{"url": f"http://{host}"}],
                        "preload": False,
                        "max_side": WIDTH,
                    },
                },
                "batch": {"options": {"device": "auto", "threads": 1}},
                "run": {"status_interval_s": 0.0},
            },
            max_episode_steps=100_000,
        )
    bench = _vision_bench()
    url = f"http://{host}"

    def obs_of(image: np.ndarray, v: VisionResult) -> dict[str, np.ndarray]:
        visual = cv2.resize(image, (84, 84), interpolation=cv2.INTER_AREA)
        return {"visual": visual, "numerical": numerical(v), "categorical": categorical(v)}

    class SequentialEnv(gym.Env):  # type: ignore[type-arg]
        """capture -> call -> parse, one frame per step."""

        def __init__(self) -> None:
            import requests

            self.observation_space = observation_space()
            self.action_space = action_space()
            self.arena = Arena(width=WIDTH, height=HEIGHT, seed=0)
            self.session = requests.Session()
            self.ages: list[float] = []

        def _observe(self) -> dict[str, np.ndarray]:
            image = self.arena.render()
            captured = time.time()
            v = bench._call(self.session, url, image)
            self.ages.append((time.time() - captured) * 1000.0)
            return obs_of(image, v)

        def reset(self, *, seed: int | None = None, options: Any = None) -> Any:
            super().reset(seed=seed)
            self.arena.reset(seed)
            return self._observe(), {}

        def step(self, action: Any) -> Any:
            self.arena.step([int(a) for a in action])
            return self._observe(), 0.0, False, False, {}

    class ThreadPoolEnv(gym.Env):  # type: ignore[type-arg]
        """The design's thread pool: capture at fps into an unbounded queue; step() takes
        the next frame's result in frame order."""

        def __init__(self) -> None:
            import requests

            self.observation_space = observation_space()
            self.action_space = action_space()
            self.arena = Arena(width=WIDTH, height=HEIGHT, seed=0)
            self.lock = threading.Lock()
            local = threading.local()

            def process(image: np.ndarray) -> tuple[np.ndarray, Any]:
                if not hasattr(local, "session"):
                    local.session = requests.Session()
                return image, bench._call(local.session, url, image)

            self.mgr = bench.ParallelProcessingManager(process, args.workers)
            self.captured: dict[int, float] = {}
            self.next_id = 0
            self.want = 0
            self.action: list[int] | None = None
            self.running = True
            self.ages: list[float] = []
            self.thread = threading.Thread(target=self._capture, daemon=True)
            self.thread.start()

        def _capture(self) -> None:
            t0 = time.time()
            while self.running:
                time.sleep(max(0.0, t0 + self.next_id / args.fps - time.time()))
                with self.lock:
                    self.arena.step(self.action)
                    self.action = None
                    image = self.arena.render()
                self.captured[self.next_id] = time.time()
                self.mgr.submit(self.next_id, image)
                self.next_id += 1

        def _observe(self) -> dict[str, np.ndarray]:
            got = self.mgr.get_result(self.want, timeout=60.0)
            if got is None or isinstance(got, Exception):
                msg = f"frame {self.want}: {got!r}"
                raise RuntimeError(msg)
            self.ages.append((time.time() - self.captured[self.want]) * 1000.0)
            self.want += 1
            image, v = got
            return obs_of(image, v)

        def reset(self, *, seed: int | None = None, options: Any = None) -> Any:
            super().reset(seed=seed)
            return self._observe(), {}

        def step(self, action: Any) -> Any:
            with self.lock:
                self.action = [int(a) for a in action]
            return self._observe(), 0.0, False, False, {}

        def close(self) -> None:
            self.running = False
            self.thread.join(timeout=5)
            self.mgr.shutdown()

    return SequentialEnv() if design == "sequential" else ThreadPoolEnv()


class _GpuSampler:
    """GPU utilisation (%) sampled every 100 ms while a design runs, where one is present."""

    def __init__(self) -> None:
        self.samples: list[float] = []
        self.stop = threading.Event()
        self.thread: threading.Thread | None = None
        try:
            import torch

            self.ok = torch.cuda.is_available()
            if self.ok:
                torch.cuda.utilization()  # needs pynvml; raises without it
        except Exception:
            self.ok = False

    def __enter__(self) -> _GpuSampler:
        if self.ok:
            import torch

            def run() -> None:
                while not self.stop.wait(0.1):
                    self.samples.append(float(torch.cuda.utilization()))

            self.thread = threading.Thread(target=run, daemon=True)
            self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop.set()
        if self.thread is not None:
            self.thread.join()


def run_design(design: str, host: str, args: argparse.Namespace) -> dict[str, Any]:
    """One design, in this process: the agent loop, then PPO iterations."""
    import torch
    from stable_baselines3 import PPO

    torch.set_num_threads(1)
    wall0, cpu0 = time.time(), resource.getrusage(resource.RUSAGE_SELF)
    env = _design_env(design, host, args)
    rng = np.random.default_rng(0)
    with _GpuSampler() as gpu:
        try:
            # 1. an agent stepping as fast as the design lets it, random actions
            env.reset(seed=0)
            if design == "framewax":
                read0 = env.unwrapped.pipeline.ledger.counts()["processed"]
            else:
                read0 = len(env.unwrapped.ages)
            step_ms: list[float] = []
            ages: list[float] = []
            seqs: set[int] = set()
            t_end = time.perf_counter() + args.seconds
            while time.perf_counter() < t_end:
                action = rng.integers(0, env.action_space.nvec)
                t = time.perf_counter()
                _obs, _r, term, trunc, info = env.step(action)
                step_ms.append((time.perf_counter() - t) * 1000.0)
                if "age_ms" in info:
                    ages.append(info["age_ms"])
                    seqs.add(info["source_seq"])
                if term or trunc:
                    env.reset()
            if design != "framewax":
                ages = list(env.unwrapped.ages)[read0:]
                reads = len(ages)
            else:
                reads = env.unwrapped.pipeline.ledger.counts()["processed"] - read0
            loop_s = args.seconds
            # 2. training: PPO, n_steps env steps and one update per iteration
            model = PPO(
                "MultiInputPolicy",
                env,
                n_steps=args.n_steps,
                batch_size=args.n_steps,
                n_epochs=1,
                seed=0,
                device="cpu",
                verbose=0,
            )
            t = time.perf_counter()
            model.learn(total_timesteps=args.n_steps * args.iterations)
            iteration_s = (time.perf_counter() - t) / args.iterations
        finally:
            env.close()
    wall = time.time() - wall0
    cpu1 = resource.getrusage(resource.RUSAGE_SELF)
    cpu_s = (cpu1.ru_utime - cpu0.ru_utime) + (cpu1.ru_stime - cpu0.ru_stime)
    return {
        "design": design,
        "reads_per_s": reads / loop_s,
        "steps_per_s": len(step_ms) / loop_s,
        # steps that got an observation of a frame not seen before (the blocking designs wait
        # for one on every step; framewax hands over the freshest it has, new or not)
        "new_observation_share": (len(seqs) / len(step_ms)) if seqs else 1.0,
        "latency_ms": {"p50": pct(ages, 50), "p99": pct(ages, 99)},
        "step_ms": {"p50": pct(step_ms, 50), "p99": pct(step_ms, 99)},
        "train_iteration_s": iteration_s,
        "cpu_cores": cpu_s / wall,
        "peak_rss_mib": cpu1.ru_maxrss / 1024.0,
        "gpu_util_pct": float(np.mean(gpu.samples)) if gpu.samples else None,
        "wall_s": wall,
    }


# -- the table -----------------------------------------------------------------------


def plot(rows: list[dict[str, Any]], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")  # a script writing a file, not a notebook
    import matplotlib.pyplot as plt

    names = [r["design"] for r in rows]
    panels = [
        ("model reads / s", [r["reads_per_s"] for r in rows], False),
        ("latency p50 (ms), capture → agent", [r["latency_ms"]["p50"] for r in rows], True),
        ("step() p50 (ms)", [r["step_ms"]["p50"] for r in rows], True),
        ("PPO iteration (s)", [r["train_iteration_s"] for r in rows], True),
        ("CPU (cores)", [r["cpu_cores"] for r in rows], False),
        ("peak RSS (MiB)", [r["peak_rss_mib"] for r in rows], False),
    ]
    fig, axes = plt.subplots(1, len(panels), figsize=(3.2 * len(panels), 3.2))
    for ax, (title, values, log) in zip(axes, panels, strict=True):
        bars = ax.bar(names, [v or 0 for v in values], color=["#999", "#c77", "#48c"])
        ax.set_title(title, fontsize=9)
        ax.tick_params(axis="x", labelrotation=30, labelsize=8)
        if log:
            ax.set_yscale("log")
        for b, v in zip(bars, values, strict=True):
            if v is not None:
                ax.annotate(
                    f"{v:.3g}",
                    (b.get_x() + b.get_width() / 2, b.get_height()),
                    ha="center",
                    va="bottom",
                    fontsize=7,
                )
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", type=Path, default=ROOT / "benchmarks/results/seed_table.json")
    ap.add_argument("--seconds", type=float, default=10.0, help="agent loop per design")
    ap.add_argument("--latency-ms", type=float, default=300.0)
    ap.add_argument("--fps", type=float, default=60.0, help="capture rate (pool, framewax)")
    ap.add_argument("--workers", type=int, default=4, help="calls in flight (pool, framewax)")
    ap.add_argument("--n-steps", type=int, default=32, help="env steps per PPO iteration")
    ap.add_argument("--iterations", type=int, default=2)
    ap.add_argument("--designs", nargs="+", default=list(DESIGNS))
    ap.add_argument("--one", choices=DESIGNS, help=argparse.SUPPRESS)  # a subprocess's design
    ap.add_argument("--host", help=argparse.SUPPRESS)
    args = ap.parse_args()

    if args.one:  # in a subprocess: run one design, print its row as JSON
        print(json.dumps(run_design(args.one, args.host, args)), flush=True)
        return

    from operators.testing.ollama_server import spawn_server

    server, host = spawn_server(["--latency-ms", str(args.latency_ms), "--parallel", "64"])
    rows: list[dict[str, Any]] = []
    try:
        for design in args.designs:
            cmd = [sys.executable, __file__, "--one", design, "--host", host]
            for k in ("seconds", "latency_ms", "fps", "workers", "n_steps", "iterations"):
                cmd += [f"--{k.replace('_', '-')}", str(getattr(args, k))]
            done = subprocess.run(cmd, capture_output=True, text=True, timeout=900, cwd=ROOT)
            if done.returncode != 0:
                msg = f"{design} failed:\n{done.stderr[-3000:]}"
                raise RuntimeError(msg)
            row = json.loads(done.stdout.strip().splitlines()[-1])
            rows.append(row)
            print(_line(row), flush=True)
    finally:
        server.terminate()
        server.wait(timeout=10)
    seq = next((r for r in rows if r["design"] == "sequential"), None)
    for r in rows:
        if seq is not None:
            r["vs_sequential"] = {
                "reads": r["reads_per_s"] / seq["reads_per_s"],
                "step_time": seq["step_ms"]["p50"] / r["step_ms"]["p50"],
                "train_iteration": seq["train_iteration_s"] / r["train_iteration_s"],
            }
    out = {
        **run_header("seed_table"),
        "settings": {
            k: getattr(args, k)
            for k in ("seconds", "latency_ms", "fps", "workers", "n_steps", "iterations")
        },
        "rows": rows,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(out, indent=2) + "\n", encoding="utf-8")
    plot(rows, args.out.with_suffix(".png"))
    print(f"wrote {args.out} and {args.out.with_suffix('.png')}")


def _line(r: dict[str, Any]) -> str:
    lat = r["latency_ms"]
    gpu = "n/a" if r["gpu_util_pct"] is None else f"{r['gpu_util_pct']:.0f} %"
    return (
        f"{r['design']:<12} {r['reads_per_s']:6.1f} reads/s  latency p50 {lat['p50']:8.1f} ms "
        f"p99 {lat['p99']:8.1f} ms  step p50 {r['step_ms']['p50']:8.2f} ms  "
        f"PPO iteration {r['train_iteration_s']:6.2f} s  CPU {r['cpu_cores']:.2f} cores  "
        f"RSS {r['peak_rss_mib']:.0f} MiB  GPU {gpu}"
    )


if __name__ == "__main__":
    main()
