"""The live screen as a capture source (``mss``): a monitor or a region, at a target rate.

``ScreenSource`` grabs the screen of ``display`` (X11: ``$DISPLAY`` by default;
Windows and macOS work as mss does there) at ``fps``, on a drift-free tick
schedule it reports as ``next_wake`` (never sleeping); each frame is stamped with the time it was grabbed. When a grab takes
longer than a tick, the ticks it missed are counted (``missed`` in the run
summary) rather than queued. A failed grab becomes a frame that fails as
``failed(capture)``; ``max_errors`` failures in a row end the stream with the
error in the summary. ``window`` captures one window (found by its title, e.g.
a game's) instead of a monitor; ``truth_log`` stamps each frame with the game's
own variables at the moment it was grabbed (a log ``python -m flows.doom``
writes), so what framewax reads of a real game is scored against the game.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Callable, Mapping
from typing import Any

import cv2
import numpy as np

from operators.capture.base import Pacer, SourceBase, check_rate
from operators.capture.doom import GameVarsLog, doom_truth
from operators.clock import SYSTEM_CLOCK, Clock
from operators.errors import ConfigError
from operators.frame import Frame
from operators.options import at_least
from operators.x11 import find_window

__all__ = ["PhaseLock", "ScreenSource", "grab_rgb"]

logger = logging.getLogger(__name__)


def grab_rgb(sct: Any, area: Mapping[str, int]) -> np.ndarray:
    """One screenshot of ``area`` (mss monitor dict) as an RGB ``(H, W, 3)`` uint8 array."""
    shot = sct.grab(dict(area))
    bgra = np.frombuffer(shot.bgra, np.uint8).reshape(shot.height, shot.width, 4)
    return cv2.cvtColor(bgra, cv2.COLOR_BGRA2RGB)


class PhaseLock:
    """When a game draws, within the capture period: grabs land just after it.

    A game drawing at the capture's rate (Doom's 35 fps at ``fps = 35``, a vsynced game
    at 60 with ``fps = 60``) shows each picture for one period; a grab can land anywhere
    in it, up to a whole period after the picture appeared, and stays there (both
    clocks tick at the same rate). Every ``every_s``, :meth:`probe` grabs a band of the
    screen as fast as it can for 1.5 periods and notes when it changed; when the
    changes keep one phase (a game drawing at the capture's rate, not much faster),
    :attr:`at` is a time the game drew at, and the capture's ticks move to ``margin_s``
    after it. A still screen, or one that changes out of step, leaves the ticks alone.

    ``grab`` returns the band's bytes (equal bytes: the same picture).
    """

    BURST_PERIODS = 1.5
    MAX_GRABS = 1000
    """A burst's grabs at most (a grab takes 0.1-2 ms: the period ends first)."""
    MIN_AGREEMENT = 0.8
    """How closely the changes of a burst share a phase (the length of their mean
    direction on the period's circle, 1: all at one moment) for it to count."""

    def __init__(
        self,
        period: float,
        grab: Callable[[], bytes],
        clock: Clock = SYSTEM_CLOCK,
        every_s: float = 2.0,
        margin_s: float = 0.002,
    ) -> None:
        self.period = period
        self.grab = grab
        self.clock = clock
        self.every_s = every_s
        self.margin_s = margin_s
        self.at: float | None = None
        """A moment the game drew at (clock time), or ``None`` until one is found."""
        self.probes = self.locks = 0

    def probe(self) -> float | None:
        """One burst of grabs: the moment the game drew, if its changes kept one phase."""
        changes: list[float] = []
        last: tuple[float, bytes] | None = None
        end = self.clock.now() + self.BURST_PERIODS * self.period
        for _ in range(self.MAX_GRABS):
            t0 = self.clock.now()
            data = self.grab()
            t1 = self.clock.now()
            mid = (t0 + t1) / 2.0
            if last is not None and data != last[1]:
                changes.append((last[0] + mid) / 2.0)  # between the two grabs
            last = (mid, data)
            if t1 >= end:
                break
        self.probes += 1
        if not changes:
            return None
        angles = np.array([(c % self.period) / self.period * 2.0 * np.pi for c in changes])
        mean = complex(np.cos(angles).mean(), np.sin(angles).mean())
        if abs(mean) < self.MIN_AGREEMENT:
            return None
        phase = (np.angle(mean) % (2.0 * np.pi)) / (2.0 * np.pi) * self.period
        at = changes[-1] - ((changes[-1] - phase) % self.period)
        if at < changes[-1] - self.period / 2.0:
            at += self.period  # the drawing moment nearest the last change
        self.at = float(at)
        self.locks += 1
        return self.at

    def tick_at(self) -> float | None:
        """Where the capture's ticks should fall: just after the game draws."""
        return None if self.at is None else self.at + self.margin_s

    def run(self, stop: threading.Event) -> None:
        """Probe every ``every_s`` until ``stop`` is set (on a thread of its own)."""
        while not stop.wait(self.every_s if self.probes else 0.2):
            try:
                self.probe()
            except Exception:  # a grab that failed: the capture itself reports it
                logger.debug("phase lock: probe failed", exc_info=True)


class _ScreenStream:
    def __init__(self, src: ScreenSource) -> None:
        self.src = src
        self.stream_id = src.stream_id
        self.sct = src._open()
        self.area = src._area(self.sct)
        self.truth = GameVarsLog(src.truth_log) if src.truth_log else None
        self.pacer = Pacer(src.fps, src.clock)
        self.seq = 0
        self.errors_in_row = 0
        self.lock: PhaseLock | None = None
        self._aligned: float | None = None
        self._lock_stop = threading.Event()
        self._lock_thread: threading.Thread | None = None
        if src.phase_lock and src.fps > 0:
            self._lock_thread = threading.Thread(
                target=self._phase_lock, name="framewax-phase-lock", daemon=True
            )
            self._lock_thread.start()

    def _phase_lock(self) -> None:
        """The phase lock's thread: its own connection to the display (mss's are not
        shared across threads), grabbing a band across the middle of the area."""
        try:
            sct = self.src._open()
        except Exception:
            logger.warning("capture: phase lock off: cannot open the display", exc_info=True)
            return
        a = self.area
        band = {
            "left": a["left"],
            "top": a["top"] + a["height"] * 3 // 8,
            "width": a["width"],
            "height": max(a["height"] // 8, 1),
        }
        try:
            self.lock = PhaseLock(
                self.pacer.period,
                lambda: sct.grab(band).raw,
                self.src.clock,
                every_s=self.src.phase_every_s,
            )
            self.lock.run(self._lock_stop)
        finally:
            sct.close()

    def next_frames(self) -> list[Frame]:
        src = self.src
        if 0 < src.frames <= self.seq:
            raise StopIteration
        lock = self.lock
        if lock is not None:
            at = lock.tick_at()
            if at is not None and at != self._aligned:
                self.pacer.align(at)  # grab just after the game draws
                self._aligned = at
            src.phase[self.stream_id] = {
                "probes": lock.probes,
                "locks": lock.locks,
                "locked": lock.at is not None,
            }
        if not self.pacer.due():
            return []
        captured = src.clock.now()
        try:
            image = grab_rgb(self.sct, self.area)
            truth = None
            if self.truth is not None:
                said = self.truth.at(captured)
                truth = doom_truth(said) if said is not None else None
            frame = Frame(src.stream_id, self.seq, captured, image, truth)
            self.errors_in_row = 0
        except Exception as ex:  # a display that went away, a region off screen...
            self.errors_in_row += 1
            detail = f"screen grab of {dict(self.area)} failed: {type(ex).__name__}: {ex}"
            if self.errors_in_row > src.max_errors:
                text = f"{src.stream_id}: stopped after {src.max_errors} failed grabs; {detail}"
                src.report_error(text, fatal=True)
                raise StopIteration from ex
            frame = Frame(
                src.stream_id, self.seq, captured, np.zeros((0, 0, 3), np.uint8), error=detail
            )
        self.seq += 1
        src.missed[src.stream_id] = self.pacer.missed
        return [frame]

    def next_wake(self) -> float | None:
        return self.pacer.next_wake()

    def close(self) -> None:
        self._lock_stop.set()
        if self._lock_thread is not None:
            self._lock_thread.join(timeout=2.0)
        self.sct.close()
        if self.truth is not None:
            self.truth.close()


class ScreenSource(SourceBase):
    """Frames of the live screen, one stream (``stream_id``).

    ``monitor`` is mss's monitor index (1 = the first screen, 0 = all of them);
    ``region`` (``{left, top, width, height}`` in pixels, relative to that
    monitor) captures part of it; ``window`` (a title, or part of one) captures
    that window wherever it is, waiting up to ``window_timeout_s`` for it to appear.
    ``fps`` 0 grabs as fast as the flow takes frames; ``frames`` 0 runs until the run
    is stopped. ``truth_log``: a game-variables log to stamp frames with (ground truth).
    ``phase_lock``: grab just after the game draws (:class:`PhaseLock`, probing every
    ``phase_every_s``): for a game that draws at the capture's rate, up to a period less
    lag; no use for one drawing much faster.
    """

    def __init__(
        self,
        *,
        display: str | None = None,
        monitor: int = 1,
        region: Mapping[str, int] | None = None,
        fps: float = 30.0,
        frames: int = 0,
        stream_id: str = "screen",
        max_errors: int = 30,
        window: str | None = None,
        window_timeout_s: float = 15.0,
        truth_log: str | None = None,
        phase_lock: bool = False,
        phase_every_s: float = 2.0,
        clock: Clock = SYSTEM_CLOCK,
    ) -> None:
        super().__init__()
        if window is not None and region is not None:
            msg = "capture.options: give either window (a title) or region, not both"
            raise ConfigError(msg)
        check_rate(fps, frames)
        at_least("capture.options.max_errors", max_errors, 0)
        if region is not None:
            missing = {"left", "top", "width", "height"} - set(region)
            if (
                missing
                or any(int(region[k]) < 0 for k in region)
                or not region.get("width")
                or not region.get("height")
            ):
                msg = f"capture.options.region = {dict(region)!r}: expected {{left, top, width, height}} >= 0, width and height > 0"
                raise ConfigError(msg)
        self.display = display
        self.monitor = monitor
        self.region = dict(region) if region is not None else None
        self.fps = float(fps)
        self.frames = frames
        self.stream_id = stream_id
        self.max_errors = max_errors
        self.window = window
        self.window_timeout_s = float(window_timeout_s)
        self.truth_log = truth_log
        if not isinstance(phase_lock, bool):
            msg = f"capture.options.phase_lock = {phase_lock!r}: expected true or false"
            raise ConfigError(msg)
        self.phase_lock = phase_lock
        at_least("capture.options.phase_every_s", phase_every_s, 0.1)
        self.phase_every_s = float(phase_every_s)
        self.phase: dict[str, dict[str, Any]] = {}
        """Per stream, the phase lock's probes and locks (the summary's ``phase_lock``)."""
        self.clock = clock
        # Fail at build time, with the display's name, if there is no screen to grab.
        sct = self._open()
        try:
            self._area(sct)
        finally:
            sct.close()

    def _open(self) -> Any:
        try:
            import mss
        except ImportError as ex:  # pragma: no cover - mss is a dependency
            msg = "the screen source needs `pip install mss`"
            raise ConfigError(msg) from ex
        factory = getattr(mss, "MSS", None) or mss.mss  # mss.MSS from 10.2 on
        for attempt in range(3):
            try:
                return factory(display=self.display) if self.display else factory()
            except Exception as ex:
                # An X server that is busy can refuse a connection now and take it
                # a moment later; a display that is not there fails all three.
                if attempt < 2:
                    time.sleep(0.2 * (attempt + 1))  # at build time, not in the flow
                    continue
                name = self.display or os.environ.get("DISPLAY") or "(DISPLAY is not set)"
                msg = f"capture.source = 'screen': cannot open display {name}: {ex}"
                raise ConfigError(msg) from ex
        raise AssertionError("unreachable")

    def _area(self, sct: Any) -> dict[str, int]:
        if self.window is not None:
            box = find_window(self.display, self.window, self.window_timeout_s)
            logger.info("framewax: capturing window %r at %s", box.title, box.area())
            return box.area()
        monitors = sct.monitors
        if not 0 <= self.monitor < len(monitors):
            msg = f"capture.options.monitor = {self.monitor}: this display has monitors 0..{len(monitors) - 1}"
            raise ConfigError(msg)
        mon = monitors[self.monitor]
        if self.region is None:
            return {k: int(mon[k]) for k in ("left", "top", "width", "height")}
        r = self.region
        if r["left"] + r["width"] > mon["width"] or r["top"] + r["height"] > mon["height"]:
            msg = f"capture.options.region = {r!r} does not fit monitor {self.monitor} ({mon['width']}x{mon['height']})"
            raise ConfigError(msg)
        return {
            "left": int(mon["left"] + r["left"]),
            "top": int(mon["top"] + r["top"]),
            "width": int(r["width"]),
            "height": int(r["height"]),
        }

    def stream_ids(self) -> list[str]:
        return [self.stream_id]

    def metrics(self) -> dict[str, Any]:
        out = super().metrics()
        if self.phase_lock:
            out["phase_lock"] = {k: dict(v) for k, v in self.phase.items()}
        return out

    def open(self, stream_id: str) -> _ScreenStream:
        return _ScreenStream(self)
