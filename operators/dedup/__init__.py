"""Dedup: skip frames a player would see as unchanged, reuse results of scenes seen before.

:mod:`.detectors` holds the change detectors (:class:`RegionDetector`, which
watches the HUD regions in colour and the rest of the frame by hash and tone,
and :class:`ThumbnailDetector`) and the scene cache; :mod:`.stage` is the
per-stream dedup logic and its scene routes. A new change detector implements
:class:`~operators.dedup.detectors.ChangeDetector` and is named in a config's
``[dedup] detector``.
"""

from operators.dedup.detectors import (
    ChangeDetector,
    RegionDetector,
    SceneCache,
    SceneClassifier,
    Signature,
    ThumbnailDetector,
)
from operators.dedup.stage import DedupLogic, DedupStage, Route

__all__ = [
    "ChangeDetector",
    "DedupLogic",
    "DedupStage",
    "RegionDetector",
    "Route",
    "SceneCache",
    "SceneClassifier",
    "Signature",
    "ThumbnailDetector",
]
