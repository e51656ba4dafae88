"""The dataflow's own cost, with the model taken out, side by side with Bytewax's bare throughput.

    python benchmarks/overhead.py --out benchmarks/results/overhead.json

A pre-rendered source (arena frames drawn once, handed out by reference, so
drawing costs nothing here) runs through the whole flow: capture → dedup (the
real region detector) → a null model (answers at once, on the vision pool) →
a null encoder → order → memory sink, as fast as it goes, at 360p, 720p and
1080p, with 1 and 4 streams. In the same run, an identity dataflow moves the
same number of the same frames through Bytewax alone (input → map → output):
what Bytewax costs by itself, the floor for any flow. Reported per row:
frames/s (wall) and frames/s per core (frames over the process's CPU seconds),
the ratio to the identity flow, µs per frame in each step's own Python (the
summary's ``steps``), and the capture side's achieved rate.

A frame that dedup skips costs less than one that goes to the model; every
frame here differs from the one before (they cycle through ``--distinct``
renders of a moving arena), so every frame takes the full path.
"""

from __future__ import annotations

import argparse
import json
import resource
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import bytewax.operators as op
from bytewax.dataflow import Dataflow
from bytewax.outputs import DynamicSink, StatelessSinkPartition
from bytewax.testing import run_main

from benchmarks.header import run_header
from flows.runner import Pipeline
from operators.capture.arena import Arena, Autopilot
from operators.capture.base import Pacer, SourceBase
from operators.clock import SYSTEM_CLOCK
from operators.frame import Frame
from operators.reading import VisionResult
from operators.steps import FrameSource

RESOLUTIONS = {"360p": (640, 360), "720p": (1280, 720), "1080p": (1920, 1080)}


class _Stream:
    def __init__(self, stream_id: str, images: list[np.ndarray], truths: list[Any], src: Any):
        self.stream_id = stream_id
        self.images, self.truths, self.src = images, truths, src
        self.seq = 0
        self.pacer = Pacer(src.fps, SYSTEM_CLOCK)

    def next_frames(self) -> list[Frame]:
        if self.seq >= self.src.frames:
            raise StopIteration
        if not self.pacer.due():
            return []
        i = self.seq % len(self.images)
        frame = Frame(self.stream_id, self.seq, time.time(), self.images[i], self.truths[i])
        self.seq += 1
        return [frame]

    def next_wake(self) -> float | None:
        return self.pacer.next_wake()

    def close(self) -> None:
        return None


class PrerenderedSource(SourceBase):
    """A capture stage of ``streams`` streams, each ``frames`` long, cycling through
    ``distinct`` arena frames rendered once (handed out by reference)."""

    def __init__(
        self,
        *,
        frames: int = 3000,
        streams: int = 1,
        width: int = 640,
        height: int = 360,
        distinct: int = 16,
        fps: float = 0.0,
    ) -> None:
        super().__init__()
        self.frames, self.fps = frames, fps
        arena, pilot = Arena(width, height, seed=1), Autopilot(1)
        self.images, self.truths = [], []
        for _ in range(distinct):
            for _ in range(3):  # a few ticks apart: every frame differs from the one before
                arena.step(pilot.act(arena))
            self.images.append(arena.render())
            self.truths.append(arena.truth())
        self.ids = [f"pre-{i}" for i in range(streams)]

    def stream_ids(self) -> list[str]:
        return list(self.ids)

    def open(self, stream_id: str) -> _Stream:
        return _Stream(stream_id, self.images, self.truths, self)


class NullBackend:
    """A vision backend that answers at once: what the stage costs around a model."""

    name = "null"

    def infer(self, frame: Frame) -> VisionResult:
        return VisionResult(frame.stream_id, frame.seq, backend=self.name)


class NullEncoder:
    """An encoder that returns zeros: what the window costs around an encoder."""

    def encode(self, images: list[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
        n = len(images)
        return np.zeros((n, 84, 84, 3), np.uint8), np.zeros((n, 8), np.float32)


def _cpu() -> float:
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def run_pipeline(source: dict[str, Any]) -> dict[str, Any]:
    over = {
        "capture": {"source": "benchmarks.overhead:PrerenderedSource", "options": source},
        "dedup": {"enabled": True, "cache_size": 0},
        "vision": {
            "backend": "benchmarks.overhead:NullBackend",
            "max_in_flight": 4,
            "max_pending": 100_000,
            "staleness_ms": 600_000.0,
        },
        "batch": {
            "encoder": "benchmarks.overhead:NullEncoder",
            "max_size": 32,
            "timeout_ms": 5.0,
            "options": {},
        },
        "run": {"status_interval_s": 0.0, "summary": False},
    }
    pipe = Pipeline(overrides=over)
    pipe.runtime.warm_up()  # the pre-rendering happened when the source was built
    cpu0, t0 = _cpu(), time.perf_counter()
    summary = pipe.wait(timeout=600)
    wall, cpu = time.perf_counter() - t0, _cpu() - cpu0
    frames = summary["ledger"]["captured"]
    steps = {k: v["us_per_frame"] for k, v in summary["steps"].items()}
    return {
        "frames": frames,
        "wall_s": wall,
        "cpu_s": cpu,
        "fps": frames / wall,
        "fps_per_core": frames / cpu,
        "cpu_us_per_frame": cpu / frames * 1e6,
        "steps_us_per_frame": steps,
        "outside_steps_us_per_frame": cpu / frames * 1e6 - sum(steps.values()),
        "capture_fps": summary["capture_rate"]["fps"],
        "balanced": summary["ledger"]["balanced"],
        "processed": summary["ledger"]["processed"],
        "duplicate": summary["ledger"]["duplicate"],
    }


class _Count(StatelessSinkPartition[Any]):
    def __init__(self, counter: list[int]) -> None:
        self.counter = counter

    def write_batch(self, items: list[Any]) -> None:
        self.counter[0] += len(items)


class _CountSink(DynamicSink[Any]):
    def __init__(self) -> None:
        self.counter = [0]

    def build(self, step_id: str, worker_index: int, worker_count: int) -> _Count:
        return _Count(self.counter)


def run_identity(source: dict[str, Any]) -> dict[str, Any]:
    """The same frames from the same source through Bytewax alone: input → map → output."""
    src = PrerenderedSource(**source)
    flow = Dataflow("identity")
    frames = op.input("in", flow, FrameSource(src))
    sink = _CountSink()
    op.output("out", op.map_value("identity", frames, lambda f: f), sink)
    cpu0, t0 = _cpu(), time.perf_counter()
    run_main(flow)
    wall, cpu = time.perf_counter() - t0, _cpu() - cpu0
    n = sink.counter[0]
    return {
        "frames": n,
        "wall_s": wall,
        "cpu_s": cpu,
        "fps": n / wall,
        "fps_per_core": n / cpu,
        "cpu_us_per_frame": cpu / n * 1e6,
    }


def main() -> None:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--frames", type=int, default=4000, help="frames per stream at 360p")
    ap.add_argument("--resolutions", default="360p,720p,1080p")
    ap.add_argument("--streams", default="1,4")
    ap.add_argument("--distinct", type=int, default=16)
    args = ap.parse_args()
    rows = []
    for res in args.resolutions.split(","):
        width, height = RESOLUTIONS[res]
        for streams in (int(s) for s in args.streams.split(",")):
            # fewer frames per stream at higher resolutions and with more streams
            scale = (640 * 360) / (width * height)
            frames = max(200, int(args.frames * max(scale, 0.25) / streams))
            source = {
                "frames": frames,
                "streams": streams,
                "width": width,
                "height": height,
                "distinct": args.distinct,
            }
            bare = run_identity(source)
            flow = run_pipeline(source)
            row = {
                "resolution": res,
                "streams": streams,
                "framewax": flow,
                "bytewax_identity": bare,
                "fps_per_core_vs_identity": flow["fps_per_core"] / bare["fps_per_core"],
                "added_us_per_frame_over_identity": flow["cpu_us_per_frame"]
                - bare["cpu_us_per_frame"],
            }
            rows.append(row)
            steps = "  ".join(f"{k} {v:.0f}" for k, v in flow["steps_us_per_frame"].items())
            print(
                f"{res:>5} x{streams}: framewax {flow['fps']:7.0f} fps, {flow['fps_per_core']:7.0f}/core "
                f"({flow['cpu_us_per_frame']:.0f} µs CPU/frame: {steps}; outside steps "
                f"{flow['outside_steps_us_per_frame']:.0f}) | bytewax identity {bare['fps']:7.0f} fps, "
                f"{bare['fps_per_core']:7.0f}/core | balanced {flow['balanced']}",
                flush=True,
            )
    p360 = [r for r in rows if r["resolution"] == "360p"]
    checks = {
        "min_fps_per_core_360p": min(r["framewax"]["fps_per_core"] for r in p360) if p360 else None,
        "target_fps_per_core_360p": 2000.0,
        "all_balanced": all(r["framewax"]["balanced"] for r in rows),
        "min_capture_fps": min(r["framewax"]["capture_fps"] for r in rows),
    }
    result = {**run_header("overhead"), "rows": rows, "checks": checks}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(checks, indent=2))


if __name__ == "__main__":
    main()
