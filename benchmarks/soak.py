"""Soak: the pipeline at 60 fps against the emulated model server for minutes, RSS sampled.

    python benchmarks/soak.py --minutes 10 --out benchmarks/results/soak.json

The arena at 60 fps (640x360) through the Ollama backend (emulator in its own
process: 300 ms a call, 64 slots; 16 calls in flight), in this process, as the
env runs it. The process's resident memory is sampled every few seconds; after
a warm-up (the first tenth of the run, at least 30 s) it must not grow by more
than 5 % (median of the first five samples after warm-up against the median of
the last five). At the end the run is stopped like the env's ``close()`` and
the ledger must be exact: every captured frame resolved once, none in flight.
The numbers go to ``--out``; the exit status is non-zero if a check fails.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.header import run_header
from flows.runner import Pipeline
from operators.testing.ollama_server import spawn_server

GROWTH_LIMIT = 0.05


def rss_mb() -> float:
    """This process's resident set size, MiB (Linux ``/proc``)."""
    with open("/proc/self/statm", encoding="ascii") as fh:
        pages = int(fh.read().split()[1])
    return pages * os.sysconf("SC_PAGE_SIZE") / 2**20


def main() -> None:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--minutes", type=float, default=10.0)
    ap.add_argument("--fps", type=float, default=60.0)
    ap.add_argument("--latency-ms", type=float, default=300.0)
    ap.add_argument("--sample-s", type=float, default=5.0)
    args = ap.parse_args()

    duration = args.minutes * 60.0
    warm_up = max(30.0, duration / 10.0)
    proc, host = spawn_server(["--latency-ms", str(args.latency_ms), "--parallel", "64"])
    samples: list[dict[str, Any]] = []
    try:
        overrides = {
            "capture": {"options": {"frames": 0, "fps": args.fps, "width": 640, "height": 360}},
            "vision": {
                "backend": "ollama",
                "max_in_flight": 16,
                "staleness_ms": 500.0,
                "options": {"endpoints": [f"http://{host}"], "max_side": 512},
            },
            "batch": {"options": {"device": "cpu", "threads": 1}},
            "run": {"status_interval_s": 0.0},
        }
        pipeline = Pipeline(overrides=overrides).start()
        t0 = time.monotonic()
        while (now := time.monotonic() - t0) < duration:
            time.sleep(args.sample_s)
            counts = pipeline.ledger.counts()
            samples.append({"t_s": round(now, 1), "rss_mb": round(rss_mb(), 2), **counts})
            print(
                f"{now:7.1f} s  RSS {samples[-1]['rss_mb']:8.1f} MiB  captured "
                f"{counts['captured']:7d}  processed {counts['processed']:6d}  "
                f"in flight {counts['in_flight']:3d}",
                flush=True,
            )
        summary = pipeline.stop(timeout=60)
    finally:
        proc.terminate()
        proc.wait(timeout=10)

    after = [s["rss_mb"] for s in samples if s["t_s"] >= warm_up]
    start, end = statistics.median(after[:5]), statistics.median(after[-5:])
    growth = (end - start) / start
    led = summary["ledger"]
    resolved = sum(led[k] for k in ("processed", "duplicate", "cached", "dropped", "failed"))
    checks = {
        f"rss growth after warm-up <= {GROWTH_LIMIT:.0%}": growth <= GROWTH_LIMIT,
        "ledger exact (every frame resolved once, none in flight)": bool(
            led["balanced"] and led["in_flight"] == 0 and resolved == led["captured"]
        ),
    }
    result = {
        **run_header("soak"),
        "minutes": args.minutes,
        "fps": args.fps,
        "model_latency_ms": args.latency_ms,
        "warm_up_s": warm_up,
        "rss_mb_after_warm_up": start,
        "rss_mb_at_end": end,
        "rss_growth": growth,
        "throughput_fps": summary["fps"],
        "processed_fps": summary["processed_fps"],
        "latency_ms": summary["latency_ms"],
        "ledger": led,
        "checks": checks,
        "samples": samples,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    print(
        f"RSS {start:.1f} -> {end:.1f} MiB after warm-up ({growth:+.2%}); "
        f"{led['captured']} frames, {led['processed']} processed, ledger "
        f"{'exact' if checks[list(checks)[1]] else 'NOT exact'}"
    )
    for name, ok in checks.items():
        print(f"  {'ok  ' if ok else 'FAIL'} {name}")
    sys.exit(0 if all(checks.values()) else 1)


if __name__ == "__main__":
    main()
