"""Screen capture against its target rate on a virtual display, and replay speed.

    python benchmarks/capture.py --out benchmarks/results/capture.json   (needs Xvfb)

1. For 1280x720 and 1920x1080 virtual displays (Xvfb, a window repainted with
   a new colour 60 times a second by another process's thread), the
   ``ScreenSource`` in a real Bytewax run at target 30 and 60 fps and as fast
   as it goes: frames/s achieved, its ratio to the target, ticks missed, and
   the jitter of the intervals between frames.
2. A 720p recording of 300 frames replayed as fast as possible (PNG decode
   included): frames/s.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import bytewax.operators as op
import numpy as np
from bytewax.dataflow import Dataflow
from bytewax.testing import TestingSink, run_main

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.header import run_header
from operators.capture.replay import ReplaySource
from operators.capture.screen import ScreenSource
from operators.steps import capture
from operators.testing.xvfb import start_xvfb
from sinks.recorder import RecordingWriter


def painter(display: str, w: int, h: int, stop: threading.Event) -> None:
    from Xlib import X
    from Xlib import display as xdisplay

    d = xdisplay.Display(display)
    screen = d.screen()
    win = screen.root.create_window(
        0, 0, w, h, 0, screen.root_depth, X.InputOutput, X.CopyFromParent, override_redirect=True
    )
    gc = win.create_gc()
    win.map()
    i = 0
    while not stop.is_set():
        gc.change(foreground=(i * 2654435761) & 0xFFFFFF)
        win.fill_rectangle(gc, 0, 0, w, h)
        d.sync()
        i += 1
        time.sleep(1 / 60)
    d.close()


def run_source(source: Any, stop: threading.Event | None = None) -> list[Any]:
    flow = Dataflow("capture_bench")
    got: list[Any] = []
    op.output("out", capture("capture", flow, source, stop=stop), TestingSink(got))
    run_main(flow)
    return [f for _, f in got]


def screen_rows(n: int, w: int, h: int, seconds: float) -> list[dict[str, Any]]:
    display, proc = start_xvfb(w, h, first=n)
    stop = threading.Event()
    paint = threading.Thread(target=painter, args=(display, w, h, stop), daemon=True)
    paint.start()
    rows = []
    try:
        for fps in (30.0, 60.0, 0.0):
            frames_budget = int(fps * seconds) if fps else 0
            halt = threading.Event()
            src = ScreenSource(display=display, fps=fps, frames=frames_budget)
            if not fps:
                threading.Timer(seconds, halt.set).start()
            frames = run_source(src, stop=halt)
            stamps = np.array([f.captured_at for f in frames])
            span = stamps[-1] - stamps[0]
            achieved = (len(frames) - 1) / span
            gaps = np.diff(stamps) * 1000.0
            rows.append(
                {
                    "size": f"{w}x{h}",
                    "target_fps": fps or "max",
                    "frames": len(frames),
                    "achieved_fps": achieved,
                    "of_target": achieved / fps if fps else None,
                    "missed_ticks": src.missed.get("screen", 0),
                    "interval_ms_p50": float(np.percentile(gaps, 50)),
                    "interval_ms_p99": float(np.percentile(gaps, 99)),
                }
            )
            r = rows[-1]
            print(
                f"{r['size']} target {r['target_fps']}: {achieved:.1f} fps"
                + (f" ({r['of_target']:.3f} of target)" if fps else "")
                + f", missed {r['missed_ticks']}, interval p50 {r['interval_ms_p50']:.1f} ms p99 {r['interval_ms_p99']:.1f} ms",
                flush=True,
            )
    finally:
        stop.set()
        paint.join(timeout=5)
        proc.terminate()
        proc.wait(timeout=10)
    return rows


def replay_row(frames: int = 300) -> dict[str, Any]:
    rng = np.random.default_rng(0)
    base = rng.integers(0, 255, (720, 1280, 3), dtype=np.uint8)
    with tempfile.TemporaryDirectory() as tmp:
        from operators.frame import Frame

        with RecordingWriter(Path(tmp) / "rec", compression=1) as writer:
            for seq in range(frames):
                writer.write(Frame("s", seq, seq / 30, np.roll(base, seq, axis=1)))
        t0 = time.perf_counter()
        got = run_source(ReplaySource(paths=[str(Path(tmp) / "rec")], pace="fast"))
        dt = time.perf_counter() - t0
    row = {"replay": "1280x720 PNG, fast", "frames": len(got), "fps": len(got) / dt}
    print(f"replay 720p: {row['fps']:.1f} frames/s", flush=True)
    return row


def main() -> None:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--seconds", type=float, default=5.0)
    args = ap.parse_args()
    if shutil.which("Xvfb") is None:
        sys.exit("Xvfb is not installed (apt-get install xvfb)")
    rows = screen_rows(121, 1280, 720, args.seconds) + screen_rows(122, 1920, 1080, args.seconds)
    result = {
        **run_header("capture"),
        "screen": rows,
        "replay": replay_row(),
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
