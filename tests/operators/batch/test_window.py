"""Windowed batching: the window on a fake clock with a manual executor, then real flows."""

import dataclasses

import numpy as np
import pytest

from operators.batch.encoder import Encoder
from operators.batch.window import EncodeStage, SizeTuner, WindowPolicy, encode_frames
from operators.errors import ConfigError
from operators.frame import Frame
from operators.observation import Encoded
from operators.outcome import Outcome
from operators.pool import BoundedPool
from operators.steps import batch_encode
from operators.testing.fakes import FakeClock, ManualExecutor
from tests.conftest import run_step, solid


class CountingEncoder:
    def __init__(self):
        self.calls = []

    def encode(self, images):
        self.calls.append(len(images))
        n = len(images)
        return np.zeros((n, 84, 84, 3), np.uint8), np.arange(n, dtype=np.float32)[:, None]


def _window(auto=False, encoder=None, **policy):
    clock, executor = FakeClock(), ManualExecutor(auto=auto)
    stage = EncodeStage(
        encoder or CountingEncoder(),
        WindowPolicy(**policy),
        pool=BoundedPool("t", 1, executor=executor),
        clock=clock,
    )
    return stage.for_stream(), stage, clock, executor


def test_window_cuts_at_max_size():
    win, stage, _clock, ex = _window(max_size=4, timeout_ms=1000)
    win.offer([solid(i) for i in range(10)])
    # two full batches were cut (one encoding, one waiting for the slot); two frames wait
    assert [f.seq for f in win.buffer] == [8, 9]
    assert len(ex.waiting) == 1 and len(win.ready) == 1
    assert list(stage.stats.wait_ms) == [0.0, 0.0]


def test_window_deadline_counts_from_the_first_frame():
    win, stage, clock, _ex = _window(max_size=100, timeout_ms=48)
    # A frame every 15.625 ms (exact in binary): a 48 ms inactivity timeout would never fire.
    for i in range(8):
        win.offer([solid(i)])
        if (due := win.next_wake()) is not None and clock.now() >= due:
            win.poll()
        clock.advance(1 / 64)
    # Cut at the first poll past 48 ms after frame 0: frames 0..4, waited 62.5 ms.
    assert list(stage.stats.wait_ms) == [62.5]
    assert [f.seq for f in win.buffer] == [5, 6, 7]


def test_next_wake_is_the_deadline_of_the_open_window():
    win, _stage, clock, _ex = _window(max_size=100, timeout_ms=20)
    assert win.next_wake() is None
    win.offer([solid(0)])
    assert win.next_wake() == pytest.approx(clock.now() + 0.020)


def test_end_of_stream_flushes_the_window():
    win, stage, _clock, _ex = _window(auto=True, max_size=100, timeout_ms=10_000)
    win.offer([solid(i) for i in range(3)])
    out = win.drain()
    assert [o.seq for o in out] == [0, 1, 2] and all(isinstance(o, Encoded) for o in out)
    assert stage.encoder.calls == [3]


def test_frames_beyond_the_pending_bound_are_dropped_oldest_first():
    win, _stage, _clock, _ex = _window(max_size=2, timeout_ms=1000, max_pending_batches=1)
    out = win.offer([solid(i) for i in range(8)])  # 0,1 encoding; 2..7 cut, 2 may wait
    assert [(o.seq, o.label) for o in out] == [
        (i, "dropped(encoder_backlog)") for i in (2, 3, 4, 5)
    ]


def test_a_hung_encoder_fails_its_batch_at_the_deadline_and_drain_ends():
    win, _stage, clock, _ex = _window(max_size=2, timeout_ms=0, deadline_ms=500)
    t0 = clock.now()
    win.offer([solid(i) for i in range(4)])  # 0,1 encoding forever; 2,3 wait for the slot
    out = win.drain()
    assert {o.seq: o.label for o in out} == {
        0: "failed(timeout)",
        1: "failed(timeout)",
        2: "dropped(shutdown)",
        3: "dropped(shutdown)",
    }
    assert clock.now() - t0 == pytest.approx(1.0, abs=0.01)  # its deadline, then one more


def test_two_streams_sharing_one_encoder_slot_both_drain():
    # The slot is freed when a batch finishes, not when its stream harvests it: stream a's
    # finished batch must not keep stream b waiting at end of stream (it used to, forever).
    clock, ex = FakeClock(), ManualExecutor()
    stage = EncodeStage(
        CountingEncoder(),
        WindowPolicy(max_size=2, timeout_ms=0),
        pool=BoundedPool("t", 1, executor=ex),
        clock=clock,
    )
    a, b = stage.for_stream(), stage.for_stream()
    a.offer([solid(0, stream="a"), solid(1, stream="a")])
    b.offer([solid(0, stream="b"), solid(1, stream="b")])
    ex.run()  # a's batch finishes; a does not poll
    ex.auto = True
    out = b.drain() + a.drain()
    assert sorted((o.stream_id, o.seq) for o in out if isinstance(o, Encoded)) == [
        ("a", 0),
        ("a", 1),
        ("b", 0),
        ("b", 1),
    ]


def test_size_tuner_picks_the_largest_batch_within_the_budget():
    tuner = SizeTuner(max_size=64, timeout_ms=20.0, budget_ms=20.0)
    for i in range(50):  # a frame every 1 ms
        tuner.arrived(i / 1000.0)
    # compute = 2 ms + 1 ms per frame, seen at two sizes
    for size in (4, 8, 4, 8):
        cap = tuner.measured(size, 2.0 + size)
    # fill (B - 1) + 2 + B <= 20  ->  B = 9
    assert cap == 9
    # A slower encoder (5 ms per frame) shrinks it: (B - 1) + 5B <= 20 -> B = 3
    for size in (2, 3, 2, 3, 2, 3, 2, 3) * 4:
        cap = tuner.measured(size, 5.0 * size)
    assert cap == 3


def test_autotuned_window_learns_its_cap_from_the_batches_it_runs():
    win, stage, clock, ex = _window(
        max_size=64, timeout_ms=50, max_pending_batches=100, latency_budget_ms=20
    )
    for seq in range(300):  # a frame every 2 ms; a batch of B takes 4B ms to encode
        win.offer([solid(seq, at=clock.now())])
        if (due := win.next_wake()) is not None and clock.now() >= due:
            win.poll()
        # finish the running batch once its compute time has passed
        for fut in list(win.running):
            run = win.running[fut]
            if clock.now() - run.started >= 0.004 * len(run.frames) - 1e-9:
                ex.run()
                win.poll()
        clock.advance(0.002)
    sizes = list(stage.stats.sizes)
    # Before a batch was measured, the 50 ms deadline cut a 25-frame batch; then a batch
    # of B costs 2(B - 1) ms of window and 4B ms of compute: 3 fit 20 ms.
    assert sizes[0] > 10 and len(sizes) > 10
    assert stage.stats.size_cap == 3 and max(sizes[2:]) <= 3


def test_bad_policy_values_name_the_key():
    with pytest.raises(ConfigError, match=r"batch.max_size = 0"):
        WindowPolicy(max_size=0)


# -- encoding ---------------------------------------------------------------------------


def test_wrong_shaped_frame_fails_alone():
    bad = Frame("s", 1, 0.0, np.zeros((90, 160), np.uint8))
    out = encode_frames(CountingEncoder(), [solid(0), bad, solid(2)], "encode")
    assert [type(o) for o in out] == [Encoded, Outcome, Encoded]
    assert out[1].reason == "encode" and "shape" in out[1].detail


def test_encoder_returning_too_few_rows_is_a_clear_failure():
    class Short(CountingEncoder):
        def encode(self, images):
            v, e = super().encode(images)
            return v[:-1], e[:-1]

    out = encode_frames(Short(), [solid(0), solid(1)], "encode")
    assert all(
        isinstance(o, Outcome) and "1 visuals / 1 embeddings for 2 frames" in o.detail for o in out
    )


def test_encoder_config_errors():
    with pytest.raises(ValueError, match="device"):
        Encoder(device="tpu")
    with pytest.raises(ValueError, match="module:attr"):
        Encoder(network="NatureCNN")


@pytest.mark.parametrize("workers", [1, 2])
def test_batched_output_equals_per_frame_output_in_a_flow(frames, workers):
    encoder = Encoder(device="cpu", threads=1)
    two = frames + [Frame("t", f.seq, f.captured_at, f.image, f.truth) for f in frames]
    stage = EncodeStage(encoder, WindowPolicy(max_size=4, timeout_ms=1e6, max_pending_batches=100))
    got = run_step(batch_encode, two, stage, workers=workers)
    stage.close()
    assert sorted((e.stream_id, e.seq) for e in got) == sorted((f.stream_id, f.seq) for f in two)
    assert sorted(stage.stats.sizes) == [4] * 6  # 12 frames a stream, cut by size
    images = {f.seq: f.image for f in frames}
    for e in got:
        visual, emb = encoder.encode([images[e.seq]])
        assert isinstance(e, Encoded) and e.visual.shape == (84, 84, 3)
        np.testing.assert_allclose(e.embedding, emb[0], rtol=1e-4, atol=1e-5)
        assert np.abs(e.visual.astype(int) - visual[0].astype(int)).max() <= 1


def test_inline_encodes_within_the_offer_and_a_zero_timeout_cuts_at_once():
    clock = FakeClock()
    encoder = CountingEncoder()
    stage = EncodeStage(encoder, WindowPolicy(inline=True, timeout_ms=0, max_size=8), clock=clock)
    win = stage.for_stream()
    out = win.offer([solid(0), solid(1)])
    assert [o.seq for o in out] == [0, 1] and all(isinstance(o, Encoded) for o in out)
    assert encoder.calls == [2] and win.next_wake() is None and not win.running
    bad = dataclasses.replace(solid(2), image=np.zeros((0, 0, 3), np.uint8))
    (failed,) = win.offer([bad])
    assert isinstance(failed, Outcome) and failed.label == "failed(encode)"
    assert stage.stats.batches == 2
