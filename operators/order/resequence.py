"""Order: re-sequence results by ``seq`` per stream and join their halves.

Into this step come, per stream and in any order: the vision half
(``VisionResult``), the encoder half (``Encoded``) and terminal outcomes
(``duplicate``, ``dropped``, ``failed``) from every stage. Out comes exactly
one item per ``seq``, in ``seq`` order: an ``Observation`` (processed, or a
duplicate resolved to its kept frame's result) or an ``Outcome``.

A ``seq`` whose result does not come within ``gap_deadline_ms`` is emitted as
``failed(timeout)`` so the stream never stalls; halves arriving after their
``seq`` was emitted are counted as late and discarded.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Any

from operators.clock import SYSTEM_CLOCK, Clock
from operators.observation import Encoded, Observation
from operators.options import at_least, greater_than
from operators.outcome import CacheEntry, Outcome, Status
from operators.reading import VisionResult

__all__ = ["OrderMetrics", "OrderPolicy", "OrderStage", "Part", "Resequencer"]

Part = VisionResult | Encoded | Outcome | CacheEntry
Out = Observation | Outcome


@dataclass(frozen=True)
class OrderPolicy:
    """How results are re-sequenced. These are also the ``[order]`` config keys."""

    gap_deadline_ms: float = 15000.0
    """A seq with no result this long after its stream moved past it is ``failed(timeout)``."""
    keep_results: int = 256
    """Kept frames' results remembered, per stream, for duplicates to resolve against."""
    cache_results: int = 256
    """Results of scene-cache entries remembered, per stream, for ``cached(of)`` frames."""

    def __post_init__(self) -> None:
        greater_than("order.gap_deadline_ms", self.gap_deadline_ms, 0)
        at_least("order.keep_results", self.keep_results, 1)
        at_least("order.cache_results", self.cache_results, 1)


@dataclass
class OrderMetrics:
    """Counters of the order step, shared by its streams."""

    late: int = 0
    """Halves that came after their seq was emitted (discarded)."""
    timeouts: int = 0
    """Seqs emitted as failed because their parts did not come in time."""
    max_pending: int = 0
    """Most seqs one stream held waiting for the head."""
    lock: threading.Lock = field(default_factory=threading.Lock, repr=False, compare=False)

    def count(self, name: str) -> None:
        with self.lock:
            setattr(self, name, getattr(self, name) + 1)


@dataclass
class _Slot:
    first_seen: float
    vision: VisionResult | None = None
    encoded: Encoded | None = None
    outcome: Outcome | None = None
    missing: list[str] = field(default_factory=list)


class OrderStage:
    """The order step's shared parts: policy, counters, clock."""

    name = "order"

    def __init__(self, policy: OrderPolicy, *, clock: Clock = SYSTEM_CLOCK) -> None:
        self.policy = policy
        self.clock = clock
        self.stats = OrderMetrics()

    def for_stream(self) -> Resequencer:
        return Resequencer(self.policy, self.stats, self.clock)

    def warm_up(self) -> None:
        return None

    def close(self) -> None:
        return None

    def metrics(self) -> dict[str, Any]:
        m = self.stats
        with m.lock:
            return {"late": m.late, "timeouts": m.timeouts, "max_pending": m.max_pending}


class Resequencer:
    """One stream's re-sequencing state: parts in (any order), one item per seq out, in order.

    >>> from operators.testing import FakeClock
    >>> r = Resequencer(OrderPolicy(), OrderMetrics(), FakeClock())
    >>> [o.label for o in r.offer([Outcome("s", 1, Status.DROPPED, reason="stale"),
    ...                            Outcome("s", 0, Status.FAILED, reason="parse")])]
    ['failed(parse)', 'dropped(stale)']
    """

    def __init__(
        self, policy: OrderPolicy, metrics: OrderMetrics, clock: Clock = SYSTEM_CLOCK
    ) -> None:
        self.policy = policy
        self.metrics = metrics
        self.clock = clock
        self.stream_id: str | None = None
        self.next_seq = 0
        self.slots: dict[int, _Slot] = {}
        self.kept: OrderedDict[int, Observation | Outcome] = OrderedDict()
        # Scene-cache entries (CacheEntry) and their results, kept past keep_results.
        self.pinned: OrderedDict[int, None] = OrderedDict()
        self.scenes: OrderedDict[int, Observation | Outcome] = OrderedDict()

    # -- StreamLogic ---------------------------------------------------------------
    def offer(self, parts: list[Part]) -> list[Out]:
        now = self.clock.now()
        for part in parts:
            self.add(part, now)
        return self.release(now)

    def poll(self) -> list[Out]:
        return self.release(self.clock.now())

    def next_wake(self) -> float | None:
        return self._head_deadline()

    def drain(self, until: float | None = None) -> list[Out]:
        """End of stream: every seq still open is emitted now (``failed(eof)`` if incomplete)."""
        return self.release(self.clock.now(), final=True)

    # -- logic ---------------------------------------------------------------------
    def add(self, part: Part, now: float) -> None:
        """Take one part of a seq: a half, an outcome or a scene-cache pin."""
        if self.stream_id is None:
            self.stream_id = part.stream_id
        seq = part.seq
        if isinstance(part, CacheEntry):
            self._pin(seq)
            return
        if seq < self.next_seq:
            self.metrics.count("late")
            return
        slot = self.slots.get(seq)
        if slot is None:
            slot = self.slots[seq] = _Slot(now)
            if len(self.slots) > self.metrics.max_pending:
                with self.metrics.lock:
                    self.metrics.max_pending = max(self.metrics.max_pending, len(self.slots))
        if slot.outcome is not None:
            self.metrics.count("late")  # the other half of an already failed/dropped seq
        elif isinstance(part, Outcome):
            slot.outcome = part
        elif isinstance(part, VisionResult):
            slot.vision = part
        elif isinstance(part, Encoded):
            slot.encoded = part
        else:
            msg = (
                f"order_by_seq got {type(part).__name__}; expected VisionResult, Encoded or Outcome"
            )
            raise TypeError(msg)

    def _head_deadline(self) -> float | None:
        if not self.slots:
            return None
        head = self.slots.get(self.next_seq)
        since = (
            head.first_seen if head is not None else min(s.first_seen for s in self.slots.values())
        )
        return since + self.policy.gap_deadline_ms / 1000.0

    def release(self, now: float, final: bool = False) -> list[Out]:
        """Emit every seq from the head on that is complete, or past the gap deadline."""
        out: list[Out] = []
        while self.slots:
            seq = self.next_seq
            slot = self.slots.get(seq)
            item = self._resolve(seq, slot) if slot is not None else None
            if item is None:
                due = self._head_deadline()
                if not final and due is not None and now < due:
                    break
                item = self._expire(seq, slot, final)
            self.slots.pop(seq, None)
            self.next_seq += 1
            out.append(item)
        return out

    def _expire(self, seq: int, slot: _Slot | None, final: bool) -> Outcome:
        self.metrics.count("timeouts")
        sid = self.stream_id or ""
        if slot is None:
            detail, captured = "no part of this frame arrived", 0.0
        else:
            have = [
                n for n, v in (("vision", slot.vision), ("encoder", slot.encoded)) if v is not None
            ]
            detail = f"only the {' and '.join(have)} half arrived"
            captured = slot.encoded.captured_at if slot.encoded else 0.0
        reason = "eof" if final else "timeout"
        if not final:
            detail += f" within {self.policy.gap_deadline_ms:.0f} ms"
        outcome = Outcome(sid, seq, Status.FAILED, captured, reason=reason, detail=detail)
        self._remember(seq, outcome)
        return outcome

    def _resolve(self, seq: int, slot: _Slot) -> Out | None:
        o = slot.outcome
        if o is not None:
            if o.status in (Status.DUPLICATE, Status.CACHED):
                return self._reuse(o)
            self._remember(seq, o)
            return o
        if slot.vision is None or slot.encoded is None:
            return None
        e = slot.encoded
        obs = Observation.build(e, Status.PROCESSED, seq, slot.vision, e, self.clock.now())
        self._remember(seq, obs)
        return obs

    def _pin(self, seq: int) -> None:
        self.pinned[seq] = None
        while len(self.pinned) > self.policy.cache_results:
            self.pinned.popitem(last=False)
        if seq in self.kept:  # resolved before its pin came
            self._store_scene(seq, self.kept[seq])

    def _store_scene(self, seq: int, item: Observation | Outcome) -> None:
        self.scenes[seq] = item
        self.scenes.move_to_end(seq)
        while len(self.scenes) > self.policy.cache_results:
            self.scenes.popitem(last=False)

    def _reuse(self, o: Outcome) -> Out:
        of = o.of if o.of is not None else o.seq  # Outcome guarantees `of` for these
        ref = self.kept.get(of)
        if ref is None and of in self.scenes:
            ref = self.scenes[of]
            self.scenes.move_to_end(of)
        if isinstance(ref, Observation):
            # this frame's own provenance and truth (what the agent got is scored against
            # it), the kept frame's reading and picture
            return Observation.build(o, o.status, of, ref.vision, ref, self.clock.now())
        if isinstance(ref, Outcome):
            # The kept frame was dropped or failed: its copies end the same way.
            return Outcome(
                o.stream_id,
                o.seq,
                ref.status,
                o.captured_at,
                reason=ref.reason,
                detail=f"{o.status.value} of seq {of}, which ended {ref.label}",
            )
        return Outcome(
            o.stream_id,
            o.seq,
            Status.FAILED,
            o.captured_at,
            reason="reference_lost",
            detail=f"{o.status.value} of seq {of}, whose result is no longer kept",
        )

    def _remember(self, seq: int, item: Observation | Outcome) -> None:
        if seq in self.pinned:
            self._store_scene(seq, item)
        self.kept[seq] = item
        while len(self.kept) > self.policy.keep_results:
            self.kept.popitem(last=False)
