"""The dedup stage: per stream, skip frames equal to the last kept one, reuse results
of scenes seen before, route scenes (model, classify, drop).
"""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Iterable, Mapping
from enum import Enum
from typing import Any, Literal

from operators.dedup.detectors import ChangeDetector, SceneCache, SceneClassifier
from operators.errors import ConfigError
from operators.frame import Frame
from operators.outcome import CacheEntry, Outcome
from operators.reading import Scene, VisionResult

__all__ = ["DedupLogic", "DedupStage", "Route", "Tag"]


class Route(str, Enum):
    """What the dedup step does with a new (not duplicate) frame of a scene."""

    MODEL = "model"
    """Send it to the vision model (and the encoder)."""
    CLASSIFY = "classify"
    """No model call: the scene classifier's reading is its vision result (HUD unknown)."""
    DROP = "drop"
    """Drop it: ``dropped(scene_<name>)``."""


Tag = Literal["model", "encode", "part", "skip"]
"""Where :class:`DedupLogic` sends an item: ``model`` (a ``Frame`` for the vision model and
the encoder), ``encode`` (a ``Frame`` for the encoder only, its scene read by the
classifier), ``part`` (a ``VisionResult`` or ``CacheEntry`` for the order step), ``skip``
(an ``Outcome``: ``duplicate``, ``cached``, ``dropped(scene_*)``, ``failed(capture)``)."""


class DedupStage:
    """The dedup step's settings, shared by its streams.

    A frame the same as the last kept one is ``duplicate(of)``. With
    ``cache_size``, a new frame of a scene in ``cache_scenes`` that matches an
    earlier kept frame of the scene cache is ``cached(of)``. ``routes`` picks, per
    classified scene, model / classify / drop. Both need a detector that
    classifies scenes (:class:`SceneClassifier`, e.g. :class:`RegionDetector`).
    With ``enabled=False`` (or no detector) every valid frame goes to the model.
    """

    name = "dedup"

    def __init__(
        self,
        detector: ChangeDetector | None,
        *,
        enabled: bool = True,
        cache_size: int = 0,
        cache_scenes: Iterable[Scene] = (Scene.MENU, Scene.LOADING, Scene.DEATH),
        routes: Mapping[Scene, Route] | None = None,
    ) -> None:
        self.detector = detector if enabled else None
        self.classifier = self.detector if isinstance(self.detector, SceneClassifier) else None
        self.routes = dict(routes or {})
        self.cache_size = int(cache_size)
        self.cache_scenes = frozenset(cache_scenes)
        if self.detector is not None and (self.routes or self.cache_size) and not self.classifier:
            msg = (
                f"dedup.detector: {type(self.detector).__name__} cannot classify scenes; "
                "dedup.routes and dedup.cache_size need one that can (e.g. 'regions')"
            )
            raise ConfigError(msg)
        self.counts: Counter[str] = Counter(model=0, duplicate=0, cached=0, routed=0)
        self.lock = threading.Lock()

    def count(self, what: str) -> None:
        with self.lock:
            self.counts[what] += 1

    def for_stream(self) -> DedupLogic:
        return DedupLogic(self)

    def warm_up(self) -> None:
        return None

    def close(self) -> None:
        return None

    def metrics(self) -> dict[str, Any]:
        with self.lock:
            counts = dict(self.counts)
        return {"detector": type(self.detector).__name__ if self.detector else None, **counts}


class DedupLogic:
    """One stream's last kept frame and scene cache; routes each frame (see :data:`Tag`)."""

    def __init__(self, stage: DedupStage) -> None:
        self.stage = stage
        self.last_seq: int | None = None
        self.last_sig: Any = None
        self.cache = (
            SceneCache(stage.classifier, stage.cache_size)
            if stage.classifier is not None and stage.cache_size
            else None
        )

    # -- StreamLogic ---------------------------------------------------------------
    def offer(self, frames: list[Frame]) -> list[tuple[Tag, Any]]:
        out: list[tuple[Tag, Any]] = []
        for frame in frames:
            out.extend(self.route(frame))
        return out

    def poll(self) -> list[tuple[Tag, Any]]:
        return []

    def next_wake(self) -> float | None:
        return None

    def drain(self, until: float | None = None) -> list[tuple[Tag, Any]]:
        return []

    # -- logic -----------------------------------------------------------------------
    def route(self, frame: Frame) -> list[tuple[Tag, Any]]:
        """Where one frame goes: see :data:`Tag`."""
        st = self.stage
        problem = frame.image_error()
        if problem is not None:
            return [("skip", Outcome.failed(frame, "capture", problem))]
        detector = st.detector
        if detector is None:
            st.count("model")
            return [("model", frame)]
        sig = detector.signature(frame.image)
        if self.last_seq is not None and detector.same(self.last_sig, sig):
            st.count("duplicate")
            return [("skip", Outcome.duplicate(frame, of=self.last_seq))]
        scene = st.classifier.classify(sig) if st.classifier is not None else None
        cache = self.cache if scene in st.cache_scenes else None
        if cache is not None:
            hit = cache.find(sig)
            if hit is not None:
                self.last_seq, self.last_sig = hit, sig
                st.count("cached")
                return [("skip", Outcome.cached(frame, of=hit))]
        route = Route.MODEL if scene is None else st.routes.get(scene, Route.MODEL)
        if route is Route.DROP and scene is not None:
            st.count("routed")
            reason = f"scene_{scene.value}"
            return [("skip", Outcome.dropped(frame, reason, "routed to drop by dedup.routes"))]
        self.last_seq, self.last_sig = frame.seq, sig
        if route is Route.CLASSIFY and scene is not None:
            st.count("routed")
            reading = VisionResult(frame.stream_id, frame.seq, scene=scene, backend="scene")
            return [("encode", frame), ("part", reading)]
        st.count("model")
        out: list[tuple[Tag, Any]] = [("model", frame)]
        if cache is not None:
            cache.add(frame.seq, sig)
            out.append(("part", CacheEntry(frame.stream_id, frame.seq)))
        return out
