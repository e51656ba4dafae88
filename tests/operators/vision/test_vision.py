"""The vision stage: its schedule on a fake clock with a manual executor, then real flows."""

import threading
import time

import pytest

from operators.errors import VisionError
from operators.frame import Frame
from operators.outcome import Outcome
from operators.pool import BoundedPool
from operators.reading import Scene, VisionResult
from operators.steps import call_vision
from operators.testing.fakes import FakeClock, ManualExecutor
from operators.vision.local import LocalVisionBackend, parse_hud_text
from operators.vision.queue import ServeOrder, VisionPolicy, VisionStage
from tests.conftest import run_step, solid


class EchoBackend:
    """Reads a frame as health = seq; fails seqs in `fail` (parse) and `crash` (a bug)."""

    name = "echo"

    def __init__(self, fail=(), crash=()):
        self.fail, self.crash = set(fail), set(crash)
        self.calls = []

    def infer(self, frame):
        self.calls.append(frame.seq)
        if frame.seq in self.fail:
            raise VisionError("parse", f"prose instead of JSON for {frame.seq}")
        if frame.seq in self.crash:
            raise RuntimeError("backend bug")
        return VisionResult(frame.stream_id, frame.seq, health=frame.seq, backend=self.name)


def _stage(backend=None, **policy):
    clock, executor = FakeClock(), ManualExecutor()
    pol = VisionPolicy(**policy)
    pool = BoundedPool("test", pol.max_in_flight, executor=executor)
    stage = VisionStage(backend or EchoBackend(), pol, pool=pool, clock=clock)
    return stage, clock, executor


def _frames(clock, n, start=0, stream="s"):
    return [solid(i, stream=stream, at=clock.now()) for i in range(start, start + n)]


def labels(items):
    return {i.seq: (i.label if isinstance(i, Outcome) else "result") for i in items}


# -- the schedule, on a fake clock ---------------------------------------------------------


def test_never_more_in_flight_than_the_bound_and_every_frame_gets_one_result():
    stage, clock, ex = _stage(max_in_flight=3, max_pending=100, staleness_ms=0, order="oldest")
    q = stage.for_stream()
    out = q.offer(_frames(clock, 10))
    assert out == [] and len(ex.waiting) == 3 and stage.pool.in_flight == 3
    while ex.waiting:
        assert stage.pool.in_flight <= 3
        ex.run()
        clock.advance(0.001)
        out += q.poll()
    assert sorted(r.seq for r in out) == list(range(10))
    assert all(isinstance(r, VisionResult) for r in out)
    assert stage.pool.peak == 3 and stage.stats.completed == 10


def test_failures_become_outcomes_and_later_frames_go_on():
    stage, clock, ex = _stage(EchoBackend(fail={2}, crash={4}), max_in_flight=2, order="oldest")
    q = stage.for_stream()
    out = q.offer(_frames(clock, 6))
    while ex.waiting:
        ex.run()
        out += q.poll()
    by_seq = {r.seq: r for r in out}
    assert sorted(by_seq) == list(range(6))
    assert by_seq[2].label == "failed(parse)" and "prose" in by_seq[2].detail
    assert by_seq[4].label == "failed(error)" and "backend bug" in by_seq[4].detail
    assert all(isinstance(by_seq[i], VisionResult) for i in (0, 1, 3, 5))
    assert stage.stats.failures == {"parse": 1, "error": 1}


def test_a_frame_that_waited_past_the_staleness_budget_is_dropped_not_sent():
    stage, clock, ex = _stage(max_in_flight=1, staleness_ms=100, order="oldest")
    q = stage.for_stream()
    q.offer(_frames(clock, 3))  # 0 is sent, 1 and 2 wait
    clock.advance(0.150)
    out = q.poll()
    assert labels(out) == {1: "dropped(stale)", 2: "dropped(stale)"}
    ex.run()
    assert labels(q.poll()) == {0: "result"}
    assert stage.stats.submitted == 1


def test_newest_first_sends_the_newest_and_supersedes_the_rest():
    stage, clock, ex = _stage(max_in_flight=1, order="newest")
    q = stage.for_stream()
    assert q.offer(_frames(clock, 1)) == []  # 0 is sent
    out = q.offer(_frames(clock, 4, start=1))  # 1..4 wait behind it
    assert out == []
    ex.run()
    out = q.poll()  # 0 done; the slot goes to 4, and 1..3 are superseded
    assert labels(out) == {0: "result"}
    out = q.poll()  # the drops go out one poll later than the result
    assert labels(out) == {
        1: "dropped(superseded)",
        2: "dropped(superseded)",
        3: "dropped(superseded)",
    }
    assert [job[2][1].seq for job in ex.waiting] == [4]


def test_backlog_beyond_max_pending_drops_the_oldest():
    stage, clock, _ex = _stage(max_in_flight=1, max_pending=2, order="oldest", staleness_ms=0)
    q = stage.for_stream()
    out = q.offer(_frames(clock, 6))  # 0 sent; 1..5 wait; only 2 may
    assert labels(out) == {1: "dropped(backlog)", 2: "dropped(backlog)", 3: "dropped(backlog)"}
    assert [f.seq for f in q.pending] == [4, 5]


def test_max_pending_0_sends_what_free_slots_take_and_waits_for_nothing():
    stage, clock, ex = _stage(max_in_flight=2, max_pending=0, order="oldest", staleness_ms=0)
    q = stage.for_stream()
    out = q.offer(_frames(clock, 3))
    assert labels(out) == {2: "dropped(backlog)"} and len(ex.waiting) == 2
    assert list(q.pending) == []


def test_a_call_past_its_deadline_fails_and_its_late_result_is_ignored():
    stage, clock, ex = _stage(max_in_flight=1, deadline_ms=50, staleness_ms=0)
    q = stage.for_stream()
    q.offer(_frames(clock, 1))
    clock.advance(0.049)
    assert q.poll() == []
    clock.advance(0.002)
    assert labels(q.poll()) == {0: "failed(timeout)"}
    ex.run()  # the call returns after all: its slot frees, its result is not emitted twice
    assert q.poll() == [] and stage.pool.in_flight == 0


def test_next_wake_asks_for_a_poll_only_while_work_is_pending():
    stage, clock, ex = _stage(max_in_flight=1, poll_ms=2)
    q = stage.for_stream()
    assert q.next_wake() is None
    q.offer(_frames(clock, 1))
    assert q.next_wake() == pytest.approx(clock.now() + 0.002)
    ex.run()
    q.poll()
    assert q.next_wake() is None


def test_drain_waits_for_calls_that_finish_and_resolves_every_frame():
    stage, clock, ex = _stage(max_in_flight=2, order="oldest", staleness_ms=0, max_pending=100)
    q = stage.for_stream()
    out = q.offer(_frames(clock, 5))
    ex.auto = True  # every call now finishes as soon as it is sent
    ex.run_all()
    out += q.drain()
    assert labels(out) == dict.fromkeys(range(5), "result")


def test_drain_is_bounded_by_each_calls_deadline_when_the_backend_hangs():
    stage, clock, _ex = _stage(max_in_flight=1, deadline_ms=200, staleness_ms=0, order="oldest")
    q = stage.for_stream()
    t0 = clock.now()
    q.offer(_frames(clock, 3))  # 0 is sent and never returns; 1, 2 wait
    out = q.drain()
    assert labels(out) == {0: "failed(timeout)", 1: "dropped(shutdown)", 2: "dropped(shutdown)"}
    # 0 timed out at 200 ms; no slot freed for another 200 ms, then the waiting were let go
    assert 0.4 <= clock.now() - t0 <= 0.45


def test_drain_stops_at_until():
    stage, clock, _ex = _stage(max_in_flight=1, deadline_ms=10_000)
    q = stage.for_stream()
    q.offer(_frames(clock, 1))
    out = q.drain(until=clock.now() + 0.05)
    assert labels(out) == {0: "failed(timeout)"} and "at shutdown" in out[0].detail


def test_two_streams_share_the_bound_and_one_streams_drain_never_waits_on_the_other():
    stage, clock, ex = _stage(max_in_flight=1, order="oldest", staleness_ms=0, deadline_ms=100)
    a, b = stage.for_stream(), stage.for_stream()
    a.offer(_frames(clock, 1, stream="a"))
    b.offer(_frames(clock, 1, stream="b"))  # waits: a holds the only slot
    ex.run()  # a's call finishes; a has not harvested it, yet the slot is free
    assert stage.pool.in_flight == 0
    ex.auto = True
    out = b.drain() + a.drain()
    assert sorted((r.stream_id, r.seq, type(r).__name__) for r in out) == [
        ("a", 0, "VisionResult"),
        ("b", 0, "VisionResult"),
    ]


# -- real Bytewax runs ----------------------------------------------------------------------


class SleepyBackend(EchoBackend):
    """Takes `delay` s a call and records how many calls overlap."""

    def __init__(self, delay=0.02, **kw):
        super().__init__(**kw)
        self.delay, self.lock, self.now, self.peak = delay, threading.Lock(), 0, 0

    def infer(self, frame):
        with self.lock:
            self.now += 1
            self.peak = max(self.peak, self.now)
        try:
            time.sleep(self.delay)
            return super().infer(frame)
        finally:
            with self.lock:
                self.now -= 1


@pytest.mark.parametrize("workers", [1, 2])
def test_in_a_flow_every_frame_of_every_stream_ends_once_within_the_bound(workers):
    frames = [solid(i // 3, stream=f"s{i % 3}") for i in range(30)]
    backend = SleepyBackend()
    policy = VisionPolicy(max_in_flight=3, staleness_ms=0, order=ServeOrder.OLDEST, max_pending=100)
    stage = VisionStage(backend, policy)
    got = run_step(call_vision, frames, stage, workers=workers)
    stage.close()
    assert sorted((r.stream_id, r.seq) for r in got) == sorted((f.stream_id, f.seq) for f in frames)
    assert all(isinstance(r, VisionResult) for r in got)
    assert backend.peak <= 3 and stage.pool.peak <= 3


@pytest.mark.parametrize("workers", [1, 2])
def test_inline_in_a_flow_every_frame_ends_once_and_calls_never_overlap(workers):
    frames = [solid(i // 3, stream=f"s{i % 3}") for i in range(30)]
    backend = SleepyBackend(delay=0.001, fail=[4], crash=[7])
    stage = VisionStage(backend, VisionPolicy(inline=True, staleness_ms=0, max_pending=100))
    got = run_step(call_vision, frames, stage, workers=workers)
    stage.close()
    assert sorted((r.stream_id, r.seq) for r in got) == sorted((f.stream_id, f.seq) for f in frames)
    failed = sorted(r.seq for r in got if isinstance(r, Outcome))
    assert failed == [4, 4, 4, 7, 7, 7]  # each stream's frames 4 and 7, as records
    assert backend.peak <= workers  # a worker calls one at a time, in its own thread


def test_local_backend_reads_the_arena_hud(frames):
    backend = LocalVisionBackend()
    for f in frames[::3]:
        r = backend.infer(f)
        assert r.hud() == f.truth.hud()
        assert len(r.enemies) == len(f.truth.enemies)
        for got, want in zip(r.enemies, f.truth.enemies, strict=True):
            assert abs(got.x0 - want.x0) < 0.03 and abs(got.y1 - want.y1) < 0.03


def test_parse_hud_text_handles_ocr_quirks():
    assert parse_hud_text("armor", "ARＯ") == {"armor": 0}
    assert parse_hud_text("money", "¥$800") == {"money": 800}
    assert parse_hud_text("ammo", "27") == {"ammo": 27, "ammo_reserve": None}


def test_bad_policy_values_name_the_key():
    from operators.errors import ConfigError

    with pytest.raises(ConfigError, match=r"vision.max_in_flight = 0 .*>= 1"):
        VisionPolicy(max_in_flight=0)
    with pytest.raises(ConfigError, match=r"vision.order = 'sideways'.*'newest', 'oldest'"):
        VisionPolicy(order="sideways")


def _arena_frame(**state):
    from operators.capture.arena import Arena

    arena = Arena(width=640, height=360, seed=3)
    arena.step(None)
    for k, v in state.items():
        setattr(arena, k, v)
    return Frame("s", 0, 0.0, arena.render(), arena.truth())


def test_local_backend_rejects_what_a_field_cannot_show_and_says_why():
    frame = _arena_frame(health=7902, money=99999)  # drawn on the HUD, read by the real OCR
    r = LocalVisionBackend().infer(frame)
    assert r.health is None and r.money is None
    assert dict(r.rejected) == {
        "health": "read 7902: 4 digits, health has at most 3 (0..100)",
        "money": "read 99999: outside 0..16000",
    }
    assert r.armor == frame.truth.armor and r.ammo == frame.truth.ammo  # the rest stands
    # ranges are the game's: a preset or a table
    roomy = LocalVisionBackend(ranges={"health": [0, 9999], "money": [0, 100000]}).infer(frame)
    assert (roomy.health, roomy.money, roomy.rejected) == (7902, 99999, ())
    with pytest.raises(ValueError, match=r"hud.ranges.health = \[5, 1\]"):
        LocalVisionBackend(ranges={"health": [5, 1]})


def test_death_needs_a_zero_health_and_a_screen_that_looks_like_death():
    alive_but_zero = LocalVisionBackend().infer(_arena_frame(health=0))  # a misread, say
    assert alive_but_zero.health == 0 and alive_but_zero.scene is Scene.GAMEPLAY
    dead = LocalVisionBackend().infer(_arena_frame(health=0, dead_for=30))
    assert dead.health == 0 and dead.scene is Scene.DEATH


def test_regions_that_hold_no_number_on_the_first_frames_are_named(caplog):
    import logging

    frames = [_arena_frame(health=100 - i) for i in range(LocalVisionBackend.CHECK_FRAMES)]
    wrong = LocalVisionBackend(
        hud_regions={"health": [0.4, 0.3, 0.6, 0.4], "money": [0.74, 0.02, 0.98, 0.13]}
    )
    with caplog.at_level(logging.WARNING, logger="operators.vision.local"):
        for f in frames:
            wrong.infer(f)
    assert wrong.regions_without_text == ["health"]  # the wall; money is where the arena draws it
    assert "'health' held no readable number on the first 10 frames" in caplog.text
    assert "flows.calibrate" in caplog.text
    right = LocalVisionBackend()
    for f in frames:
        right.infer(f)
    assert right.regions_without_text == [] and right.metrics()["regions_without_text"] == []


def test_the_local_model_reads_again_only_the_regions_that_changed():
    from operators.capture.arena import Arena
    from operators.frame import Frame
    from operators.vision.local import LocalVisionBackend

    arena = Arena(seed=2)
    first = arena.render()
    arena.step((0, 2, 0, 0))  # turn: the picture moves, the HUD does not
    turned = arena.render()
    arena.step((0, 0, 0, 1))  # fire: the ammo changes
    fired = arena.render()
    backend = LocalVisionBackend()
    reads = [backend.infer(Frame("s", i, 0.0, img)) for i, img in enumerate((first, turned, fired))]
    regions = len(backend.hud_regions)
    # the turned frame reused every region; the fired one all but the ammo's
    assert backend.memo_hits == regions + (regions - 1)
    assert reads[1].hud() == reads[0].hud()
    truth = arena.truth()
    assert (reads[2].ammo, reads[2].health) == (truth.ammo, truth.health)
    assert reads[2].ammo != reads[0].ammo


# -- inline: the model called in the worker's own thread ----------------------------------


def test_inline_calls_answer_within_the_offer_and_leave_nothing_to_poll():
    clock = FakeClock()
    backend = EchoBackend(fail=[2], crash=[3])
    pol = VisionPolicy(inline=True, max_in_flight=1, max_pending=100, order="oldest")
    stage = VisionStage(backend, pol, clock=clock)
    q = stage.for_stream()
    out = q.offer(_frames(clock, 5))
    assert labels(out) == {
        0: "result",
        1: "result",
        2: "failed(parse)",
        3: "failed(error)",
        4: "result",
    }
    assert backend.calls == [0, 1, 2, 3, 4]  # one at a time, in the worker's thread
    assert q.next_wake() is None and stage.pool.in_flight == 0
    assert stage.stats.completed == 3 and q.drain() == []


def test_inline_refuses_a_model_behind_http():
    from operators.vision.http.backends import OllamaBackend

    backend = OllamaBackend(preload=False)
    try:
        with pytest.raises(ValueError, match="inline is for an in-process model"):
            VisionStage(backend, VisionPolicy(inline=True))
    finally:
        backend.close()


def test_a_number_cut_by_its_region_is_unread_and_the_summary_says_recalibrate():
    """Doom's "48" beside "100%": a region that starts inside the "8" reads "8100" or
    "3100" as a number; the cut glyph makes it unread (None, with the reason), the
    confident readings carry their confidence, and the backend asks to recalibrate."""
    import cv2
    import numpy as np

    from operators.frame import Frame
    from operators.vision.local import LocalVisionBackend

    img = np.full((240, 640, 3), 60, np.uint8)
    cv2.putText(img, "48", (20, 200), cv2.FONT_HERSHEY_SIMPLEX, 2.0, (230, 30, 30), 5)
    cv2.putText(img, "100", (200, 200), cv2.FONT_HERSHEY_SIMPLEX, 2.0, (230, 30, 30), 5)
    cut = {"health": (0.12, 0.6, 0.55, 0.95), "ammo": (0.0, 0.6, 0.12, 0.95)}  # inside the "8"
    backend = LocalVisionBackend(hud_regions=cut, ranges="doom")
    got = backend.infer(Frame("s", 0, 0.0, img))
    assert got.health is None
    assert dict(got.rejected)["health"].startswith("cut")
    fair = {"health": (0.28, 0.6, 0.6, 0.95), "ammo": (0.0, 0.6, 0.25, 0.95)}
    good = LocalVisionBackend(hud_regions=fair, ranges="doom").infer(Frame("s", 1, 0.0, img))
    assert (good.health, good.ammo) == (100, 48)
    assert 0.8 <= good.confidence_of("health") <= 1.0 and good.confidence_of("armor") is None
    warnings = backend.metrics()["recalibrate"]
    # both regions cut the "8": the one it starts in (health) and the one it ends (ammo)
    assert [w.split("'")[1] for w in warnings] == ["ammo", "health"]
    assert all("recalibrate" in w for w in warnings)
