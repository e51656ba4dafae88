"""Merge the run summaries of a cluster's processes into one.

    python -m flows.summary run.0.json run.1.json --out run.json

With several processes (``python -m bytewax.run flows.vision -i 0 -a "h0:p;h1:p"``
and ``-i 1 ...``), each process ledgers the streams whose keys its workers own
and writes its own summary (``FRAMEWAX_SUMMARY=run.json`` becomes
``run.0.json``, ``run.1.json``...). Merged, the ledgers add up; the run is
balanced only if every process's ledger is, every process's summary is there,
and no stream was counted by two. Exits 1 when it is not balanced.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from flows.report import format_summary

__all__ = ["merge"]

_COUNTS = ("captured", "in_flight", "processed", "duplicate", "cached", "dropped", "failed")


def _capture_rate(parts: list[dict[str, Any]]) -> dict[str, Any]:
    """The processes capture side by side: their rates and targets add up."""
    fps = sum(p.get("fps") or 0.0 for p in parts)
    target = sum(p.get("target_fps") or 0.0 for p in parts)
    return {"fps": fps, "target_fps": target, "of_target": fps / target if target else None}


def _steps(parts: list[dict[str, Any]], captured: int) -> dict[str, dict[str, Any]]:
    """Each step's time over every process, per frame captured by all of them."""
    out: dict[str, dict[str, Any]] = {}
    for part in parts:
        for step, v in part.items():
            acc = out.setdefault(step, {"seconds": 0.0, "calls": 0, "items": 0})
            for k in ("seconds", "calls", "items"):
                acc[k] += v.get(k, 0)
    for acc in out.values():
        acc["us_per_frame"] = round(acc["seconds"] / captured * 1e6, 2) if captured else 0.0
    return out


def merge(summaries: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """One summary for the cluster from its processes' summaries (JSON dicts)."""
    if not summaries:
        msg = "no summaries to merge"
        raise ValueError(msg)
    problems: list[str] = []
    count = {s.get("process", {}).get("count", 1) for s in summaries}
    indexes = sorted(s.get("process", {}).get("index", 0) for s in summaries)
    if len(count) != 1 or indexes != list(range(next(iter(count)))):
        problems.append(
            f"expected one summary from each process 0..N-1; got processes {indexes} "
            f"of {sorted(count)}"
        )
    ledger: dict[str, Any] = dict.fromkeys(_COUNTS, 0)
    reasons: Counter[str] = Counter()
    violations: list[str] = []
    violation_count = unresolved = 0
    for s in summaries:
        led = s["ledger"]
        for k in _COUNTS:
            ledger[k] += led[k]
        reasons.update(led.get("reasons", {}))
        violation_count += led.get("violation_count", len(led.get("violations", [])))
        violations += led.get("violations", [])
        unresolved += led.get("unresolved", 0)
        if not led.get("balanced"):
            problems.append(f"process {s.get('process', {}).get('index', 0)} is not balanced")
    streams = [set(s["ledger"].get("streams", [])) for s in summaries]
    shared = set.intersection(*streams) if len(streams) > 1 else set()
    if shared:
        problems.append(f"streams ledgered by more than one process: {sorted(shared)}")
    resolved = sum(ledger[k] for k in _COUNTS[2:])
    ledger.update(
        reasons=dict(reasons),
        violation_count=violation_count,
        violations=violations[:20],
        unresolved=unresolved,
        ended=all(s["ledger"].get("ended", False) for s in summaries),
        streams=sorted(set().union(*streams)),
    )
    ledger["balanced"] = (
        not problems and ledger["captured"] == resolved + ledger["in_flight"] and not unresolved
    )
    first = summaries[0]
    return {
        "config": first.get("config", ""),
        "process": {"index": None, "count": len(summaries)},
        "duration_s": max(s["duration_s"] for s in summaries),
        "ledger": ledger,
        "problems": problems,
        # the processes run side by side: their rates add up
        "fps": sum(s["fps"] for s in summaries),
        "captured_fps": sum(s["captured_fps"] for s in summaries),
        "processed_fps": sum(s["processed_fps"] for s in summaries),
        # percentiles do not add up: the worst process's
        "latency_ms": max((s["latency_ms"] for s in summaries), key=lambda x: x.get("p99", 0)),
        "hud_accuracy": {
            **_accuracy([s["hud_accuracy"] for s in summaries]),
            "read": _accuracy(
                [s["hud_accuracy"].get("read", s["hud_accuracy"]) for s in summaries]
            ),
            "delivered": _accuracy(
                [s["hud_accuracy"].get("delivered", s["hud_accuracy"]) for s in summaries]
            ),
            "stale_frames": sum(s["hud_accuracy"].get("stale_frames", 0) for s in summaries),
        },
        "capture_rate": _capture_rate([s.get("capture_rate") or {} for s in summaries]),
        "steps": _steps([s.get("steps") or {} for s in summaries], ledger["captured"]),
        "placement": _placement([s.get("placement", {}) for s in summaries]),
        "window": _window([s.get("window", {}) for s in summaries]),
        "by_process": [
            {k: s.get(k) for k in ("process", "ledger", "fps", "latency_ms", "placement")}
            for s in summaries
        ],
    }


def _placement(parts: list[dict[str, Any]]) -> dict[str, Any]:
    """Streams per capture worker, and what crossed processes, for the whole cluster."""
    streams: dict[str, int] = {}
    for p in parts:
        streams.update(p.get("streams", {}))
    return {
        "worker_count": max((p.get("worker_count", 0) for p in parts), default=0),
        "streams": dict(sorted(streams.items())),
        **{
            k: sum(p.get(k, 0) for p in parts)
            for k in ("frames", "crossed_frames", "crossed_bytes")
        },
    }


def _window(parts: list[dict[str, Any]]) -> dict[str, float | None]:
    """From the cluster's first capture to its last output (epoch seconds)."""
    firsts = [p["first_capture"] for p in parts if p.get("first_capture") is not None]
    lasts = [p["last_output"] for p in parts if p.get("last_output") is not None]
    return {
        "first_capture": min(firsts) if firsts else None,
        "last_output": max(lasts) if lasts else None,
    }


def _accuracy(parts: list[dict[str, Any]]) -> dict[str, Any]:
    n = sum(p["frames"] for p in parts)

    def avg(get: Any) -> float | None:
        known = [(get(p), p["frames"]) for p in parts if p["frames"] and get(p) is not None]
        weight = sum(w for _, w in known)
        return sum(v * w for v, w in known) / weight if weight else None

    fields = {f for p in parts for f in p.get("fields", {})}
    return {
        "frames": n,
        "exact": avg(lambda p: p["exact"]),
        "fields": {f: avg(lambda p, f=f: p["fields"].get(f)) for f in sorted(fields)},
        "enemy_count": avg(lambda p: p["enemy_count"]),
    }


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("summaries", nargs="+", type=Path, help="one JSON summary per process")
    ap.add_argument("--out", type=Path, help="write the merged summary here")
    args = ap.parse_args(argv)
    try:
        loaded = [json.loads(p.read_text(encoding="utf-8")) for p in args.summaries]
    except (OSError, ValueError) as ex:
        print(f"flows.summary: cannot read a summary: {ex}", file=sys.stderr)
        return 2
    merged = merge(loaded)
    if args.out:
        args.out.write_text(json.dumps(merged, indent=2) + "\n", encoding="utf-8")
    print(format_summary(merged))
    for p in merged["problems"]:
        print(f"  problem: {p}")
    return 0 if merged["ledger"]["balanced"] else 1


if __name__ == "__main__":
    sys.exit(main())
