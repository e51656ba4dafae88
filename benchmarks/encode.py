"""Encoder throughput by batch size, side by side in one run.

    python benchmarks/encode.py --out benchmarks/results/encode-cpu.json [--device auto]

Encodes the same 720p arena-like frames at batch 1, 4, 16 and 64 with the
default encoder (Nature-CNN, 84x84 observation) and reports frames/s and
the ratio to batch 1. Prints the device; runs unchanged on CPU or CUDA.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from operators.encoder import Encoder


def main() -> None:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--device", default="auto")
    ap.add_argument("--frames", type=int, default=256, help="frames encoded per batch size")
    ap.add_argument("--height", type=int, default=720)
    ap.add_argument("--width", type=int, default=1280)
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
    result = {
        "device": device,
        "device_name": name,
        "torch": torch.__version__,
        "frame": [args.height, args.width],
        "rows": rows,
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


if __name__ == "__main__":
    main()
