"""Dedup: cost per frame against imagehash, and what it saves and misses on a stream with ground truth.

    pip install -e ".[bench]"
    python benchmarks/dedup.py --out benchmarks/results/dedup.json

1. ms per frame (signature + comparison with the last kept frame) at 720p and
   1080p on one core, side by side on the same frames: framewax's
   ``RegionDetector`` and ``ThumbnailDetector``, imagehash's ``dhash`` and
   ``phash`` (from a numpy frame, as a pipeline has it).
2. On arena streams with ground truth (autopilot, 640x360, several seeds):
   the share of model calls saved, the HUD changes missed (a duplicate whose
   HUD differs from its kept frame's) and the enemy appearances missed (a
   duplicate showing more enemies than its kept frame), for each detector at
   its default threshold (imagehash: Hamming distance <= 0 and <= 4).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import cv2
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from operators.arena import Arena, Autopilot
from operators.dedup import RegionDetector, ThumbnailDetector
from operators.truth import GroundTruth


class ImageHashDetector:
    """imagehash as a change detector: same when the Hamming distance is <= ``radius``."""

    def __init__(self, kind: str, radius: int) -> None:
        import imagehash
        from PIL import Image

        self.fn, self.radius, self.image = getattr(imagehash, kind), radius, Image
        self.name = f"imagehash.{kind} (<= {radius})"

    def signature(self, image: np.ndarray) -> Any:
        return self.fn(self.image.fromarray(image))

    def same(self, a: Any, b: Any) -> bool:
        return (a - b) <= self.radius


def arena_frames(
    n: int, seed: int, width: int, height: int
) -> list[tuple[np.ndarray, GroundTruth]]:
    arena, pilot = Arena(width=width, height=height, seed=seed), Autopilot(seed)
    out = []
    for _ in range(n):
        arena.step(pilot.act(arena))
        out.append((arena.render(), arena.truth()))
    return out


def cost_ms(det: Any, frames: list[np.ndarray], repeat: int = 3) -> float:
    """Signature of each frame + one comparison with the previous, best of ``repeat``."""
    best = float("inf")
    for _ in range(repeat):
        prev = det.signature(frames[0])
        t0 = time.perf_counter()
        for img in frames:
            sig = det.signature(img)
            det.same(prev, sig)
            prev = sig
        best = min(best, (time.perf_counter() - t0) / len(frames) * 1000.0)
    return best


def replay(det: Any, frames: list[tuple[np.ndarray, GroundTruth]]) -> dict[str, Any]:
    kept_sig, kept_truth = None, None
    dups = missed_hud = missed_enemy = 0
    for img, truth in frames:
        sig = det.signature(img)
        if kept_sig is not None and det.same(kept_sig, sig):
            dups += 1
            missed_hud += truth.hud() != kept_truth.hud()
            missed_enemy += len(truth.enemies) > len(kept_truth.enemies)
        else:
            kept_sig, kept_truth = sig, truth
    return {
        "frames": len(frames),
        "calls_saved": dups / len(frames),
        "hud_changes_missed": missed_hud,
        "enemy_appearances_missed": missed_enemy,
    }


def main() -> None:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--frames", type=int, default=60, help="frames per size for the cost")
    ap.add_argument("--stream-frames", type=int, default=500, help="frames per arena seed")
    ap.add_argument("--seeds", type=int, default=4)
    args = ap.parse_args()
    cv2.setNumThreads(1)  # one core, as the target says
    detectors: list[tuple[str, Callable[[], Any]]] = [
        ("framewax RegionDetector", RegionDetector),
        ("framewax ThumbnailDetector", ThumbnailDetector),
        ("imagehash.dhash (<= 0)", lambda: ImageHashDetector("dhash", 0)),
        ("imagehash.phash (<= 0)", lambda: ImageHashDetector("phash", 0)),
        ("imagehash.dhash (<= 4)", lambda: ImageHashDetector("dhash", 4)),
    ]
    costs: dict[str, dict[str, float]] = {}
    for w, h in ((1280, 720), (1920, 1080)):
        frames = [img for img, _ in arena_frames(args.frames, 1, w, h)]
        for name, make in detectors[:4]:  # dhash cost does not depend on its radius
            costs.setdefault(name, {})[f"{h}p"] = cost_ms(make(), frames)
        print(
            f"{h}p: " + ", ".join(f"{n} {c[f'{h}p']:.3f} ms" for n, c in costs.items()), flush=True
        )
    stream = [
        f for seed in range(args.seeds) for f in arena_frames(args.stream_frames, seed, 640, 360)
    ]
    quality = {name: replay(make(), stream) for name, make in detectors}
    for name, q in quality.items():
        print(
            f"{name:<28} saves {q['calls_saved']:.1%} of calls, misses {q['hud_changes_missed']} HUD "
            f"changes and {q['enemy_appearances_missed']} enemy appearances",
            flush=True,
        )
    region = costs["framewax RegionDetector"]
    checks = {
        "region_ms_1080p": region["1080p"],
        "speedup_vs_dhash_1080p": costs["imagehash.dhash (<= 0)"]["1080p"] / region["1080p"],
        "speedup_vs_phash_1080p": costs["imagehash.phash (<= 0)"]["1080p"] / region["1080p"],
        "region_hud_changes_missed": quality["framewax RegionDetector"]["hud_changes_missed"],
        "region_enemy_appearances_missed": quality["framewax RegionDetector"][
            "enemy_appearances_missed"
        ],
        "region_calls_saved": quality["framewax RegionDetector"]["calls_saved"],
    }
    result = {
        "benchmark": "dedup",
        "command": "python benchmarks/dedup.py " + " ".join(sys.argv[1:]),
        "machine": {"cpu_count": os.cpu_count(), "python": platform.python_version()},
        "ms_per_frame": costs,
        "arena_stream": quality,
        "checks": checks,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(checks, indent=2))


if __name__ == "__main__":
    main()
