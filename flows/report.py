"""What a run says about itself: the live status line and the end-of-run summary.

A :class:`Reporter` is fed every resolved item by the memory sink
(``on_item``); it scores HUD readings against ground truth where frames carry
it (:class:`HudScore`: over the model's reads and over everything delivered),
prints a status line every ``[run] status_interval_s``, and when the flow ends
builds the summary (ledger, throughput, latency, HUD accuracy, each stage's
``metrics()``), prints it (:func:`format_summary`) and writes it as JSON where
``FRAMEWAX_SUMMARY`` names a file. It reads the run's state; the only thing it
sets on the run is the exit code a ledger that does not balance calls for.
"""

from __future__ import annotations

import json
import os
import sys
import threading
import time
from collections import OrderedDict, deque
from pathlib import Path
from typing import TYPE_CHECKING, Any, TextIO

from operators.observation import Observation
from operators.outcome import Outcome, Status
from operators.stats import percentiles
from operators.truth import HUD_FIELDS

if TYPE_CHECKING:
    from flows.runtime import Runtime

__all__ = ["HudScore", "Reporter", "format_summary"]


class HudScore:
    """HUD fields and enemy counts against ground truth, over a set of observations."""

    def __init__(self) -> None:
        self.frames = 0
        self.exact = 0
        self.fields: dict[str, int] = dict.fromkeys(HUD_FIELDS, 0)
        self.known: dict[str, int] = dict.fromkeys(HUD_FIELDS, 0)
        self.enemy_count = 0
        self.enemy_frames = 0

    def add(self, obs: Observation) -> bool:
        """Score one observation (it must have ``truth``); ``True`` if its HUD is exact."""
        truth, hud = obs.truth, obs.vision.hud()
        assert truth is not None
        self.frames += 1
        exact = True
        for f in HUD_FIELDS:
            want = getattr(truth, f)
            if want is None:
                continue  # a field this game does not have: not scored
            self.known[f] += 1
            if hud[f] == want:
                self.fields[f] += 1
            else:
                exact = False
        self.exact += exact
        if truth.enemies is not None:
            self.enemy_frames += 1
            self.enemy_count += len(obs.vision.enemies) == len(truth.enemies)
        return exact

    def summary(self) -> dict[str, Any]:
        n = self.frames
        return {
            "frames": n,
            "exact": self.exact / n if n else None,
            "fields": {
                f: (v / self.known[f] if self.known[f] else None) for f, v in self.fields.items()
            },
            "enemy_count": self.enemy_count / self.enemy_frames if self.enemy_frames else None,
        }


class Reporter:
    """Live status line and end-of-run summary of a :class:`Runtime`."""

    KEPT_TRUTHS = 4096
    """Ground truth of this many recent model-read frames is kept, to tell whether a
    duplicate's reused HUD was stale (the screen's HUD had changed since)."""

    def __init__(self, rt: Runtime, stream: TextIO | None = None) -> None:
        self.rt = rt
        self.out = stream or sys.stderr
        self.t0 = time.time()
        self.t_end: float | None = None
        self._lock = threading.Lock()
        self.latency_ms: deque[float] = deque(maxlen=100_000)
        self.resolved = 0
        self.read = HudScore()  # observations the model read (processed)
        self.delivered = HudScore()  # every observation the agent got, against its own frame
        self.stale_frames = 0  # reused readings whose frame's HUD had changed since
        self._truths: OrderedDict[tuple[str, int], tuple[Any, ...]] = OrderedDict()
        self._last_print = time.monotonic()
        self._last_counts = (0, 0)
        self.partitions = 0
        self.closed = 0
        self.workers: list[int] = []  # this process's worker indexes
        self.worker_count = 0  # every process's workers together
        self.summary_written = False
        self.balanced: bool | None = None  # whether the ledger balanced, once finished
        self.first_capture: float | None = None  # the earliest capture time resolved here
        self.last_output: float | None = None  # when the last frame was resolved here

    def on_item(self, item: Observation | Outcome) -> None:
        now = time.time()
        with self._lock:
            self.resolved += 1
            if self.first_capture is None or item.captured_at < self.first_capture:
                self.first_capture = item.captured_at
            self.last_output = now
            if isinstance(item, Observation):
                self.latency_ms.append((now - item.captured_at) * 1000.0)
                if self.rt.metrics is not None:
                    self.rt.metrics.age.observe(now - item.captured_at)
                if item.truth is not None:
                    self._score(item)
        interval = self.rt.config.run.status_interval_s
        if self.rt.report and interval > 0 and time.monotonic() - self._last_print >= interval:
            self._print_status()

    def _score(self, obs: Observation) -> None:
        assert obs.truth is not None
        hud = tuple(getattr(obs.truth, f) for f in HUD_FIELDS)
        self.delivered.add(obs)
        if obs.status is Status.PROCESSED:
            self.read.add(obs)
            self._truths[(obs.stream_id, obs.seq)] = hud
            while len(self._truths) > self.KEPT_TRUTHS:
                self._truths.popitem(last=False)
            return
        source = self._truths.get((obs.stream_id, obs.source_seq))
        if source is not None and source != hud:
            self.stale_frames += 1

    def _print_status(self) -> None:
        now = time.monotonic()
        c = self.rt.ledger.counts()
        dt = max(now - self._last_print, 1e-9)
        fin = (c["captured"] - self._last_counts[0]) / dt
        fout = (self.resolved - self._last_counts[1]) / dt
        self._last_print, self._last_counts = now, (c["captured"], self.resolved)
        done = sum(c[s.value] for s in Status)
        dup = 100.0 * (c["duplicate"] + c["cached"]) / max(done, 1)
        lat = percentiles(list(self.latency_ms)[-500:])
        line = (
            f"[framewax] in {fin:5.1f}/s  out {fout:5.1f}/s  in flight {c['in_flight']:3d}  "
            f"dup {dup:4.1f}%  dropped {c['dropped']}  failed {c['failed']}  "
            f"latency p50 {lat['p50']:6.1f} ms  p99 {lat['p99']:6.1f} ms"
        )
        print(line, file=self.out, flush=True)

    # -- end of run ----------------------------------------------------------
    def partition_built(self, worker_index: int = 0, worker_count: int = 1) -> None:
        with self._lock:
            self.partitions += 1
            self.workers.append(worker_index)
            self.worker_count = worker_count

    @property
    def process(self) -> tuple[int, int]:
        """``(index, count)`` of this process among the run's processes (``-i`` / ``-a``),
        from the workers it holds (``-w`` per process, the same in each)."""
        with self._lock:
            here = max(len(self.workers), 1)
            if not self.workers or self.worker_count <= here:
                return 0, 1
            return min(self.workers) // here, self.worker_count // here

    def summary_path(self) -> Path | None:
        """``FRAMEWAX_SUMMARY``; with several processes, ``run.json`` becomes ``run.<i>.json``
        per process (merge them with ``python -m flows.summary``)."""
        path = os.environ.get("FRAMEWAX_SUMMARY")
        if not path:
            return None
        index, count = self.process
        p = Path(path)
        return p if count == 1 else p.with_name(f"{p.stem}.{index}{p.suffix}")

    def partition_closed(self) -> bool:
        """A sink partition closed; ``True`` when it was this process's last."""
        with self._lock:
            self.closed += 1
            return self.closed >= self.partitions

    def finish(self) -> dict[str, Any]:
        """The run has ended (its ledger closed): build the summary; print and write it once
        (when the run reports). ``balanced`` keeps whether its ledger balanced."""
        if self.t_end is None:
            self.t_end = time.time()
        summary = self.summary()
        self.balanced = bool(summary["ledger"]["balanced"])
        if self.rt.report and not self.summary_written:
            self.summary_written = True
            if self.rt.config.run.summary:
                print(format_summary(summary), file=self.out, flush=True)
            path = self.summary_path()
            if path is not None:
                path.write_text(json.dumps(summary, indent=2) + "\n", encoding="utf-8")
        return summary

    def summary(self) -> dict[str, Any]:
        rt = self.rt
        end = self.t_end or time.time()
        duration = max(end - self.t0, 1e-9)
        ledger = rt.ledger.summary()
        with self._lock:
            read = self.read.summary()
            accuracy = {
                **read,  # the model's reads, at the top level as before
                "read": read,
                "delivered": self.delivered.summary(),
                "stale_frames": self.stale_frames,
            }
            latency = percentiles(self.latency_ms)
            resolved = self.resolved
            window = {"first_capture": self.first_capture, "last_output": self.last_output}
        index, count = self.process
        # Rates are over the working window, first capture to last output: start-up (models
        # loading) and the wait before the first frame are not the pipeline's rate.
        first, last = window["first_capture"], window["last_output"]
        working = max(last - first, 1e-9) if first is not None and last is not None else duration
        out: dict[str, Any] = {
            "config": rt.config.path,
            "process": {"index": index, "count": count},
            "duration_s": duration,
            "working_s": working,
            "startup_s": (first - self.t0) if first is not None else None,
            "ledger": ledger,
            "fps": resolved / working,
            "captured_fps": ledger["captured"] / working,
            "processed_fps": ledger["processed"] / working,
            "latency_ms": latency,
            "hud_accuracy": accuracy,
            "placement": rt.placement.snapshot(),
            "window": window,
            "capture_rate": _capture_rate(ledger["captured"], rt),
            "steps": rt.times.summary(ledger["captured"]),
            "lag": rt.lag.summary(),
        }
        for name, stage in rt.stages.items():
            out[name] = stage.metrics()
        return out


def _capture_rate(captured: int, rt: Runtime) -> dict[str, Any]:
    """Frames captured per second between this process's first and last capture (all its
    streams together), against the target (``fps`` × streams, where the source says)."""
    first, last = rt.first_capture_at, rt.last_capture_at
    span = (last - first) if first is not None and last is not None else 0.0
    fps = (captured - 1) / span if captured > 1 and span > 0 else 0.0
    target = 0.0
    cap = rt.stages.get("capture")
    source = getattr(cap, "source", None)
    per_stream = float(getattr(source, "fps", 0.0) or 0.0)
    if per_stream > 0 and cap is not None:
        target = per_stream * len(rt.placement.snapshot()["streams"] or rt.stream_ids())
    return {
        "fps": fps,
        "target_fps": target,
        "of_target": fps / target if target else None,
        "span_s": span,
    }


def format_summary(s: dict[str, Any]) -> str:
    led = s["ledger"]
    rows = [("captured", led["captured"])]
    rows += [
        (k, led[k]) for k in ("processed", "duplicate", "cached", "dropped", "failed", "in_flight")
    ]
    lines = ["", "framewax run summary" + (f" ({s['config']})" if s["config"] else ""), "-" * 44]
    lines += [f"  {k:<22}{v:>10}" for k, v in rows]
    for reason, n in sorted(led["reasons"].items()):
        lines.append(f"    {reason:<20}{n:>10}")
    resolved = sum(led[k] for k in ("processed", "duplicate", "cached", "dropped", "failed"))
    ok = "balanced" if led["balanced"] else "NOT BALANCED"
    lines.append(
        f"  ledger: captured {led['captured']} = {resolved} resolved + {led['in_flight']} in flight ({ok})"
    )
    if led.get("unresolved"):
        lines.append(
            f"    INCOMPLETE: {led['unresolved']} frames were still unresolved when the run ended"
        )
    if led.get("violation_count"):
        lines.append(f"    {led['violation_count']} contract violations; the first:")
    for v in led["violations"]:
        lines.append(f"    violation: {v}")
    lat, acc = s["latency_ms"], s["hud_accuracy"]
    lines.append(
        f"  throughput             {s['fps']:8.1f} frames/s  ({s['processed_fps']:.1f} processed/s)"
    )
    lines.append(f"  latency capture→obs    p50 {lat['p50']:.1f} ms  p99 {lat['p99']:.1f} ms")
    rate = s.get("capture_rate") or {}
    if rate.get("fps"):
        target = (
            f" of {rate['target_fps']:.1f} ({rate['of_target']:.3f})"
            if rate.get("target_fps")
            else ""
        )
        lines.append(f"  capture rate           {rate['fps']:8.1f} frames/s{target}")
    lag = s.get("lag") or {}
    if (lag.get("observation_ms") or {}).get("n"):
        o = lag["observation_ms"]
        lines.append(
            f"  agent's lag            observation p50 {o['p50']:.1f} ms  p99 {o['p99']:.1f} ms"
        )
        a, b = lag["action_to_pixels_ms"], lag["action_to_observation_ms"]
        if a.get("n"):
            lines.append(
                f"    shot probes: action→pixels p50 {a['p50']:.0f} / p99 {a['p99']:.0f} ms, "
                f"action→observation p50 {b['p50']:.0f} / p99 {b['p99']:.0f} ms "
                f"({a['n']} of {lag['probes']} answered)"
            )
    if lag.get("periods"):
        t = lag["thinking_ms"]
        late = lag["overruns"]
        lines.append(
            f"  control periods        {lag['periods']}, agent thinking between them p50 "
            f"{t['p50']:.1f} ms / p99 {t['p99']:.1f} ms; late (over a period) on {late}"
        )
        if late:
            lines.append(
                f"    WARNING: the agent was late on {late} of {lag['periods']} control periods: "
                "the game ran a whole period with no input (a slower control_hz, or a "
                "faster policy)"
            )
    missed = sum((s.get("capture") or {}).get("missed_ticks", {}).values())
    if missed:
        lines.append(
            f"  frames lost            {missed} capture ticks missed (capture fell behind)"
        )
    steps = s.get("steps") or {}
    if steps:
        cost = "  ".join(f"{k} {v['us_per_frame']:.0f}" for k, v in steps.items())
        lines.append(f"  dataflow µs per frame  {cost}")
    vis = s.get("vision", {})
    if vis:
        lines.append(
            f"  vision ({vis['backend']})      {vis['completed']} calls, "
            f"p50 {vis['call_ms']['p50']:.1f} ms, peak {vis['peak_in_flight']} in flight"
        )
    if vis.get("regions_without_text"):
        lines.append(
            f"    WARNING: HUD regions {', '.join(vis['regions_without_text'])} held no readable "
            "number on the first frames (python -m flows.calibrate RECORDING finds them)"
        )
    if vis.get("rejected"):
        unsure = ", ".join(f"{k} {v}" for k, v in sorted(vis["rejected"].items()))
        lines.append(f"    readings not trusted (None instead): {unsure}")
    lines.extend(f"    WARNING: {w}" for w in vis.get("recalibrate", []))
    for ep in vis.get("endpoints", []):
        fails = ", ".join(f"{k} {v}" for k, v in sorted(ep["failures"].items())) or "none"
        lines.append(
            f"    {ep['url']}: {ep['ok']}/{ep['requests']} ok, {ep['retries']} retries, "
            f"peak {ep['peak_in_flight']}/{ep['limit']} in flight, breaker {ep['breaker']}, "
            f"p50 {ep['latency_ms']['p50']:.0f} ms; failures: {fails}"
        )
    b = s.get("batch")
    if b:
        lines.append(
            f"  encoder                {b['batches']} batches, mean size {b['mean_size']:.1f}"
        )
    if acc["frames"]:
        fields = "  ".join(f"{k} {v:.0%}" for k, v in acc["fields"].items() if v is not None)
        lines.append(
            f"  HUD accuracy           {acc['exact']:.1%} exact over {acc['frames']} model reads"
        )
        enemies = (
            f"  enemies {acc['enemy_count']:.0%}" if acc.get("enemy_count") is not None else ""
        )
        lines.append(f"    {fields}{enemies}")
        got = acc.get("delivered") or {}
        if got.get("frames"):
            lines.append(
                f"    delivered: {got['exact']:.1%} exact over {got['frames']} observations "
                f"(each against its own frame); {acc.get('stale_frames', 0)} showed a stale HUD"
            )
    else:
        lines.append("  HUD accuracy           n/a (no ground truth)")
    place = s.get("placement") or {}
    if place.get("worker_count", 0) > 1:
        lines.append(
            f"  placement              {len(place['streams'])} streams on "
            f"{place['worker_count']} workers; {place['crossed_frames']} frames "
            f"({place['crossed_bytes'] / 1e6:.1f} MB) crossed processes"
        )
    cap = s.get("capture", {})
    for err in cap.get("errors", []):
        lines.append(f"  capture error: {err}")
    if cap.get("error_count", 0) > len(cap.get("errors", [])):
        lines.append(f"  ... {cap['error_count']} capture errors in all")
    return "\n".join(lines)
