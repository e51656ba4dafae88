"""The ledger: every captured ``seq`` ends in exactly one terminal outcome.

``captured == sum(outcomes) + in_flight`` holds at any moment, because
``in_flight`` is the set of seqs captured and not yet resolved, kept per
stream. A seq resolved twice, or resolved without having been captured, is
counted as a contract violation (``violations``), never silently merged.
Once the run has ended (:meth:`Ledger.end`), frames still in flight are
unresolved: the ledger is then balanced only if there are none.

Thread-safe: the source records captures on a Bytewax worker thread, the sink
records outcomes on (possibly another) worker thread, and the env reads
counts from the agent's thread.
"""

from __future__ import annotations

import threading
from collections import Counter
from typing import Any

from operators.outcome import Outcome, Status

__all__ = ["Ledger"]


class Ledger:
    """Per-process accounting of every captured frame.

    >>> from operators.outcome import Outcome, Status
    >>> ledger = Ledger()
    >>> ledger.captured("s", 0)
    >>> ledger.counts()["in_flight"]
    1
    >>> ledger.record(Outcome("s", 0, Status.PROCESSED))
    >>> ledger.balanced()
    True
    >>> ledger.captured("s", 1); ledger.end(); ledger.balanced()
    False
    """

    MAX_VIOLATIONS_KEPT = 20

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._open: dict[str, set[int]] = {}
        self._captured = 0
        self._status: Counter[str] = Counter()
        self._reasons: Counter[str] = Counter()
        self._by_stream: Counter[tuple[str, str, str]] = Counter()  # (stream, status, reason)
        self._captured_by_stream: Counter[str] = Counter()
        self.violations: list[str] = []
        """The first ``MAX_VIOLATIONS_KEPT`` violations, described."""
        self.violation_count = 0
        """Every violation, counted."""
        self.ended = False

    def _violation(self, text: str) -> None:
        self.violation_count += 1
        if len(self.violations) < self.MAX_VIOLATIONS_KEPT:
            self.violations.append(text)

    def end(self) -> None:
        """The run is over: what is still in flight now will never be resolved."""
        with self._lock:
            self.ended = True

    def captured(self, stream_id: str, seq: int) -> None:
        with self._lock:
            open_ = self._open.setdefault(stream_id, set())
            if seq in open_:
                self._violation(f"{stream_id}#{seq} captured twice")
                return
            open_.add(seq)
            self._captured += 1
            self._captured_by_stream[stream_id] += 1

    def record(self, outcome: Outcome) -> None:
        with self._lock:
            open_ = self._open.get(outcome.stream_id)
            if open_ is None or outcome.seq not in open_:
                self._violation(
                    f"{outcome.stream_id}#{outcome.seq} resolved as {outcome.label} "
                    "but it is not in flight (resolved twice or never captured)"
                )
                return
            open_.discard(outcome.seq)
            self._status[outcome.status.value] += 1
            self._by_stream[(outcome.stream_id, outcome.status.value, outcome.reason or "")] += 1
            if outcome.status in (Status.DROPPED, Status.FAILED):
                self._reasons[f"{outcome.status.value}({outcome.reason})"] += 1

    def in_flight(self) -> int:
        with self._lock:
            return sum(len(s) for s in self._open.values())

    def counts(self) -> dict[str, int]:
        """``{"captured", "in_flight", "processed", "duplicate", "cached", "dropped", "failed"}``."""
        with self._lock:
            out = {
                "captured": self._captured,
                "in_flight": sum(len(s) for s in self._open.values()),
            }
            for s in Status:
                out[s.value] = self._status[s.value]
            return out

    def stream_counts(self, stream_id: str) -> dict[str, int]:
        """:meth:`counts` for one stream."""
        with self._lock:
            out = {
                "captured": self._captured_by_stream[stream_id],
                "in_flight": len(self._open.get(stream_id, ())),
            }
            for s in Status:
                out[s.value] = 0
            for (sid, status, _reason), n in self._by_stream.items():
                if sid == stream_id:
                    out[status] += n
            return out

    def by_stream(self) -> tuple[dict[str, int], dict[tuple[str, str, str], int], dict[str, int]]:
        """Per stream: frames captured, frames resolved by ``(stream, status, reason)``, and
        frames in flight (for metrics endpoints)."""
        with self._lock:
            in_flight = {sid: len(seqs) for sid, seqs in self._open.items()}
            return dict(self._captured_by_stream), dict(self._by_stream), in_flight

    def reasons(self) -> dict[str, int]:
        """Counts of ``dropped(reason)`` and ``failed(reason)`` by reason."""
        with self._lock:
            return dict(self._reasons)

    def balanced(self) -> bool:
        """Every captured frame accounted for, no violation, and, once the run has
        ended, none left unresolved."""
        c = self.counts()
        resolved = sum(c[s.value] for s in Status)
        if self.violation_count or c["captured"] != resolved + c["in_flight"]:
            return False
        return not (self.ended and c["in_flight"])

    def summary(self) -> dict[str, Any]:
        c: dict[str, Any] = self.counts()
        c["reasons"] = self.reasons()
        c["balanced"] = self.balanced()
        c["ended"] = self.ended
        c["unresolved"] = c["in_flight"] if self.ended else 0
        c["violation_count"] = self.violation_count
        c["violations"] = list(self.violations)
        with self._lock:
            c["streams"] = sorted(self._open)
        return c
