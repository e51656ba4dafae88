"""Encoder throughput by batch size, and the window's added latency, side by side in one run.

    python benchmarks/encode.py --out benchmarks/results/encode-cpu.json [--device auto]

1. Encodes the same 720p frames at batch 1, 4, 16 and 64 with the default
   encoder (Nature-CNN, 84x84 observation): frames/s and the ratio to batch 1.
2. Runs the real window + encode step (``operators.steps.batch_encode``) in a
   Bytewax flow fed at ``--window-fps``: the latency it adds to each frame
   (arrival -> encoded), p50/p99, against the bound ``timeout + one batch's
   compute`` (p99 compute of the batches it ran).

Prints the device; runs unchanged on CPU or CUDA.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

import bytewax.operators as op
import numpy as np
from bytewax.dataflow import Dataflow
from bytewax.inputs import DynamicSource, StatelessSourcePartition
from bytewax.testing import run_main

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.header import run_header
from operators.batch.encoder import Encoder
from operators.batch.window import EncodeStage, WindowPolicy
from operators.frame import Frame
from operators.steps import batch_encode


class PacedSource(DynamicSource[Frame]):
    """Frames at a fixed rate, stamped as they are emitted (paced by ``next_awake``)."""

    def __init__(self, images: list[np.ndarray], fps: float, n: int) -> None:
        self.images, self.fps, self.n = images, fps, n

    def build(self, step_id: str, worker_index: int, worker_count: int) -> _Paced:
        return _Paced(self)


class _Paced(StatelessSourcePartition[Frame]):
    def __init__(self, src: PacedSource) -> None:
        self.src, self.i, self.t0 = src, 0, time.time()

    def next_batch(self) -> list[Frame]:
        if self.i >= self.src.n:
            raise StopIteration
        due = self.t0 + self.i / self.src.fps
        if time.time() < due:
            return []
        img = self.src.images[self.i % len(self.src.images)]
        self.i += 1
        return [Frame("s", self.i, time.time(), img)]

    def next_awake(self) -> datetime:
        return datetime.fromtimestamp(self.t0 + self.i / self.src.fps, tz=UTC)


def window_latency(
    enc: Encoder, images: list[np.ndarray], fps: float, n: int, max_size: int, timeout_ms: float
) -> dict[str, float]:
    flow = Dataflow("window_bench")
    frames = op.key_on(
        "key", op.input("in", flow, PacedSource(images, fps, n)), lambda f: f.stream_id
    )
    policy = WindowPolicy(max_size, timeout_ms, max_pending_batches=1000)
    stage = EncodeStage(enc, policy)
    metrics = stage.stats
    encoded = batch_encode("encode", frames, stage)
    added: list[float] = []
    op.inspect(
        "latency", encoded, lambda _s, kv: added.append((time.time() - kv[1].captured_at) * 1000.0)
    )
    run_main(flow)
    stage.pool.close()
    compute_p99 = float(np.percentile(metrics.compute_ms, 99))
    return {
        "fps": fps,
        "frames": n,
        "max_size": max_size,
        "timeout_ms": timeout_ms,
        "mean_batch": metrics.frames / max(metrics.batches, 1),
        "added_p50_ms": float(np.percentile(added, 50)),
        "added_p99_ms": float(np.percentile(added, 99)),
        "compute_p99_ms": compute_p99,
        "bound_ms": timeout_ms + compute_p99,
    }


def main() -> None:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--device", default="auto")
    ap.add_argument("--frames", type=int, default=256, help="frames encoded per batch size")
    ap.add_argument("--height", type=int, default=720)
    ap.add_argument("--width", type=int, default=1280)
    ap.add_argument("--window-fps", type=float, default=60.0)
    ap.add_argument("--window-frames", type=int, default=600)
    ap.add_argument("--window-size", default="640x360", help="frame size for the window run")
    ap.add_argument("--window-max-size", type=int, default=16)
    ap.add_argument("--window-timeout-ms", type=float, default=30.0)
    args = ap.parse_args()

    import torch

    enc = Encoder(device=args.device)
    rng = np.random.default_rng(0)
    images = [rng.integers(0, 255, (args.height, args.width, 3), dtype=np.uint8) for _ in range(64)]
    enc.encode(images[:4])  # load and warm up
    device = enc.device
    name = torch.cuda.get_device_name(0) if device.startswith("cuda") else "cpu"
    rows = []
    for size in (1, 4, 16, 64):
        n_batches = max(args.frames // size, 2)
        enc.encode(images[:size])
        if device.startswith("cuda"):
            torch.cuda.synchronize()
        t0 = time.perf_counter()
        for i in range(n_batches):
            enc.encode(images[(i * size) % 64 : (i * size) % 64 + size] if size < 64 else images)
        if device.startswith("cuda"):
            torch.cuda.synchronize()
        dt = time.perf_counter() - t0
        rows.append(
            {
                "batch": size,
                "frames_per_s": n_batches * size / dt,
                "ms_per_batch": dt / n_batches * 1000,
            }
        )
    base = rows[0]["frames_per_s"]
    for r in rows:
        r["vs_batch_1"] = r["frames_per_s"] / base
    ww, wh = (int(v) for v in args.window_size.split("x"))
    window_images = [rng.integers(0, 255, (wh, ww, 3), dtype=np.uint8) for _ in range(16)]
    enc.encode(window_images[:4])
    window = window_latency(
        enc,
        window_images,
        args.window_fps,
        args.window_frames,
        args.window_max_size,
        args.window_timeout_ms,
    )
    window["frame"] = [wh, ww]
    result = {
        **run_header("encode"),
        "device": device,
        "device_name": name,
        "torch": torch.__version__,
        "frame": [args.height, args.width],
        "rows": rows,
        "batch16_vs_1": next(r["vs_batch_1"] for r in rows if r["batch"] == 16),
        "window": window,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(
        f"device: {device} ({name}), torch {torch.__version__}, frames {args.width}x{args.height}"
    )
    print("| batch | frames/s | ms/batch | vs batch 1 |\n|---:|---:|---:|---:|")
    for r in rows:
        print(
            f"| {r['batch']} | {r['frames_per_s']:.0f} | {r['ms_per_batch']:.2f} | {r['vs_batch_1']:.2f}x |"
        )
    w = window
    print(
        f"window (max {w['max_size']}, {w['timeout_ms']:.0f} ms) at {w['fps']:.0f} fps, {ww}x{wh}: "
        f"mean batch {w['mean_batch']:.1f}, added latency p50 {w['added_p50_ms']:.1f} ms, "
        f"p99 {w['added_p99_ms']:.1f} ms; bound timeout + p99 compute = {w['bound_ms']:.1f} ms"
    )


if __name__ == "__main__":
    main()
