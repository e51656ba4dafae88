"""The item types of every boundary, gathered for plug-in authors: import from here or from
the module that owns each one.

- :mod:`operators.frame` — ``Frame`` (capture → dedup → vision / encoder), ``image_problem``
- :mod:`operators.reading` — ``VisionResult``, ``Scene``, ``Detection`` (vision → order)
- :mod:`operators.reading` — the JSON schema a model answers in, and its parser
- :mod:`operators.observation` — ``Encoded`` (encoder → order), ``Observation`` (order → sink)
- :mod:`operators.outcome` — ``Outcome``, ``Status``, ``CacheEntry`` (the ledger)
- :mod:`operators.truth` — ``GroundTruth`` (what a simulator knows; for scoring)
"""

from operators.frame import Frame, image_problem
from operators.observation import Encoded, Observation
from operators.outcome import CacheEntry, Outcome, Status
from operators.reading import HUD_FIELDS, Detection, Scene, VisionResult
from operators.truth import GroundTruth

__all__ = [
    "HUD_FIELDS",
    "CacheEntry",
    "Detection",
    "Encoded",
    "Frame",
    "GroundTruth",
    "Observation",
    "Outcome",
    "Scene",
    "Status",
    "VisionResult",
    "image_problem",
]
