"""Capture: where frames come from. A new source goes here.

Every source is a :class:`~operators.capture.base.CaptureStage` that lists its
streams and opens a :class:`~operators.capture.base.FrameStream` per stream; a
stream stamps each frame with ``stream_id``, a gap-free ``seq`` and its capture
time, and paces itself without sleeping. :mod:`.arena` is the built-in
simulator (with ground truth), :mod:`.replay` replays recordings,
and :mod:`.screen` grabs a live X11 / Windows / macOS screen (or one window)
with mss; :mod:`.doom` runs Freedoom through ViZDoom (on a display for the screen
source, or in-process as a source of its own) and turns its variables into ground
truth. An agent drives a game source through an :class:`~.base.AgentControl`; in
lockstep (the arena, Doom) the game makes a frame only when its agent acts. Register a new source by name in :mod:`flows.registry` or name it
as ``"module:attr"`` in a config.
"""

from operators.capture.arena import ArenaControl, ArenaSource
from operators.capture.base import AgentControl, CaptureStage, FrameStream, Pacer, SourceBase
from operators.capture.replay import INDEX_NAME, IndexEntry, ReplaySource, read_index

__all__ = [
    "INDEX_NAME",
    "AgentControl",
    "ArenaControl",
    "ArenaSource",
    "CaptureStage",
    "FrameStream",
    "IndexEntry",
    "Pacer",
    "ReplaySource",
    "SourceBase",
    "read_index",
]
