import bytewax.operators as op
import cv2
import numpy as np
from bytewax.dataflow import Dataflow
from bytewax.testing import TestingSink, TestingSource, cluster_main, run_main

from operators.arena import Arena
from operators.dedup import ThumbnailDetector, dedup
from operators.types import Frame, Outcome, Status


def _run(frames, workers=1, enabled=True):
    flow = Dataflow("dedup_test")
    inp = op.key_on("key", op.input("in", flow, TestingSource(frames)), lambda f: f.stream_id)
    out = dedup("dedup", inp, ThumbnailDetector(), enabled=enabled)
    kept, skipped = [], []
    op.output("kept", out.kept, TestingSink(kept))
    op.output("skipped", out.skipped, TestingSink(skipped))
    if workers == 1:
        run_main(flow)
    else:
        cluster_main(flow, [], 0, worker_count_per_proc=workers)
    return [f for _, f in kept], [o for _, o in skipped]


def _hud_frames():
    arena = Arena(width=640, height=360, seed=4, n_enemies=0)
    a = arena.render()
    arena.health = 62
    b = arena.render()
    return a, b


def test_identical_frames_are_duplicates_of_the_kept_one():
    a, _ = _hud_frames()
    frames = [Frame("s", i, float(i), a.copy()) for i in range(4)]
    kept, skipped = _run(frames)
    assert [f.seq for f in kept] == [0]
    assert [(o.seq, o.status, o.of) for o in skipped] == [
        (i, Status.DUPLICATE, 0) for i in (1, 2, 3)
    ]


def test_hud_digit_change_is_never_a_duplicate():
    a, b = _hud_frames()
    det = ThumbnailDetector()
    assert not det.same(det.signature(a), det.signature(b))
    kept, skipped = _run(
        [Frame("s", 0, 0.0, a), Frame("s", 1, 0.1, b), Frame("s", 2, 0.2, b.copy())]
    )
    assert [f.seq for f in kept] == [0, 1]
    assert [(o.seq, o.of) for o in skipped] == [(2, 1)]


def test_noise_still_deduplicates():
    a, _ = _hud_frames()
    det = ThumbnailDetector()
    ok, jpg = cv2.imencode(".jpg", a, [cv2.IMWRITE_JPEG_QUALITY, 90])
    assert ok
    recoded = cv2.imdecode(jpg, cv2.IMREAD_COLOR)
    brighter = np.clip(a.astype(np.int16) + 2, 0, 255).astype(np.uint8)
    assert det.same(det.signature(a), det.signature(recoded))
    assert det.same(det.signature(a), det.signature(brighter))


def test_bad_frames_fail_and_the_rest_flow_on():
    a, _ = _hud_frames()
    frames = [
        Frame("s", 0, 0.0, np.zeros((10, 10), np.uint8)),
        Frame("s", 1, 0.0, a),
        Frame("s", 2, 0.0, np.zeros((0, 0, 3), np.uint8), error="x.png: cannot decode image"),
    ]
    kept, skipped = _run(frames)
    assert [f.seq for f in kept] == [1]
    assert [(o.seq, o.status, o.reason) for o in skipped] == [
        (0, Status.FAILED, "capture"),
        (2, Status.FAILED, "capture"),
    ]
    assert "cannot decode" in skipped[1].detail


def test_state_is_per_stream_with_two_workers():
    a, b = _hud_frames()
    frames = []
    for i in range(3):
        frames += [Frame("s1", i, float(i), a.copy()), Frame("s2", i, float(i), b.copy())]
    kept, skipped = _run(frames, workers=2)
    assert sorted((f.stream_id, f.seq) for f in kept) == [("s1", 0), ("s2", 0)]
    assert sorted((o.stream_id, o.seq, o.of) for o in skipped) == [
        ("s1", 1, 0),
        ("s1", 2, 0),
        ("s2", 1, 0),
        ("s2", 2, 0),
    ]
    assert all(isinstance(o, Outcome) for o in skipped)


def test_disabled_keeps_every_frame():
    a, _ = _hud_frames()
    kept, skipped = _run([Frame("s", i, 0.0, a.copy()) for i in range(3)], enabled=False)
    assert len(kept) == 3 and skipped == []
