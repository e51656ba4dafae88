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

import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime

import bytewax.operators as op
from bytewax.dataflow import operator
from bytewax.operators import KeyedStream, StatefulBatchLogic

from operators.types import CacheEntry, Encoded, Observation, Outcome, Status, VisionResult

__all__ = ["OrderMetrics", "OrderPolicy", "order_by_seq"]

Clock = Callable[[], float]
Part = VisionResult | Encoded | Outcome | CacheEntry


@dataclass(frozen=True)
class OrderPolicy:
    gap_deadline_ms: float = 15000.0
    keep_results: int = 256  # kept frames remembered for duplicates to resolve against
    cache_results: int = 256  # results of scene-cache entries, for cached(of) frames


@dataclass
class OrderMetrics:
    late: int = 0
    timeouts: int = 0
    max_pending: int = 0


@dataclass
class _Slot:
    first_seen: float
    vision: VisionResult | None = None
    encoded: Encoded | None = None
    outcome: Outcome | None = None
    missing: list[str] = field(default_factory=list)


class OrderLogic(StatefulBatchLogic[Part, "Observation | Outcome", None]):
    """Per-stream re-sequencing state; usable without a flow for tests."""

    def __init__(
        self, policy: OrderPolicy, metrics: OrderMetrics, clock: Clock = time.time
    ) -> None:
        self.policy = policy
        self.metrics = metrics
        self.clock = clock
        self.next_seq = 0
        self.slots: dict[int, _Slot] = {}
        self.kept: OrderedDict[int, Observation | Outcome] = OrderedDict()
        # Scene-cache entries (CacheEntry) and their results, kept past keep_results.
        self.pinned: OrderedDict[int, None] = OrderedDict()
        self.scenes: OrderedDict[int, Observation | Outcome] = OrderedDict()

    # -- bytewax hooks -------------------------------------------------------
    def on_batch(self, values: list[Part]) -> tuple[list[Observation | Outcome], bool]:
        now = self.clock()
        for part in values:
            self.add(part, now)
        return self.drain(now), StatefulBatchLogic.RETAIN

    def on_notify(self) -> tuple[list[Observation | Outcome], bool]:
        return self.drain(self.clock()), StatefulBatchLogic.RETAIN

    def on_eof(self) -> tuple[list[Observation | Outcome], bool]:
        return self.drain(self.clock(), final=True), StatefulBatchLogic.RETAIN

    def notify_at(self) -> datetime | None:
        due = self._head_deadline()
        return None if due is None else datetime.fromtimestamp(due, tz=UTC)

    def snapshot(self) -> None:
        return None

    # -- logic ---------------------------------------------------------------
    def add(self, part: Part, now: float) -> None:
        seq = part.seq
        if isinstance(part, CacheEntry):
            self._pin(seq)
            return
        if seq < self.next_seq:
            self.metrics.late += 1
            return
        slot = self.slots.get(seq)
        if slot is None:
            slot = self.slots[seq] = _Slot(now)
            self.metrics.max_pending = max(self.metrics.max_pending, len(self.slots))
        if slot.outcome is not None:
            self.metrics.late += 1  # the other half of an already failed/dropped seq
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

    def drain(self, now: float, final: bool = False) -> list[Observation | Outcome]:
        out: list[Observation | Outcome] = []
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
        self.metrics.timeouts += 1
        stream = next(iter(self.slots.values()))
        sid = (stream.vision or stream.encoded or stream.outcome).stream_id  # type: ignore[union-attr]
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

    def _resolve(self, seq: int, slot: _Slot) -> Observation | Outcome | None:
        o = slot.outcome
        if o is not None:
            if o.status in (Status.DUPLICATE, Status.CACHED):
                return self._reuse(o)
            self._remember(seq, o)
            return o
        if slot.vision is None or slot.encoded is None:
            return None
        e = slot.encoded
        obs = Observation(
            stream_id=e.stream_id,
            seq=seq,
            captured_at=e.captured_at,
            status=Status.PROCESSED,
            source_seq=seq,
            vision=slot.vision,
            visual=e.visual,
            embedding=e.embedding,
            emitted_at=self.clock(),
            truth=e.truth,
        )
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

    def _reuse(self, o: Outcome) -> Observation | Outcome:
        assert o.of is not None
        ref = self.kept.get(o.of)
        if ref is None and o.of in self.scenes:
            ref = self.scenes[o.of]
            self.scenes.move_to_end(o.of)
        if isinstance(ref, Observation):
            return Observation(
                stream_id=o.stream_id,
                seq=o.seq,
                captured_at=o.captured_at,
                status=o.status,
                source_seq=o.of,
                vision=ref.vision,
                visual=ref.visual,
                embedding=ref.embedding,
                emitted_at=self.clock(),
            )
        if isinstance(ref, Outcome):
            # The kept frame was dropped or failed: its copies end the same way.
            return Outcome(
                o.stream_id,
                o.seq,
                ref.status,
                o.captured_at,
                reason=ref.reason,
                detail=f"{o.status.value} of seq {o.of}, which ended {ref.label}",
            )
        return Outcome(
            o.stream_id,
            o.seq,
            Status.FAILED,
            o.captured_at,
            reason="reference_lost",
            detail=f"{o.status.value} of seq {o.of}, whose result is no longer kept",
        )

    def _remember(self, seq: int, item: Observation | Outcome) -> None:
        if seq in self.pinned:
            self._store_scene(seq, item)
        self.kept[seq] = item
        while len(self.kept) > self.policy.keep_results:
            self.kept.popitem(last=False)


@operator
def order_by_seq(
    step_id: str,
    up: KeyedStream[Part],
    policy: OrderPolicy,
    metrics: OrderMetrics,
    clock: Clock = time.time,
) -> KeyedStream[Observation | Outcome]:
    """Emit exactly one ``Observation`` or ``Outcome`` per ``seq``, in order, per stream.

    In: ``(stream_id, VisionResult | Encoded | Outcome | CacheEntry)``.
    Out: ``(stream_id, Observation | Outcome)``.
    """
    return op.stateful_batch("resequence", up, lambda _resume: OrderLogic(policy, metrics, clock))
