"""Calibration and reading on the real game's pixels, over a matrix of screens, scored
against the game's own variables (exact per frame: no capture timing in the way).

    python benchmarks/hud_matrix.py --out benchmarks/results/hud_matrix.json [--cells ...]

Per cell (window size, WAD, scenario, HUD mode), Freedoom runs in-process
(``tests/data/doom_recording.py``): a recording of ordinary random play (seed 11, no
cheats: health and armor seldom past 100 %) is calibrated with ``--ranges doom``; a
second recording (seed 23, with ``give armor`` / ``give health`` / ``give ammo`` now
and then, so fields show their widest values) is read by the local model with those
regions. Per field: read right (the frame's value or the one before it: the status
bar trails the variable by a tic), unread, and wrong (a number that is neither). The
screen path (window capture, timing, lag) is ``benchmarks/real_game.py --matrix``.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tomllib
from collections import Counter
from pathlib import Path

import cv2
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.header import run_header
from benchmarks.real_game import FIELDS, MATRIX, Cell
from flows.calibrate import calibrate
from operators.capture.replay import read_index
from operators.frame import Frame
from operators.vision.local import LocalVisionBackend
from tests.data.doom_recording import record_doom


def cell_row(cell: Cell, work: Path, frames: int) -> dict[str, object]:
    shutil.rmtree(work, ignore_errors=True)
    cal, play = work / "calibrate", work / "play"
    kw = {
        "resolution": cell.resolution,
        "hud": cell.hud,
        "wad": cell.wad,
        "scenario": cell.scenario,
    }
    record_doom(cal, frames=frames, seed=11, **kw)
    record_doom(play, frames=frames, seed=23, cheats=True, **kw)
    fields = calibrate(cal, work / "regions.toml", ranges="doom")
    regions = tomllib.loads((work / "regions.toml").read_text())["hud"]["regions"]
    row: dict[str, object] = {"cell": cell.name, "named": sorted(f.name for f in fields)}
    row["regions"] = regions
    if not set(FIELDS) & set(regions):
        row["missing_fields"] = list(FIELDS)
        return row
    backend = LocalVisionBackend(hud_regions=regions, ranges="doom")
    counts = {f: Counter() for f in FIELDS}
    prev = None
    n = 0
    for e in read_index(play):
        image = cv2.imread(str(play / str(e.file)))[..., ::-1]
        got = backend.infer(Frame("s", e.line, 0.0, np.ascontiguousarray(image)))
        n += 1
        for f in FIELDS:
            want = getattr(e.truth, f)
            value = getattr(got, f)
            if f not in regions:
                counts[f]["missing"] += 1
            elif value in {want, getattr(prev or e.truth, f)}:
                counts[f]["right"] += 1
            elif value is None:
                counts[f]["unread"] += 1
            else:
                counts[f]["wrong"] += 1
        prev = e.truth
    row["frames"] = n
    # a field the game never shows in this scenario (no weapon: AMMO blank) is not scored
    shown = {f for f in FIELDS if any(getattr(e.truth, f) is not None for e in read_index(play))}
    row["fields"] = {
        f: {k: v / n for k, v in c.items()} if f in shown else None for f, c in counts.items()
    }
    row["recalibrate"] = backend.metrics()["recalibrate"]
    return row


def main() -> None:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--cells", help="RES:WAD:SCENARIO:HUD,... (default: real_game.MATRIX)")
    ap.add_argument("--frames", type=int, default=300, help="frames per recording (3 tics apart)")
    ap.add_argument("--work", type=Path, default=Path("/tmp/framewax-hud-matrix"))
    args = ap.parse_args()
    cells = [Cell.parse(c) for c in args.cells.split(",")] if args.cells else list(MATRIX)
    rows = []
    for cell in cells:
        row = cell_row(cell, args.work / cell.name.replace(" ", "-"), args.frames)
        rows.append(row)
        print(cell.name, json.dumps(row.get("fields") or row.get("missing_fields")), flush=True)
        result = {**run_header("hud_matrix"), "frames": args.frames, "rows": rows}
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(result, indent=2, default=str) + "\n")  # after each cell


if __name__ == "__main__":
    main()
