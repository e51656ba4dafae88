"""Dedup: cost per frame against imagehash, and what it saves and misses on a stream with ground truth.

    pip install -e ".[bench]"
    python benchmarks/dedup.py --out benchmarks/results/dedup.json          # quick: ~1.5 min, < 1.5 GB
    python benchmarks/dedup.py --full --out benchmarks/results/dedup.json   # the full held-out run

``--quick`` (the default) runs every part on fewer frames (2 arena seeds of
200 frames, 160 held-out frames per layout); ``--full`` runs 4 seeds of 500
and 600 held-out frames (5+ minutes, ~3 GB: every frame is kept in memory).

1. ms per frame (signature + comparison with the last kept frame) at 720p and
   1080p on one core, side by side on the same frames: framewax's
   ``RegionDetector`` and ``ThumbnailDetector``, imagehash's ``dhash`` and
   ``phash`` (from a numpy frame, as a pipeline has it).
2. On arena streams with ground truth (autopilot, 640x360, several seeds):
   the share of model calls saved, the HUD changes missed (a duplicate whose
   HUD differs from its kept frame's) and the enemy appearances missed (a
   duplicate showing more enemies than its kept frame), for each detector at
   its default threshold (imagehash: Hamming distance <= 0 and <= 4). The
   arena draws its HUD inside the preset the detector watches, so this part
   cannot show a hidden HUD change; part 3 can.
3. Held-out streams that are not the arena (``tests/data/photo_hud.py``):
   photographs from scikit-image panned, cut and held still, a HUD in two
   other layouts (fonts, colours, places; one with thin digits straight on the
   picture), flashes, fades, red tints and solid screens, sensor noise, ±2
   flicker and JPEG. The region detector gets the regions
   ``python -m flows.calibrate`` finds on a *separate* recording of the same
   layout (another seed), not the generator's. Against the oracle (a frame is
   skippable only when nothing visible changed since the last kept frame):
   calls saved, the oracle's savings, HUD changes hidden, whole-screen changes
   hidden, camera moves hidden, ms/frame; for every detector, imagehash too.
   It also reads the calibrated regions with the local model (HUD fields
   read exactly, on the held-out stream).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import cv2
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.header import run_header
from flows.calibrate import calibrate
from operators.capture.arena import Arena, Autopilot
from operators.dedup.detectors import RegionDetector, ThumbnailDetector
from operators.frame import Frame
from operators.truth import GroundTruth
from operators.vision.local import LocalVisionBackend
from tests.data.photo_hud import Shown, write_recording
from tests.data.photo_hud import stream as photo_stream


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


def held_out(det: Any, frames: list[tuple[np.ndarray, Shown]]) -> dict[str, Any]:
    """Dedup against the oracle on a held-out stream: every frame a detector skips while
    something visible changed since its kept frame is a hidden change, by kind."""
    kept_sig, kept = None, None
    skipped = hidden_hud = hidden_screen = hidden_camera = 0
    oracle_kept: Shown | None = None
    oracle_skips = 0
    t_total = 0.0
    for img, shown in frames:
        if oracle_kept is not None and shown.visible() == oracle_kept.visible():
            oracle_skips += 1
        else:
            oracle_kept = shown
        t0 = time.perf_counter()
        sig = det.signature(img)
        dup = kept_sig is not None and det.same(kept_sig, sig)
        t_total += time.perf_counter() - t0
        if dup:
            assert kept is not None
            skipped += 1
            if shown.visible() == kept.visible():
                pass  # nothing visible changed: a right call
            elif shown.effect != kept.effect:
                hidden_screen += 1
            elif shown.hud_visible() and shown.hud() != kept.hud():
                hidden_hud += 1
            else:
                hidden_camera += 1
        else:
            kept_sig, kept = sig, shown
    n = len(frames)
    return {
        "frames": n,
        "calls_saved": skipped / n,
        "oracle_saved": oracle_skips / n,
        "of_oracle": (skipped / oracle_skips) if oracle_skips else None,
        "hud_changes_hidden": hidden_hud,
        "whole_screen_changes_hidden": hidden_screen,
        "camera_changes_hidden": hidden_camera,
        "ms_per_frame": t_total / n * 1000.0,
    }


def read_accuracy(
    regions: dict[str, Any], frames: list[tuple[np.ndarray, Shown]]
) -> dict[str, Any]:
    """The local model on the calibrated regions: HUD fields read exactly."""
    backend = LocalVisionBackend(hud_regions=regions)
    fields = exact = n = 0
    for i, (img, shown) in enumerate(frames[::4]):
        if shown.effect.startswith("solid:"):
            continue  # no HUD on the screen
        hud, want = backend.infer(Frame("s", i, 0.0, img)).hud(), shown.hud()
        right = sum(hud[k] == v for k, v in want.items())
        fields += right
        exact += right == len(want)
        n += 1
    return {"frames": n, "fields_exact": fields / (n * 5), "frames_exact": exact / n}


def main() -> None:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--out", type=Path, required=True)
    size = ap.add_mutually_exclusive_group()
    size.add_argument("--quick", action="store_true", help="fewer frames (the default)")
    size.add_argument("--full", action="store_true", help="the full held-out run")
    ap.add_argument("--frames", type=int, help="frames per size for the cost (30 / 60)")
    ap.add_argument("--stream-frames", type=int, help="frames per arena seed (200 / 500)")
    ap.add_argument("--seeds", type=int, help="arena seeds (2 / 4)")
    ap.add_argument("--held-out-frames", type=int, help="frames per held-out stream (160 / 600)")
    ap.add_argument("--work", default="/tmp/framewax-dedup-bench", help="recordings, regions")
    args = ap.parse_args()
    sizes = {
        "frames": (30, 60),
        "stream_frames": (200, 500),
        "seeds": (2, 4),
        "held_out_frames": (160, 600),
    }
    for key, (quick, full) in sizes.items():
        if getattr(args, key) is None:
            setattr(args, key, full if args.full else quick)
    mode = "full" if args.full else "quick"
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
    del stream, frames  # every frame is in memory: free them before the held-out part
    for name, q in quality.items():
        print(
            f"{name:<28} saves {q['calls_saved']:.1%} of calls, misses {q['hud_changes_missed']} HUD "
            f"changes and {q['enemy_appearances_missed']} enemy appearances",
            flush=True,
        )
    held: dict[str, Any] = {}
    tmp = Path(args.work)
    for layout, cal_seed, eval_seed in (("amber", 101, 201), ("cyan", 102, 202)):
        rec = tmp / f"calibrate-{layout}"
        write_recording(rec, frames=150, seed=cal_seed, layout=layout)
        fields = calibrate(rec, tmp / f"{layout}.toml", tmp / f"{layout}.png")
        regions = {f.name: list(f.padded()) for f in fields}
        local = {k: v for k, v in regions.items() if k in ("health", "armor", "ammo", "money")}
        frames = list(photo_stream(args.held_out_frames, seed=eval_seed, layout=layout))
        dets: list[tuple[str, Callable[[], Any]]] = [
            ("framewax RegionDetector (calibrated)", lambda r=regions: RegionDetector(r)),
            ("framewax RegionDetector (cs2 preset)", lambda: RegionDetector("cs2")),
            ("framewax ThumbnailDetector", ThumbnailDetector),
            *detectors[2:],
        ]
        rows = {name: held_out(make(), frames) for name, make in dets}
        held[layout] = {
            "calibrated_regions": regions,
            "detectors": rows,
            "local_model_calibrated": read_accuracy(local, frames),
            "local_model_cs2_preset": read_accuracy("cs2", frames),  # type: ignore[arg-type]
        }
        del frames
        for name, q in rows.items():
            print(
                f"{layout:<6} {name:<38} saves {q['calls_saved']:.1%} (oracle {q['oracle_saved']:.1%}), "
                f"hides {q['hud_changes_hidden']} HUD / {q['whole_screen_changes_hidden']} screen / "
                f"{q['camera_changes_hidden']} camera changes, {q['ms_per_frame']:.2f} ms/frame",
                flush=True,
            )
        print(
            f"{layout:<6} local model, calibrated regions: "
            f"{held[layout]['local_model_calibrated']['fields_exact']:.1%} of HUD fields exact; "
            f"cs2 preset: {held[layout]['local_model_cs2_preset']['fields_exact']:.1%}",
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
        "held_out": {
            layout: {
                "hud_changes_hidden": h["detectors"]["framewax RegionDetector (calibrated)"][
                    "hud_changes_hidden"
                ],
                "whole_screen_changes_hidden": h["detectors"][
                    "framewax RegionDetector (calibrated)"
                ]["whole_screen_changes_hidden"],
                "of_oracle": h["detectors"]["framewax RegionDetector (calibrated)"]["of_oracle"],
                "local_fields_exact": h["local_model_calibrated"]["fields_exact"],
            }
            for layout, h in held.items()
        },
    }
    result = {
        **run_header("dedup"),
        "mode": mode,
        "sizes": {k: getattr(args, k) for k in sizes},
        "ms_per_frame": costs,
        "arena_stream": quality,
        "held_out_streams": held,
        "checks": checks,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(checks, indent=2))


if __name__ == "__main__":
    main()
