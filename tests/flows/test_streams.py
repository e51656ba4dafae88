"""Several streams through the whole pipeline, to the end, with one and two workers.

Every run must end by itself (a watchdog fails the test instead of hanging) with
every captured frame of every stream resolved: end-of-stream drains are bounded
by each item's own deadline, and one stream's finished work never holds a pool
slot another stream waits for.
"""

import pytest

from flows.runner import Pipeline

FRAMES = 24


def _overrides(streams, backend="local"):
    return {
        "capture": {
            "options": {"streams": streams, "frames": FRAMES, "fps": 0, "width": 320, "height": 180}
        },
        "vision": {"backend": backend, "max_in_flight": 2},
        "batch": {
            "max_size": 4,
            "max_pending_batches": 2,
            "options": {"device": "cpu", "threads": 1},
        },
        "run": {"status_interval_s": 0.0},
    }


@pytest.mark.parametrize("workers", [1, 2])
@pytest.mark.parametrize("streams", [2, 4])
def test_every_stream_ends_and_every_frame_is_resolved(streams, workers):
    for _ in range(3):
        pipeline = Pipeline(overrides=_overrides(streams), workers=workers)
        summary = pipeline.wait(timeout=120)  # a hang fails here, naming the ledger
        led = summary["ledger"]
        assert led["captured"] == streams * FRAMES, led
        assert led["in_flight"] == 0 and led["balanced"] and not led["violations"], led
        assert led["processed"] > 0
        assert sorted(pipeline.store.streams()) == [f"arena-{i}" for i in range(streams)]
