"""Small statistics shared by the stages' metrics and the run summary."""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Sequence
from typing import Any

import numpy as np

__all__ = ["LagStats", "StepTimes", "percentiles"]


def percentiles(
    values: Sequence[float] | deque[float], qs: Sequence[int] = (50, 99)
) -> dict[str, float]:
    """``{"p50": ..., "p99": ..., "mean": ..., "n": ...}`` (NaN-free: zeros when empty)."""
    arr = np.asarray(list(values), dtype=np.float64)
    out: dict[str, float] = {f"p{q}": float(np.percentile(arr, q)) if arr.size else 0.0 for q in qs}
    out["mean"] = float(arr.mean()) if arr.size else 0.0
    out["n"] = int(arr.size)
    return out


class StepTimes:
    """Seconds the dataflow spends in each step's own Python, for the cost-per-stage table.

    The Bytewax adapter adds every activation of a step (``add(step, seconds, items)``:
    a source's batch, a stage's ``offer``/``poll``/``drain``, the sink's write); the
    summary divides by the frames captured. Costs two clock reads and an uncontended
    lock per activation.

    >>> t = StepTimes(); t.add("dedup", 0.003, 2); t.add("dedup", 0.001, 0)
    >>> t.summary(frames=4)["dedup"]
    {'seconds': 0.004, 'calls': 2, 'items': 2, 'us_per_frame': 1000.0}
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._steps: dict[str, list[Any]] = {}

    def add(self, step: str, seconds: float, items: int) -> None:
        with self._lock:
            entry = self._steps.get(step)
            if entry is None:
                entry = self._steps[step] = [0.0, 0, 0]
            entry[0] += seconds
            entry[1] += 1
            entry[2] += items

    def summary(self, frames: int) -> dict[str, dict[str, Any]]:
        """Per step: total ``seconds``, activations (``calls``), ``items`` taken in, and
        ``us_per_frame`` (seconds over ``frames`` captured)."""
        with self._lock:
            return {
                step: {
                    "seconds": round(sec, 6),
                    "calls": calls,
                    "items": items,
                    "us_per_frame": round(sec / frames * 1e6, 2) if frames else 0.0,
                }
                for step, (sec, calls, items) in self._steps.items()
            }


class LagStats:
    """Lags an agent sees, by kind, bounded (the last ``keep`` of each): ``observation``
    (capture → the agent's step), ``action_to_pixels`` (input sent → the first frame that
    shows its effect) and ``action_to_observation`` (input sent → that frame's observation
    in the agent's hands); ``probes_lost`` counts probes no frame answered in time.

    >>> lag = LagStats(); lag.add("observation", 12.0); lag.add("observation", 14.0)
    >>> lag.summary()["observation_ms"]["p50"]
    13.0
    """

    KINDS = ("observation", "action_to_pixels", "action_to_observation", "thinking")
    """``thinking``: with ``[env] timing = "period"``, the agent's time between the end of
    one control period and its next action (the game runs on with no key held)."""

    def __init__(self, keep: int = 10_000) -> None:
        self._lock = threading.Lock()
        self._ms: dict[str, deque[float]] = {k: deque(maxlen=keep) for k in self.KINDS}
        self.probes = 0
        self.probes_lost = 0
        self.periods = 0
        self.overruns = 0

    def add(self, kind: str, ms: float) -> None:
        with self._lock:
            self._ms[kind].append(float(ms))

    def period(self, thinking_ms: float, overrun: bool) -> None:
        """One control period: the agent's thinking before it, and whether that took
        longer than a period (a late agent: the game ran a whole period without input)."""
        with self._lock:
            self._ms["thinking"].append(float(thinking_ms))
            self.periods += 1
            self.overruns += overrun

    def probe(self, answered: bool) -> None:
        with self._lock:
            self.probes += 1
            self.probes_lost += not answered

    def summary(self) -> dict[str, Any]:
        with self._lock:
            out: dict[str, Any] = {f"{k}_ms": percentiles(v) for k, v in self._ms.items()}
            out["probes"] = self.probes
            out["probes_lost"] = self.probes_lost
            out["periods"] = self.periods
            out["overruns"] = self.overruns
            return out
