"""Order: results re-sequenced by ``seq`` per stream, the vision and encoder halves joined.

:mod:`.resequence` resolves duplicates and cache hits to their kept frame,
builds each :class:`~operators.observation.Observation` once, and never stalls
on a frame that will not come (a gap deadline).
"""

from operators.order.resequence import OrderPolicy, OrderStage, Resequencer

__all__ = ["OrderPolicy", "OrderStage", "Resequencer"]
