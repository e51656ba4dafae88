"""Vision: the model's reading of a frame, with many calls in flight. A new backend goes here.

:mod:`.queue` is the stage: a bounded pool of calls, staleness and deadlines,
served newest or oldest first, polled without blocking the worker.
:mod:`.local` is the in-process OCR model (the default; its PP-OCR weights ship
in the ``rapidocr-onnxruntime`` wheel); :mod:`.http` speaks to models behind
HTTP (Ollama, OpenAI-compatible servers), which answer in the JSON of
:mod:`operators.reading`. A new backend implements
:class:`~operators.vision.queue.VisionBackend` (``infer(frame) -> VisionResult``)
and is named in a config's ``[vision] backend``.
"""

from operators.vision.queue import (
    ServeOrder,
    VisionBackend,
    VisionMetrics,
    VisionPolicy,
    VisionQueue,
    VisionStage,
)

__all__ = [
    "ServeOrder",
    "VisionBackend",
    "VisionMetrics",
    "VisionPolicy",
    "VisionQueue",
    "VisionStage",
]
