"""The in-memory sink: freshest observation per stream, bounded ordered history.

The dataflow's last step writes ``(stream_id, Observation | Outcome)`` here;
every item resolves its ``seq`` in the run's ledger, and observations become
readable by the env (or anyone) without waiting on the pipeline.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Callable

from bytewax.outputs import DynamicSink, StatelessSinkPartition

from operators.ledger import Ledger
from operators.observation import Observation
from operators.outcome import Outcome
from operators.stats import StepTimes

__all__ = ["MemorySink", "ObservationStore"]

logger = logging.getLogger(__name__)
Item = tuple[str, Observation | Outcome]


class ObservationStore:
    """Thread-safe store of observations: O(1) freshest read, bounded history, waits, callbacks.

    >>> store = ObservationStore(history=2)
    >>> store.latest() is None
    True
    """

    def __init__(self, history: int = 256) -> None:
        if history < 1:
            msg = f"sink.history must be >= 1; got {history}"
            raise ValueError(msg)
        self._cond = threading.Condition()
        self._latest: dict[str, Observation] = {}
        self._newest: Observation | None = None
        self._history: dict[str, deque[Observation]] = {}
        self._maxlen = history
        self._subscribers: list[Callable[[Observation], None]] = []
        self._ended: dict[str, int] = {}

    def ended(self, outcome: Outcome) -> None:
        """A frame that ended without an observation (``dropped``, ``failed``): a wait for
        it (:meth:`wait_ended`) is over."""
        with self._cond:
            if outcome.seq > self._ended.get(outcome.stream_id, -1):
                self._ended[outcome.stream_id] = outcome.seq
            self._cond.notify_all()

    def wait_ended(self, stream_id: str, seq: int, timeout: float) -> bool:
        """Block up to ``timeout`` s until frame ``seq`` of ``stream_id`` (and every frame
        before it: the sink gets them in order) has ended, with an observation or without;
        ``False`` on timeout."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while self._ended.get(stream_id, -1) < seq:
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self._cond.wait(left)
            return True

    def put(self, obs: Observation) -> None:
        with self._cond:
            if obs.seq > self._ended.get(obs.stream_id, -1):
                self._ended[obs.stream_id] = obs.seq
            self._latest[obs.stream_id] = obs
            self._newest = obs
            self._history.setdefault(obs.stream_id, deque(maxlen=self._maxlen)).append(obs)
            self._cond.notify_all()
            subscribers = list(self._subscribers)
        for cb in subscribers:
            try:
                cb(obs)
            except Exception:  # a subscriber's bug must not stop the dataflow
                logger.exception("observation subscriber %r failed", cb)

    def latest(self, stream_id: str | None = None) -> Observation | None:
        """The freshest observation of ``stream_id`` (of any stream when ``None``)."""
        with self._cond:
            return self._newest if stream_id is None else self._latest.get(stream_id)

    def history(self, stream_id: str) -> list[Observation]:
        """Recent observations of a stream, oldest first."""
        with self._cond:
            return list(self._history.get(stream_id, ()))

    def streams(self) -> list[str]:
        with self._cond:
            return list(self._latest)

    def wait_for(
        self,
        stream_id: str,
        min_seq: int,
        timeout: float,
        *,
        captured_after: float | None = None,
    ) -> Observation | None:
        """Block up to ``timeout`` s for an observation of ``stream_id`` with ``seq >= min_seq``
        (and, given ``captured_after``, a capture time after it)."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while True:
                obs = self._latest.get(stream_id)
                if (
                    obs is not None
                    and obs.seq >= min_seq
                    and (captured_after is None or obs.captured_at > captured_after)
                ):
                    return obs
                left = deadline - time.monotonic()
                if left <= 0:
                    return None
                self._cond.wait(left)

    def subscribe(self, callback: Callable[[Observation], None]) -> Callable[[], None]:
        """Call ``callback(obs)`` on the dataflow thread for each new observation; returns an unsubscribe."""
        with self._cond:
            self._subscribers.append(callback)

        def unsubscribe() -> None:
            with self._cond:
                if callback in self._subscribers:
                    self._subscribers.remove(callback)

        return unsubscribe


class _MemoryPartition(StatelessSinkPartition[Item]):
    def __init__(self, sink: MemorySink) -> None:
        self.sink = sink

    def write_batch(self, items: list[Item]) -> None:
        times = self.sink.times
        t = time.perf_counter() if times is not None else 0.0
        self._write(items)
        if times is not None:
            times.add("sink", time.perf_counter() - t, len(items))

    def _write(self, items: list[Item]) -> None:
        for _key, item in items:
            if isinstance(item, Observation):
                self.sink.store.put(item)
                self.sink.ledger.record(item.outcome)
            elif isinstance(item, Outcome):
                self.sink.ledger.record(item)
                self.sink.store.ended(item)
            else:
                logger.error("memory sink got %r; expected Observation or Outcome", item)
                continue
            if self.sink.on_item is not None:
                self.sink.on_item(item)

    def close(self) -> None:
        if self.sink.on_close is not None:
            self.sink.on_close()


class MemorySink(DynamicSink[Item]):
    """Writes observations into an :class:`ObservationStore` and outcomes into a :class:`Ledger`.

    ``on_item`` is called for every item written (the live status line);
    ``on_build(worker_index, worker_count)`` / ``on_close()`` once per worker
    of this process when its partition is built / when the dataflow completes.
    """

    def __init__(
        self,
        store: ObservationStore,
        ledger: Ledger,
        on_item: Callable[[Observation | Outcome], None] | None = None,
        on_close: Callable[[], None] | None = None,
        on_build: Callable[[int, int], None] | None = None,
        times: StepTimes | None = None,
    ) -> None:
        self.times = times
        self.store = store
        self.ledger = ledger
        self.on_item = on_item
        self.on_close = on_close
        self.on_build = on_build

    def build(self, step_id: str, worker_index: int, worker_count: int) -> _MemoryPartition:
        if self.on_build is not None:
            self.on_build(worker_index, worker_count)
        return _MemoryPartition(self)
