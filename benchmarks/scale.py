"""Several streams over one worker, ``-w 2`` and two processes, side by side in one run.

    python benchmarks/scale.py --out benchmarks/results/scale.json [--duration 12]

Runs the main job (``python -m bytewax.run flows.vision``, as a user does) in
each mode, with 2 and 4 arena streams, on two workloads:

- **cpu**: dedup off, so every frame is offered to the in-process OCR model
  (more than it can read: the model is the bound), one call at a time
  per process (``max_in_flight = 1``: one core's worth of model per process);
  **cpu-2threads**: two calls at a time per process (the default), which on a
  2-core machine already fills both cores from one process. An in-process
  model's limit is per process (each process has its own model and cores);
- **http**: an emulated vision-language model (``operators.testing.ollama_server``, its own
  process) answering in ``--latency-ms`` with unlimited slots, dedup off, and
  ``vision.max_in_flight`` calls for the whole cluster: Little's law bounds
  processed frames/s by ``min(offered, max_in_flight / latency)``.

Modes: one process with one worker; one process with ``-w 2``; two processes on
loopback (``-i 0/1 -a``), frames kept in the process that captured them; and two
processes with ``[run] placement = "hash"`` (Bytewax's placement by stream
name, what framewax did before), to show what locality saves.

For every run it reports frames/s (captured) and processed/s over the cluster's
window (first capture to last output, merged over the processes with
``flows.summary``), each as a ratio to one worker, the bytes of frames that
crossed processes (per captured frame), the cores the run's processes used, and
whether the merged ledger balanced. The bounds: on ``http``, Little's law; on
``cpu``, what the machine's cores allow (``min(processes, cores / cores one
process used)``): a second process cannot add cores the first already uses.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks.header import run_header  # noqa: E402
from flows.cluster import loopback_addresses  # noqa: E402
from flows.summary import merge  # noqa: E402
from operators.testing.ollama_server import spawn_server  # noqa: E402

CPU_WORKLOADS = {"cpu": 1, "cpu-2threads": 2}
"""The local model's calls in flight per process (each call is one ONNX thread)."""

MODES = {
    "1 worker": {"processes": 1, "workers": 1, "placement": "local"},
    "-w 2": {"processes": 1, "workers": 2, "placement": "local"},
    "2 processes": {"processes": 2, "workers": 1, "placement": "local"},
    "2 processes, hash placement": {"processes": 2, "workers": 1, "placement": "hash"},
}


def config_text(workload: str, streams: int, args: argparse.Namespace, placement: str) -> str:
    fps = args.fps
    frames = int(fps * args.duration)
    head = (
        f'[capture]\nsource = "arena"\n[capture.options]\nframes = {frames}\nfps = {fps}\n'
        f"streams = {streams}\nwidth = 640\nheight = 360\nseed = 0\n"
    )
    tail = (
        '[batch.options]\ndevice = "cpu"\nthreads = 1\n'
        f'[run]\nstatus_interval_s = 0.0\nsummary = false\nplacement = "{placement}"\n'
    )
    if workload.startswith("cpu"):
        threads = CPU_WORKLOADS[workload]
        vision = (
            "[dedup]\nenabled = false\n"  # every frame is offered to the model: it is the bound
            f'[vision]\nbackend = "local"\nmax_in_flight = {threads}\n'
        )
        return head + vision + tail
    vision = (
        "[dedup]\nenabled = false\n"
        f'[vision]\nbackend = "ollama"\nmax_in_flight = {args.in_flight}\nmax_pending = 64\n'
        "staleness_ms = 1500.0\n"
        f'[vision.options]\nmodel = "qwen2.5vl:3b"\nmax_side = 512\n'
    )
    return head + vision + tail


def run_once(
    workload: str, streams: int, mode: str, args: argparse.Namespace, host: str
) -> dict[str, Any]:
    m = MODES[mode]
    with tempfile.TemporaryDirectory(prefix="framewax-scale-") as tmp:
        cfg = Path(tmp) / "scale.toml"
        cfg.write_text(config_text(workload, streams, args, m["placement"]))
        env = dict(
            os.environ,
            FRAMEWAX_CONFIG=str(cfg),
            FRAMEWAX_SUMMARY=str(Path(tmp) / "run.json"),
            OLLAMA_HOST=host,
            PYTHONPATH=str(ROOT),
        )
        cmd = [sys.executable, "-m", "bytewax.run", "flows.vision", "-w", str(m["workers"])]
        if m["processes"] > 1:
            addresses = loopback_addresses(m["processes"])
            cmds = [[*cmd, "-i", str(i), "-a", addresses] for i in range(m["processes"])]
        else:
            cmds = [cmd]
        t0 = time.time()
        cpu0 = resource.getrusage(resource.RUSAGE_CHILDREN)
        procs = [
            subprocess.Popen(c, cwd=ROOT, env=env, stderr=subprocess.PIPE, text=True) for c in cmds
        ]
        try:
            errs = [p.communicate(timeout=args.duration * 6 + 120)[1] for p in procs]
        finally:
            for p in procs:
                p.kill()
        wall = time.time() - t0
        cpu1 = resource.getrusage(resource.RUSAGE_CHILDREN)
        cpu_s = (cpu1.ru_utime - cpu0.ru_utime) + (cpu1.ru_stime - cpu0.ru_stime)
        codes = [p.returncode for p in procs]
        if codes != [0] * len(procs):
            tails = "\n".join(e[-2000:] for e in errs)
            msg = f"{workload}/{streams}/{mode}: exit codes {codes}\n{tails}"
            raise RuntimeError(msg)
        if m["processes"] > 1:
            parts = [
                json.loads((Path(tmp) / f"run.{i}.json").read_text()) for i in range(m["processes"])
            ]
            summary = merge(parts)
        else:
            summary = json.loads((Path(tmp) / "run.json").read_text())
    led, win, place = summary["ledger"], summary["window"], summary["placement"]
    window = max(win["last_output"] - win["first_capture"], 1e-9)
    return {
        "workload": workload,
        "streams": streams,
        "mode": mode,
        **m,
        "wall_s": wall,
        "cpu_s": cpu_s,
        "cores_used": cpu_s / wall,
        "window_s": window,
        "captured": led["captured"],
        "processed": led["processed"],
        "frames_per_s": led["captured"] / window,
        "processed_per_s": led["processed"] / window,
        "reasons": led["reasons"],
        "balanced": bool(led["balanced"]),
        "crossed_frames": place.get("crossed_frames", 0),
        "crossed_bytes": place.get("crossed_bytes", 0),
        "crossed_bytes_per_frame": place.get("crossed_bytes", 0) / max(led["captured"], 1),
        "latency_ms": summary["latency_ms"],
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", type=Path, default=ROOT / "benchmarks/results/scale.json")
    ap.add_argument("--duration", type=float, default=12.0, help="seconds of capture per run")
    ap.add_argument("--fps", type=float, default=30.0, help="capture rate per stream")
    ap.add_argument("--latency-ms", type=float, default=300.0)
    ap.add_argument("--in-flight", type=int, default=8, help="vision.max_in_flight (cluster)")
    ap.add_argument("--streams", type=int, nargs="+", default=[2, 4])
    ap.add_argument("--workloads", nargs="+", default=[*CPU_WORKLOADS, "http"])
    ap.add_argument("--modes", nargs="+", default=list(MODES))
    args = ap.parse_args()

    server, host = spawn_server(["--latency-ms", str(args.latency_ms), "--parallel", "256"])
    rows: list[dict[str, Any]] = []
    try:
        for workload in args.workloads:
            for streams in args.streams:
                base: dict[str, Any] | None = None
                for mode in args.modes:
                    row = run_once(workload, streams, mode, args, host)
                    if mode == "1 worker":
                        base = row
                    if base is not None:
                        row["frames_ratio"] = row["frames_per_s"] / base["frames_per_s"]
                        row["processed_ratio"] = row["processed_per_s"] / base["processed_per_s"]
                    if workload.startswith("cpu") and base is not None:
                        # what the cores allow: one process used base["cores_used"] of them
                        cores = os.cpu_count() or 1
                        bound = min(float(row["processes"]), cores / base["cores_used"])
                        row["speedup_bound"] = bound
                        row["of_speedup_bound"] = row["processed_ratio"] / bound
                    if workload == "http":
                        offered = streams * args.fps
                        bound = min(offered, args.in_flight / (args.latency_ms / 1000.0))
                        row["bound_per_s"] = bound
                        row["of_bound"] = row["processed_per_s"] / bound
                    rows.append(row)
                    print(_line(row), flush=True)
    finally:
        server.terminate()
        server.wait(timeout=10)
    out = {
        **run_header("scale"),
        "settings": {
            "duration_s": args.duration,
            "fps_per_stream": args.fps,
            "latency_ms": args.latency_ms,
            "max_in_flight": args.in_flight,
            "frame_bytes": 640 * 360 * 3,
        },
        "rows": rows,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(out, indent=2) + "\n", encoding="utf-8")
    print(f"wrote {args.out}")


def _line(r: dict[str, Any]) -> str:
    extra = f"  {r['of_bound']:.2f} of bound" if "of_bound" in r else ""
    if "speedup_bound" in r:
        extra = f"  (cores allow x{r['speedup_bound']:.2f}: {r['of_speedup_bound']:.2f} of it)"
    extra += f"  {r['cores_used']:.2f} cores"
    ratio = (
        f"  x{r['frames_ratio']:.2f} frames  x{r['processed_ratio']:.2f} processed"
        if "processed_ratio" in r
        else ""
    )
    return (
        f"{r['workload']:<4} {r['streams']} streams  {r['mode']:<28} "
        f"{r['frames_per_s']:6.1f} frames/s  {r['processed_per_s']:6.1f} processed/s{ratio}{extra}  "
        f"crossed {r['crossed_bytes_per_frame'] / 1e3:7.1f} kB/frame  "
        f"{'balanced' if r['balanced'] else 'NOT BALANCED'}"
    )


if __name__ == "__main__":
    main()
