"""Real screen capture: a virtual X display (Xvfb), a window drawn on it, mss grabbing it.

.ci/run installs Xvfb and sets FRAMEWAX_REQUIRE_XVFB=1, so in CI these tests
run or fail; on a machine without Xvfb they are skipped with the reason.
"""

from __future__ import annotations

import threading
import time

import bytewax.operators as op
import numpy as np
import pytest
from bytewax.dataflow import Dataflow
from bytewax.testing import TestingSink, run_main

from operators.capture.screen import ScreenSource
from operators.errors import ConfigError
from operators.ledger import Ledger
from operators.steps import capture
from tests.conftest import H, W

COLORS = [(255, 0, 0), (0, 255, 0), (0, 0, 255), (255, 255, 0), (0, 255, 255)]


class Painter:
    """A full-screen X window whose colour (and an optional square) the test sets."""

    def __init__(self, name: str) -> None:
        from Xlib import X, display

        self.X = X
        self.d = display.Display(name)
        screen = self.d.screen()
        self.cmap = screen.default_colormap
        self.win = screen.root.create_window(
            0,
            0,
            W,
            H,
            0,
            screen.root_depth,
            X.InputOutput,
            X.CopyFromParent,
            background_pixel=screen.black_pixel,
            override_redirect=True,
        )
        self.gc = self.win.create_gc()
        self.win.map()
        self.d.sync()

    def pixel(self, rgb):
        r, g, b = rgb
        return (r << 16) | (g << 8) | b  # TrueColor 24-bit visual

    def paint(self, rgb, square=None):
        self.gc.change(foreground=self.pixel(rgb))
        self.win.fill_rectangle(self.gc, 0, 0, W, H)
        if square is not None:
            x, y, s, color = square
            self.gc.change(foreground=self.pixel(color))
            self.win.fill_rectangle(self.gc, x, y, s, s)
        self.d.sync()

    def close(self):
        self.win.destroy()
        self.d.close()


def _run(source, stop=None, ledger=None):
    flow = Dataflow("screen_test")
    got: list = []
    on_capture = (lambda f: ledger.captured(f.stream_id, f.seq)) if ledger is not None else None
    frames = capture("capture", flow, source, on_capture=on_capture, stop=stop)
    op.output("out", frames, TestingSink(got))
    run_main(flow)
    return [f for _, f in got]


def test_frames_match_what_was_drawn(display):
    painter = Painter(display)
    painter.paint(COLORS[0])
    stop = threading.Event()
    ledger = Ledger()
    source = ScreenSource(display=display, fps=40)
    drawn: list[tuple[float, tuple[int, int, int]]] = []

    def draw():
        for rgb in COLORS:
            painter.paint(rgb)
            drawn.append((time.time(), rgb))
            time.sleep(0.25)
        stop.set()

    t = threading.Thread(target=draw)
    t.start()
    frames = _run(source, stop=stop, ledger=ledger)
    t.join()
    painter.close()
    assert len(frames) >= 20
    assert [f.seq for f in frames] == list(range(len(frames)))
    seen = []
    for f in frames:
        assert f.image.shape == (H, W, 3) and f.image.dtype == np.uint8
        colors = {tuple(int(v) for v in c) for c in f.image.reshape(-1, 3)[:: W * 7]}
        assert len(colors) == 1, f"seq {f.seq} is not one flat colour: {colors}"
        (c,) = colors
        assert c in COLORS, f"seq {f.seq} shows {c}, which was never drawn"
        if not seen or seen[-1] != c:
            seen.append(c)
    # every colour drawn was captured, in the order it was drawn
    assert seen == COLORS
    assert ledger.counts()["captured"] == len(frames)


def test_a_region_is_grabbed_exactly(display):
    painter = Painter(display)
    painter.paint((10, 20, 30), square=(100, 60, 40, (200, 100, 50)))
    source = ScreenSource(
        display=display,
        fps=0,
        frames=3,
        region={"left": 90, "top": 50, "width": 60, "height": 60},
    )
    frames = _run(source)
    painter.close()
    assert len(frames) == 3
    img = frames[0].image
    assert img.shape == (60, 60, 3)
    expected = np.zeros((60, 60, 3), np.uint8)
    expected[:] = (10, 20, 30)
    expected[10:50, 10:50] = (200, 100, 50)
    assert np.array_equal(img, expected)


def test_pacing_counts_missed_ticks_instead_of_queueing(display):
    # 1000 fps is beyond what a grab takes: ticks are skipped and counted, not queued.
    source = ScreenSource(display=display, fps=1000, frames=50)
    t0 = time.monotonic()
    frames = _run(source)
    elapsed = time.monotonic() - t0
    assert len(frames) == 50
    assert source.missed["screen"] > 0 or elapsed < 0.2
    stamps = [f.captured_at for f in frames]
    assert stamps == sorted(stamps)


def test_bad_display_and_region_are_clear_errors(display):
    with pytest.raises(ConfigError, match=":999"):
        ScreenSource(display=":999")
    with pytest.raises(ConfigError, match="does not fit"):
        ScreenSource(display=display, region={"left": 300, "top": 0, "width": 100, "height": 10})
    with pytest.raises(ConfigError, match=r"monitors 0\.\.1"):
        ScreenSource(display=display, monitor=5)


def test_record_the_screen_then_replay_it_through_the_pipeline(display, tmp_path):
    from flows.record import build_record_flow
    from flows.runner import Pipeline
    from operators.capture.replay import read_index
    from tests.conftest import replay_overrides

    painter = Painter(display)
    painter.paint((40, 40, 40), square=(20, 20, 50, (250, 250, 250)))
    config = {
        "capture": {"source": "screen", "options": {"display": display, "fps": 20, "frames": 12}},
    }
    run_main(build_record_flow(config, tmp_path / "rec"))
    painter.close()
    stream = tmp_path / "rec" / "screen"
    entries = list(read_index(stream))
    assert [e.line for e in entries] == list(range(1, 13))
    assert all(e.file.startswith("chunk-00000/") and e.error is None for e in entries)
    overrides = replay_overrides()
    overrides["capture"]["options"]["paths"] = [str(stream)]
    with Pipeline(overrides=overrides) as pipe:
        summary = pipe.wait(timeout=120)
    led = summary["ledger"]
    assert led["captured"] == 12 and led["balanced"] and led["in_flight"] == 0
    assert led["processed"] >= 1  # the rest are duplicates of a still screen
    assert led["processed"] + led["duplicate"] == 12


def test_live_preset_runs_on_the_display(display):
    from flows.runner import Pipeline

    painter = Painter(display)
    painter.paint(
        (0, 0, 0)
    )  # a dark, flat screen: the preset routes loading screens to the classifier
    overrides = {
        "capture": {"options": {"display": display, "frames": 10, "fps": 20}},
        "batch": {"options": {"device": "cpu"}},
        "run": {"status_interval_s": 0},
    }
    with Pipeline("flows/configs/live.toml", overrides=overrides) as pipe:
        summary = pipe.wait(timeout=120)
        last = pipe.store.latest("screen")
    painter.close()
    led = summary["ledger"]
    assert led["captured"] == 10 and led["balanced"] and led["in_flight"] == 0
    assert summary["vision"]["submitted"] == 0  # no model call on a loading screen
    assert (
        last is not None and last.vision.scene.value == "loading" and last.vision.backend == "scene"
    )


def test_a_window_that_is_not_there_fails_at_build_time_naming_it(display):
    from operators.capture.screen import ScreenSource
    from operators.errors import ConfigError

    with pytest.raises(ConfigError, match=r"no window whose title contains 'No Such Game'"):
        ScreenSource(display=display, window="No Such Game", window_timeout_s=0.2)
    with pytest.raises(ConfigError, match="either window"):
        ScreenSource(
            display=display, window="x", region={"left": 0, "top": 0, "width": 8, "height": 8}
        )


def _game(clock, period, drawn_at, every=1):
    """A screen that a game redraws every ``period / every`` from ``drawn_at`` on; each
    grab takes 0.4 ms of ``clock``."""

    def grab():
        clock.advance(0.0004)
        return int((clock.now() - drawn_at) // (period / every)).to_bytes(8, "big", signed=True)

    return grab


def test_phase_lock_finds_when_the_game_draws():
    from operators.capture.screen import PhaseLock
    from operators.testing import FakeClock

    period = 1 / 35
    clock = FakeClock(100.0)
    lock = PhaseLock(period, _game(clock, period, drawn_at=100.0123), clock, margin_s=0.002)
    at = lock.probe()
    assert at is not None and lock.locks == 1
    # a moment the game drew at, to within a grab, and near the burst
    off = (at - 100.0123) % period
    assert min(off, period - off) < 0.001
    assert abs(at - clock.now()) < period
    assert lock.tick_at() == pytest.approx(at + 0.002)
    # a still screen, and a game drawing 5 times a period, leave the ticks alone
    still_clock = FakeClock(0.0)
    still = PhaseLock(period, lambda: still_clock.advance(0.0004) or b"same", still_clock)
    assert still.probe() is None and still.at is None
    fast_clock = FakeClock(0.0)
    fast = PhaseLock(period, _game(fast_clock, period, 0.0031, every=5), fast_clock)
    assert fast.probe() is None and fast.tick_at() is None


def test_phase_locked_capture_grabs_just_after_each_drawing(display):
    """A window redrawn 10 times a second at a known phase, captured at 10 fps with the
    phase lock: the lock finds that phase, and the ticks follow it."""
    painter = Painter(display)
    period, phase = 0.1, 0.037
    stop = threading.Event()
    source = ScreenSource(display=display, fps=10, phase_lock=True, phase_every_s=0.3)
    start = (time.time() // period + 2) * period + phase

    def draw():
        k = 0
        while not stop.is_set() and k < 40:
            time.sleep(max(0.0, start + k * period - time.time()))
            painter.paint(COLORS[k % len(COLORS)])
            k += 1
        stop.set()

    t = threading.Thread(target=draw)
    t.start()
    frames = _run(source, stop=stop)
    t.join()
    painter.close()
    lock = source.phase["screen"]
    assert lock["locks"] >= 1, lock
    # the ticks after the lock fall just after the drawings (a quarter period's leeway:
    # the test's own drawing thread is late now and then)
    late = [f for f in frames if f.captured_at > start + 2.0]
    assert late
    offsets = [((f.captured_at - start) % period) for f in late]
    near = [o for o in offsets if o < period / 4]
    assert len(near) >= 0.7 * len(offsets), offsets
