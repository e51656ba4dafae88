import threading
import time

import numpy as np

from operators.observation import Observation
from operators.outcome import Status
from operators.reading import VisionResult
from sinks.memory import ObservationStore


def obs(seq, stream="s"):
    return Observation(
        stream,
        seq,
        time.time(),
        Status.PROCESSED,
        seq,
        VisionResult(stream, seq),
        np.zeros((84, 84, 3), np.uint8),
        np.zeros(4, np.float32),
        emitted_at=time.time(),
    )


def test_latest_history_and_callbacks():
    store = ObservationStore(history=3)
    got = []
    unsubscribe = store.subscribe(got.append)
    for i in range(5):
        store.put(obs(i))
    store.put(obs(0, "t"))
    assert store.latest("s").seq == 4 and store.latest().stream_id == "t"
    assert [o.seq for o in store.history("s")] == [2, 3, 4]
    unsubscribe()
    store.put(obs(5))
    assert len(got) == 6


def test_wait_for_newer_blocks_until_put_or_timeout():
    store = ObservationStore()
    assert store.wait_for("s", 0, timeout=0.01) is None
    threading.Timer(0.05, store.put, args=(obs(3),)).start()
    assert store.wait_for("s", 2, timeout=5).seq == 3


def test_a_failing_subscriber_does_not_break_the_store():
    store = ObservationStore()
    store.subscribe(lambda o: 1 / 0)
    store.put(obs(1))
    assert store.latest("s").seq == 1
