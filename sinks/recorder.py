"""Recorder: write a stream of frames to a recorded-stream folder (no pickle).

A recording is a folder with one PNG per frame, in chunk folders of
``chunk_frames`` frames (``chunk-00000/00000000.png``: no folder grows past a
few thousand files however long the session), and ``index.jsonl``, one JSON
line per frame: ``{"seq", "captured_at", "file", "truth"}``. The index is
appended and flushed line by line, so memory stays bounded, and a crash
leaves every frame before it readable. A frame whose capture failed is
recorded as ``{"seq", "captured_at", "error"}`` and replays as
``failed(capture)``.
:class:`~operators.capture.ReplaySource` reads it back.
"""

from __future__ import annotations

import json
import threading
from pathlib import Path
from typing import Any

import cv2
from bytewax.outputs import DynamicSink, StatelessSinkPartition

from operators.capture.replay import INDEX_NAME
from operators.errors import RecordingError
from operators.frame import Frame

__all__ = ["RecorderSink", "RecordingWriter"]


class RecordingWriter:
    """Appends frames to a recording folder; one writer per stream.

    >>> import tempfile, numpy as np
    >>> from operators.frame import Frame
    >>> with RecordingWriter(tempfile.mkdtemp()) as w:
    ...     w.write(Frame("s", 0, 0.0, np.zeros((16, 16, 3), np.uint8)))
    """

    def __init__(self, path: str | Path, compression: int = 3, chunk_frames: int = 1000) -> None:
        if chunk_frames < 1:
            msg = f"chunk_frames must be >= 1; got {chunk_frames}"
            raise ValueError(msg)
        self.chunk_frames = chunk_frames
        self.path = Path(path)
        self.path.mkdir(parents=True, exist_ok=True)
        if (self.path / INDEX_NAME).exists():
            msg = f"{self.path}: already holds a recording; choose an empty folder"
            raise RecordingError(msg)
        self._index = (self.path / INDEX_NAME).open("a", encoding="utf-8")
        self._params = [cv2.IMWRITE_PNG_COMPRESSION, int(compression)]
        self._lock = threading.Lock()
        self.count = 0

    def write(self, frame: Frame) -> None:
        problem = frame.image_error()
        if problem is not None:  # keep the failure in the recording, not the picture
            self._append({"seq": frame.seq, "captured_at": frame.captured_at, "error": problem})
            return
        chunk = f"chunk-{frame.seq // self.chunk_frames:05d}"
        (self.path / chunk).mkdir(exist_ok=True)
        name = f"{chunk}/{frame.seq:08d}.png"
        if not cv2.imwrite(str(self.path / name), frame.image[..., ::-1], self._params):
            msg = f"{self.path / name}: could not write the frame"
            raise RecordingError(msg)
        entry: dict[str, Any] = {"seq": frame.seq, "captured_at": frame.captured_at, "file": name}
        if frame.truth is not None:
            entry["truth"] = frame.truth.to_dict()
        self._append(entry)

    def _append(self, entry: dict[str, Any]) -> None:
        with self._lock:
            self._index.write(json.dumps(entry) + "\n")
            self._index.flush()
            self.count += 1

    def close(self) -> None:
        self._index.close()

    def __enter__(self) -> RecordingWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class _RecorderPartition(StatelessSinkPartition[tuple[str, Frame]]):
    def __init__(self, sink: RecorderSink) -> None:
        self.sink = sink

    def write_batch(self, items: list[tuple[str, Frame]]) -> None:
        for stream_id, frame in items:
            self.sink.writer(stream_id).write(frame)

    def close(self) -> None:
        self.sink.close()


class RecorderSink(DynamicSink[tuple[str, Frame]]):
    """Records ``(stream_id, Frame)`` items, one folder per stream under ``root``."""

    def __init__(self, root: str | Path) -> None:
        self.root = Path(root)
        self._writers: dict[str, RecordingWriter] = {}
        self._lock = threading.Lock()

    def writer(self, stream_id: str) -> RecordingWriter:
        with self._lock:
            if stream_id not in self._writers:
                self._writers[stream_id] = RecordingWriter(self.root / stream_id)
            return self._writers[stream_id]

    def close(self) -> None:
        with self._lock:
            for w in self._writers.values():
                w.close()

    def build(self, step_id: str, worker_index: int, worker_count: int) -> _RecorderPartition:
        return _RecorderPartition(self)
