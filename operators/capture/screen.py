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
import time
from collections.abc import Mapping
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

__all__ = ["ScreenSource", "grab_rgb"]

logger = logging.getLogger(__name__)


def grab_rgb(sct: Any, area: Mapping[str, int]) -> np.ndarray:
    """One screenshot of ``area`` (mss monitor dict) as an RGB ``(H, W, 3)`` uint8 array."""
    shot = sct.grab(dict(area))
    bgra = np.frombuffer(shot.bgra, np.uint8).reshape(shot.height, shot.width, 4)
    return cv2.cvtColor(bgra, cv2.COLOR_BGRA2RGB)


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

    def next_frames(self) -> list[Frame]:
        src = self.src
        if 0 < src.frames <= self.seq:
            raise StopIteration
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

    def open(self, stream_id: str) -> _ScreenStream:
        return _ScreenStream(self)
