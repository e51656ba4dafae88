"""Batch: a window of frames (size, or a deadline from its first frame) and one encoder call per batch.

:mod:`.window` is the stage (window, bounded pending batches, autotuned size);
:mod:`.encoder` is the torch encoder (CUDA when present, CPU otherwise),
imported lazily. A new encoder implements
:class:`~operators.batch.window.BatchEncoder` and is named in ``[batch] encoder``.
"""

from operators.batch.window import BatchEncoder, BatchWindow, EncodeStage, WindowPolicy

__all__ = ["BatchEncoder", "BatchWindow", "EncodeStage", "WindowPolicy"]
