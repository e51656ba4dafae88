"""The vision stage against an emulated 300 ms model, side by side with the designs it replaces.

    python benchmarks/vision.py --out benchmarks/results/vision.json [--duration 8]

Starts the Ollama-protocol emulator (``operators.testing.ollama_server``) in its own
processes: one with plenty of slots, two with one slot each. Then, in one run:

1. framewax (the real flow: arena capture -> vision over HTTP -> encoder ->
   order -> memory sink) at 1, 4, 8, 16 and 32 calls in flight, capture at
   ``--fps``: throughput of processed observations as a fraction of the bound
   ``min(capture fps, in_flight / latency)``, and the latency the pipeline adds
   over the model call (observation arrival - capture - the server's model time).
2. The design's sequential pipeline (capture -> call -> parse, one at a time).
3. The design's thread-pool-and-queues pipeline (``ParallelProcessingManager``
   below: worker threads fed by an unbounded queue, results fetched in frame
   order by ``get_result``, which re-queues results that are not the one asked
   for) with the same number of workers as calls in flight.
4. framewax over 2 endpoints of 1 slot each (bound 2 / latency).
5. Overload: capture at 60 fps with 4 in flight, framewax and the thread-pool design.

Writes JSON to ``--out`` and a markdown table next to it (same name, ``.md``).
"""

from __future__ import annotations

import argparse
import base64
import json
import queue
import sys
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np
import requests

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.header import run_header
from flows.runner import Pipeline
from operators.capture.arena import Arena
from operators.observation import Observation
from operators.outcome import Status
from operators.reading import VISION_JSON_SCHEMA, VisionResult
from operators.testing.ollama_server import spawn_server
from operators.vision.http.backends import DEFAULT_PROMPT, encode_image

WIDTH, HEIGHT = 320, 180
MODEL = "qwen2.5vl:3b"


def pct(values: list[float], q: float) -> float:
    return float(np.percentile(values, q)) if values else float("nan")


def rate(times: list[float], lo: float, hi: float) -> float:
    """Completions per second in [lo, hi]: the slope of the cumulative count over time.

    Calls started together finish together, a model period apart, so counting
    over a window is off by up to a burst (±5 % at 3 per second over 7 s, more
    with bursts of 4), and timing first-to-last completion counts bursts in
    nominal periods. A least-squares slope of the staircase is within 0.02 %
    (checked on synthetic bursts of 1, 4 and 8 with jitter).
    """
    ts = np.sort(np.asarray([t for t in times if lo <= t <= hi]))
    if ts.size < 2:
        return 0.0
    return float(np.polyfit(ts - ts[0], np.arange(ts.size), 1)[0])


# -- framewax ----------------------------------------------------------------------


def run_framewax(
    endpoints: list[dict[str, Any]],
    in_flight: int,
    fps: float,
    duration: float,
    latency_s: float,
    staleness_ms: float,
) -> dict[str, Any]:
    frames = int(fps * duration)
    overrides = {
        "capture": {
            "source": "arena",
            "options": {"frames": frames, "fps": fps, "width": WIDTH, "height": HEIGHT, "seed": 0},
        },
        "dedup": {"enabled": False},  # every frame is a model call: the stage is what is measured
        "vision": {
            "backend": "ollama",
            "max_in_flight": in_flight,
            "max_pending": 256,
            "staleness_ms": staleness_ms,
            "deadline_ms": 10_000.0,
            "order": "newest",
            "options": {
                "endpoints": endpoints,
                "model": MODEL,
                "preload": False,
                "max_side": WIDTH,
            },
        },
        # At 120 fps bigger batches cost the encoder less CPU per frame (this box has 2 cores).
        "batch": {"max_size": 32, "timeout_ms": 50.0, "options": {"device": "cpu", "threads": 1}},
        "run": {"status_interval_s": 0.0},
    }
    pipe = Pipeline(overrides=overrides)
    arrivals: list[tuple[float, Observation]] = []
    pipe.store.subscribe(lambda obs: arrivals.append((time.time(), obs)))
    pipe.start()
    summary = pipe.wait(timeout=duration + 120)
    done = [(t, o) for t, o in arrivals if o.status is Status.PROCESSED]
    captured_start = min(o.captured_at for _, o in arrivals)
    captured_end = max(o.captured_at for _, o in arrivals)
    t_first = min(t for t, _ in done)
    lo, hi = (
        t_first + 1.0,
        captured_end,
    )  # steady state: after the first round trip, while capturing
    throughput = rate([t for t, _ in done], lo, hi)
    bound = min(fps, in_flight / latency_s)
    # Latency of frames captured in steady state: not the first second (connections
    # open, threads start) nor the last round trip (at the end of a finite stream
    # Bytewax stops notifying, and the step hands over what is in flight at once).
    steady = [
        (t, o)
        for t, o in done
        if captured_start + 1.0 <= o.captured_at <= captured_end - latency_s - 0.2
    ]
    ms = {
        "age": [(t - o.captured_at) * 1000.0 for t, o in steady],
        "added": [(t - o.captured_at) * 1000.0 - o.vision.model_ms for t, o in steady],
        "pipeline": [
            (t - o.captured_at) * 1000.0 - o.vision.queue_ms - o.vision.latency_ms
            for t, o in steady
        ],
        "call": [o.vision.latency_ms - o.vision.model_ms for _, o in steady],
        "slot_wait": [o.vision.queue_ms for _, o in steady],
    }
    dist = {k: {"p50": pct(v, 50), "p99": pct(v, 99)} for k, v in ms.items()}
    call_s = float(np.mean([o.vision.latency_ms for _, o in steady])) / 1000.0
    led = summary["ledger"]
    return {
        "design": "framewax",
        "in_flight": in_flight,
        "endpoints": len(endpoints),
        "capture_fps": fps,
        # The capture side: frames captured per second, first to last capture (a source
        # that falls behind skips ticks, and every later number rests on what it captured).
        "captured_fps_achieved": summary["capture_rate"]["fps"],
        "capture_of_target": summary["capture_rate"]["fps"] / fps,
        "missed_ticks": sum(summary["capture"]["missed_ticks"].values()),
        "dataflow_us_per_frame": {k: v["us_per_frame"] for k, v in summary["steps"].items()},
        "throughput_fps": throughput,
        "bound_fps": bound,
        "fraction_of_bound": throughput / bound,
        # The same with the call latency as measured here (the model's plus HTTP).
        "call_latency_ms": call_s * 1000.0,
        "fraction_of_bound_at_call_latency": throughput / min(fps, in_flight / call_s),
        "latency_ms": dist["age"],
        # What the dataflow adds around the HTTP call: harvest poll, order, join, sink.
        "added_latency_ms": dist["pipeline"],
        # The call beyond the server's total_duration: resize, JPEG, base64, HTTP, parse.
        "call_overhead_ms": dist["call"],
        # Waiting for a free slot (at the bound: up to one capture interval).
        "slot_wait_ms": dist["slot_wait"],
        # All of it: observation age minus the server's total_duration.
        "added_over_model_ms": dist["added"],
        "steady_frames": len(steady),
        "ledger": {k: led[k] for k in ("captured", "processed", "dropped", "failed")}
        | {"reasons": led["reasons"]},
        "balanced": led["balanced"],
        "peak_in_flight": summary["vision"]["peak_in_flight"],
    }


# -- the designs framewax replaces ---------------------------------------------------


def _call(session: requests.Session, url: str, image: np.ndarray) -> VisionResult:
    """capture -> call -> parse, as the design does it (requests, one POST per frame)."""
    b64 = base64.b64encode(encode_image(image, WIDTH)).decode()
    body = {
        "model": MODEL,
        "messages": [{"role": "user", "content": DEFAULT_PROMPT, "images": [b64]}],
        "stream": False,
        "format": VISION_JSON_SCHEMA,
        "options": {"temperature": 0},
    }
    reply = session.post(f"{url}/api/chat", json=body, timeout=30)
    reply.raise_for_status()
    return VisionResult.from_json(
        reply.json()["message"]["content"], stream_id="s", seq=0, backend="x"
    )


def run_sequential(url: str, duration: float, latency_s: float) -> dict[str, Any]:
    arena = Arena(width=WIDTH, height=HEIGHT, seed=0)
    session = requests.Session()
    ages, done = [], []
    t_start = time.time()
    t_end = t_start + duration
    while time.time() < t_end:
        arena.step(None)
        captured = time.time()
        _call(session, url, arena.render())
        done.append(time.time())
        ages.append((done[-1] - captured) * 1000.0)
    fps = rate(done, t_start + 1.0, t_end)
    return {
        "design": "sequential",
        "in_flight": 1,
        "throughput_fps": fps,
        "bound_fps": 1 / latency_s,
        "fraction_of_bound": fps * latency_s,
        "latency_ms": {"p50": pct(ages, 50), "p99": pct(ages, 99)},
    }


class ParallelProcessingManager:
    """The design's thread pool: workers take frames from an unbounded input queue and put
    results on a result queue; ``get_result(frame_id)`` polls that queue and puts back any
    result that is not the one asked for."""

    def __init__(self, process: Callable[[np.ndarray], Any], num_workers: int) -> None:
        self.process = process
        self.input_queue: queue.Queue[tuple[int, np.ndarray]] = queue.Queue()
        self.result_queue: queue.Queue[tuple[int, Any]] = queue.Queue()
        self.running = True
        self.executor = ThreadPoolExecutor(max_workers=num_workers)
        for _ in range(num_workers):
            self.executor.submit(self._worker)

    def _worker(self) -> None:
        while self.running:
            try:
                frame_id, frame = self.input_queue.get(timeout=0.1)
            except queue.Empty:
                continue
            try:
                result = self.process(frame)
            except Exception as ex:
                result = ex
            self.result_queue.put((frame_id, result))

    def submit(self, frame_id: int, frame: np.ndarray) -> None:
        self.input_queue.put((frame_id, frame))

    def get_result(self, frame_id: int, timeout: float = 30.0) -> Any:
        deadline = time.time() + timeout
        while time.time() < deadline:
            try:
                rid, result = self.result_queue.get(timeout=0.01)
            except queue.Empty:
                continue
            if rid == frame_id:
                return result
            self.result_queue.put((rid, result))  # someone else's: put it back
        return None

    def shutdown(self) -> None:
        self.running = False
        self.executor.shutdown(wait=True, cancel_futures=True)


def run_thread_pool(
    url: str, workers: int, fps: float, duration: float, latency_s: float
) -> dict[str, Any]:
    local = threading.local()

    def process(image: np.ndarray) -> VisionResult:
        if not hasattr(local, "session"):
            local.session = requests.Session()
        return _call(local.session, url, image)

    mgr = ParallelProcessingManager(process, workers)
    captured: dict[int, float] = {}
    arena = Arena(width=WIDTH, height=HEIGHT, seed=0)
    n = int(fps * duration)
    t_start = time.time()

    def capture() -> None:
        for i in range(n):
            wake = t_start + i / fps
            time.sleep(max(0.0, wake - time.time()))
            arena.step(None)
            captured[i] = time.time()
            mgr.submit(i, arena.render())

    cap = threading.Thread(target=capture)
    cap.start()
    arrivals: list[tuple[float, float]] = []  # (arrival, age ms)
    stop_at = t_start + duration + 2.0  # results still queued then are never delivered
    for i in range(n):
        if time.time() > stop_at:
            break
        result = mgr.get_result(i, timeout=max(0.01, stop_at - time.time()))
        if result is None:
            break
        now = time.time()
        arrivals.append((now, (now - captured[i]) * 1000.0))
    cap.join()
    mgr.shutdown()
    lo, hi = t_start + 1.0 + latency_s, t_start + duration
    throughput = rate([t for t, _ in arrivals], lo, hi)
    bound = min(fps, workers / latency_s)
    ages = [a for _, a in arrivals]
    return {
        "design": "thread_pool",
        "in_flight": workers,
        "capture_fps": fps,
        "throughput_fps": throughput,
        "bound_fps": bound,
        "fraction_of_bound": throughput / bound,
        "latency_ms": {"p50": pct(ages, 50), "p99": pct(ages, 99)},
        "delivered": len(arrivals),
        "captured": n,
    }


# -- main ------------------------------------------------------------------------------


def main() -> None:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--duration", type=float, default=8.0, help="seconds of capture per run")
    ap.add_argument("--latency-ms", type=float, default=300.0)
    ap.add_argument("--fps", type=float, default=120.0, help="capture rate for the in-flight sweep")
    ap.add_argument("--levels", default="1,4,8,16,24,32")
    ap.add_argument("--staleness-ms", type=float, default=200.0)
    args = ap.parse_args()
    lat = args.latency_ms / 1000.0
    levels = [int(x) for x in args.levels.split(",")]
    srv_args = ["--latency-ms", str(args.latency_ms)]
    procs = []
    try:
        big, big_host = spawn_server([*srv_args, "--parallel", str(4 * max(levels))])
        one_a, host_a = spawn_server([*srv_args, "--parallel", "1"])
        one_b, host_b = spawn_server([*srv_args, "--parallel", "1"])
        procs = [big, one_a, one_b]
        url = f"http://{big_host}"
        rows: list[dict[str, Any]] = []

        def show(row: dict[str, Any]) -> None:
            rows.append(row)
            extra = ""
            if "added_latency_ms" in row:
                extra = (
                    f"  added p50 {row['added_latency_ms']['p50']:.2f} p99 {row['added_latency_ms']['p99']:.2f} ms"
                    f" (call overhead p50 {row['call_overhead_ms']['p50']:.2f}, slot wait p50 "
                    f"{row['slot_wait_ms']['p50']:.2f}, all over model p50 {row['added_over_model_ms']['p50']:.2f}"
                    f" p99 {row['added_over_model_ms']['p99']:.2f})"
                )
            captured = (
                f" (captured {row['captured_fps_achieved']:.1f} = {row['capture_of_target']:.3f})"
                if "capture_of_target" in row
                else ""
            )
            print(
                f"{row['design']:<12} in flight {row['in_flight']:>2} endpoints {row.get('endpoints', 1)} "
                f"capture {row.get('capture_fps', 0):5.0f} fps{captured}: {row['throughput_fps']:6.2f} fps = "
                f"{row['fraction_of_bound']:.3f} of {row['bound_fps']:.2f}; latency p50 "
                f"{row['latency_ms']['p50']:.0f} ms p99 {row['latency_ms']['p99']:.0f} ms{extra}",
                flush=True,
            )

        show(run_sequential(url, args.duration, lat))
        for n in levels:
            show(
                run_framewax(
                    [{"url": url, "max_in_flight": n}],
                    n,
                    args.fps,
                    args.duration,
                    lat,
                    args.staleness_ms,
                )
            )
            show(run_thread_pool(url, n, args.fps, args.duration, lat))
        two = [
            {"url": f"http://{host_a}", "max_in_flight": 1},
            {"url": f"http://{host_b}", "max_in_flight": 1},
        ]
        show(
            run_framewax(two, 2, args.fps, args.duration, lat, args.staleness_ms)
            | {"scenario": "2 endpoints x 1 slot"}
        )
        over = run_framewax(
            [{"url": url, "max_in_flight": 4}], 4, 60.0, args.duration, lat, args.staleness_ms
        )
        show(over | {"scenario": "overload"})
        show(run_thread_pool(url, 4, 60.0, args.duration, lat) | {"scenario": "overload"})
    finally:
        for p in procs:
            p.terminate()
            p.wait(timeout=10)

    fw = {r["in_flight"]: r for r in rows if r["design"] == "framewax" and "scenario" not in r}
    seq = next(r for r in rows if r["design"] == "sequential")
    top = max(levels)
    checks = {
        "min_capture_of_target": min(r["capture_of_target"] for r in fw.values()),
        "min_fraction_of_bound": min(r["fraction_of_bound"] for r in fw.values()),
        "min_fraction_of_bound_at_call_latency": min(
            r["fraction_of_bound_at_call_latency"] for r in fw.values()
        ),
        "min_fraction_thread_pool": min(
            r["fraction_of_bound"] for r in rows if r["design"] == "thread_pool"
        ),
        f"speedup_vs_sequential_at_{top}": fw[top]["throughput_fps"] / seq["throughput_fps"],
        "added_latency_p50_ms_max": max(r["added_latency_ms"]["p50"] for r in fw.values()),
        "added_latency_p99_ms_max": max(r["added_latency_ms"]["p99"] for r in fw.values()),
        "age_minus_model_p50_ms_max": max(r["added_over_model_ms"]["p50"] for r in fw.values()),
        "age_minus_model_p99_ms_max": max(r["added_over_model_ms"]["p99"] for r in fw.values()),
        "two_endpoints_fraction": next(
            r for r in rows if r.get("scenario") == "2 endpoints x 1 slot"
        )["fraction_of_bound"],
        "overload_latency_p99_ms": over["latency_ms"]["p99"],
        "overload_latency_budget_ms": args.latency_ms + args.staleness_ms,
    }
    result = {
        **run_header("vision"),
        "model_latency_ms": args.latency_ms,
        "staleness_ms": args.staleness_ms,
        "duration_s": args.duration,
        "rows": rows,
        "checks": checks,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    md = [
        f"Emulated model: {args.latency_ms:.0f} ms per call; capture {args.fps:.0f} fps (overload: 60 fps); "
        f"{args.duration:.0f} s per run. `{result['command']}`",
        "",
        "| design | scenario | in flight | capture fps (of target) | throughput fps | bound fps | fraction | latency p50 / p99 ms "
        "| added by the dataflow p50 / p99 ms | HTTP call overhead p50 / p99 ms | slot wait p50 ms "
        "| age − model time p50 / p99 ms |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        added = r.get("added_latency_ms")
        md.append(
            f"| {r['design']} | {r.get('scenario', '')} | {r['in_flight']} | "
            + (
                f"{r['captured_fps_achieved']:.1f} ({r['capture_of_target']:.3f}) | "
                if "capture_of_target" in r
                else "– | "
            )
            + f"{r['throughput_fps']:.2f} | "
            f"{r['bound_fps']:.2f} | {r['fraction_of_bound']:.3f} | {r['latency_ms']['p50']:.0f} / "
            f"{r['latency_ms']['p99']:.0f} | "
            + (
                f"{added['p50']:.2f} / {added['p99']:.2f} | {r['call_overhead_ms']['p50']:.2f} / "
                f"{r['call_overhead_ms']['p99']:.2f} | {r['slot_wait_ms']['p50']:.2f} | "
                f"{r['added_over_model_ms']['p50']:.2f} / {r['added_over_model_ms']['p99']:.2f} |"
                if added
                else "– | – | – | – |"
            )
        )
    md += ["", "checks: " + ", ".join(f"{k} = {v:.3f}" for k, v in checks.items())]
    args.out.with_suffix(".md").write_text("\n".join(md) + "\n")
    print(json.dumps(checks, indent=2))


if __name__ == "__main__":
    main()
