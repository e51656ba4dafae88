"""Small statistics shared by the stages' metrics and the run summary."""

from __future__ import annotations

from collections import deque
from collections.abc import Sequence

import numpy as np

__all__ = ["percentiles"]


def percentiles(
    values: Sequence[float] | deque[float], qs: Sequence[int] = (50, 99)
) -> dict[str, float]:
    """``{"p50": ..., "p99": ..., "mean": ..., "n": ...}`` (NaN-free: zeros when empty)."""
    arr = np.asarray(list(values), dtype=np.float64)
    out: dict[str, float] = {f"p{q}": float(np.percentile(arr, q)) if arr.size else 0.0 for q in qs}
    out["mean"] = float(arr.mean()) if arr.size else 0.0
    out["n"] = int(arr.size)
    return out
