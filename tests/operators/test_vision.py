import threading
import time

import bytewax.operators as op
from bytewax.dataflow import Dataflow
from bytewax.testing import TestingSink, TestingSource, cluster_main, run_main

from operators._pool import BoundedPool
from operators.errors import VisionError
from operators.local_model import LocalVisionBackend, parse_hud_text
from operators.types import Frame, Outcome, Status, VisionResult
from operators.vision import ServeOrder, VisionMetrics, VisionPolicy, call_vision
from tests.conftest import solid


class SleepyBackend:
    """Takes `delay` s a call and records how many calls overlap; fails seqs in `fail`."""

    name = "sleepy"

    def __init__(self, delay=0.05, fail=(), crash=()):
        self.delay, self.fail, self.crash = delay, set(fail), set(crash)
        self.lock = threading.Lock()
        self.now = self.peak = 0

    def infer(self, frame):
        with self.lock:
            self.now += 1
            self.peak = max(self.peak, self.now)
        try:
            time.sleep(self.delay)
            if frame.seq in self.fail:
                raise VisionError("parse", f"prose instead of JSON for {frame.seq}")
            if frame.seq in self.crash:
                raise RuntimeError("backend bug")
            return VisionResult(frame.stream_id, frame.seq, health=frame.seq, backend=self.name)
        finally:
            with self.lock:
                self.now -= 1


def _run(frames, backend, policy, workers=1):
    flow = Dataflow("vision_test")
    inp = op.key_on("key", op.input("in", flow, TestingSource(frames)), lambda f: f.stream_id)
    pool, metrics = BoundedPool("test-vision", policy.max_in_flight), VisionMetrics()
    out = call_vision("vision", inp, backend, policy, pool, metrics)
    got = []
    op.output("out", out, TestingSink(got))
    if workers == 1:
        run_main(flow)
    else:
        cluster_main(flow, [], 0, worker_count_per_proc=workers)
    pool.close()
    return [x for _, x in got], pool, metrics


def test_every_frame_gets_one_result_with_many_in_flight():
    backend = SleepyBackend(delay=0.05)
    frames = [solid(i) for i in range(24)]
    policy = VisionPolicy(max_in_flight=8, max_pending=100, staleness_ms=0, order=ServeOrder.OLDEST)
    got, pool, metrics = _run(frames, backend, policy)
    assert sorted(r.seq for r in got) == list(range(24))
    assert all(isinstance(r, VisionResult) for r in got)
    assert backend.peak == 8 and pool.peak == 8  # really concurrent, never over the bound
    assert metrics.completed == 24


def test_failures_become_outcomes_and_the_flow_goes_on():
    backend = SleepyBackend(delay=0.0, fail={2}, crash={4})
    got, _, metrics = _run(
        [solid(i) for i in range(6)],
        backend,
        VisionPolicy(max_in_flight=2, staleness_ms=0, order=ServeOrder.OLDEST),
    )
    by_seq = {r.seq: r for r in got}
    assert sorted(by_seq) == list(range(6))
    assert (
        isinstance(by_seq[2], Outcome)
        and by_seq[2].reason == "parse"
        and "prose" in by_seq[2].detail
    )
    assert (
        isinstance(by_seq[4], Outcome)
        and by_seq[4].reason == "error"
        and "backend bug" in by_seq[4].detail
    )
    assert all(isinstance(by_seq[i], VisionResult) for i in (0, 1, 3, 5))
    assert metrics.failed == 2


def test_stale_frames_are_dropped_not_sent():
    old = [Frame("s", i, time.time() - 10.0, solid(i).image) for i in range(3)]
    got, _, metrics = _run(
        [*old, solid(3)],
        SleepyBackend(delay=0.0),
        VisionPolicy(max_in_flight=1, staleness_ms=1000, order=ServeOrder.OLDEST),
    )
    by_seq = {r.seq: r for r in got}
    assert [by_seq[i].label for i in range(3)] == ["dropped(stale)"] * 3
    assert isinstance(by_seq[3], VisionResult)
    assert metrics.submitted == 1


def test_newest_first_supersedes_older_waiting_frames():
    frames = [solid(i) for i in range(10)]
    got, _, _ = _run(
        frames,
        SleepyBackend(delay=0.02),
        VisionPolicy(max_in_flight=1, staleness_ms=0, order=ServeOrder.NEWEST),
    )
    assert sorted(r.seq for r in got) == list(range(10))
    results = [r.seq for r in got if isinstance(r, VisionResult)]
    assert 9 in results  # the newest frame is always served
    assert all(
        r.status is Status.DROPPED and r.reason == "superseded"
        for r in got
        if isinstance(r, Outcome)
    )


def test_call_deadline_fails_slow_calls():
    got, _, _ = _run(
        [solid(0)],
        SleepyBackend(delay=0.3),
        VisionPolicy(max_in_flight=1, staleness_ms=0, deadline_ms=50),
    )
    assert [r.label for r in got] == ["failed(timeout)"]


def test_two_workers_share_the_in_flight_bound():
    frames = [solid(i, stream=f"s{i % 3}") for i in range(18)]
    backend = SleepyBackend(delay=0.03)
    got, _pool, _ = _run(
        frames,
        backend,
        VisionPolicy(max_in_flight=3, staleness_ms=0, order=ServeOrder.OLDEST, max_pending=100),
        workers=2,
    )
    assert sorted((r.stream_id, r.seq) for r in got) == sorted((f.stream_id, f.seq) for f in frames)
    assert backend.peak <= 3


def test_local_backend_reads_the_arena_hud(frames):
    backend = LocalVisionBackend()
    for f in frames[::3]:
        r = backend.infer(f)
        assert r.hud() == {k: getattr(f.truth, k) for k in f.truth.HUD_FIELDS}
        assert len(r.enemies) == len(f.truth.enemies)
        for got, want in zip(r.enemies, f.truth.enemies, strict=True):
            assert abs(got.x0 - want.x0) < 0.03 and abs(got.y1 - want.y1) < 0.03


def test_parse_hud_text_handles_ocr_quirks():
    assert parse_hud_text("armor", "ARＯ") == {"armor": 0}
    assert parse_hud_text("money", "¥$800") == {"money": 800}
    assert parse_hud_text("ammo", "27") == {"ammo": 27, "ammo_reserve": None}
