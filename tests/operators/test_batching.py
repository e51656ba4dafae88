import bytewax.operators as op
import numpy as np
import pytest
from bytewax.dataflow import Dataflow
from bytewax.testing import TestingSink, TestingSource, run_main

from operators._pool import BoundedPool
from operators.batching import (
    BatchMetrics,
    WindowPolicy,
    _Stage,
    _WindowLogic,
    batch_encode,
    encode_frames,
)
from operators.encoder import Encoder
from operators.types import Encoded, Frame, Outcome
from tests.conftest import solid


class FakeClock:
    def __init__(self):
        self.t = 1000.0

    def __call__(self):
        return self.t


class CountingEncoder:
    def __init__(self):
        self.calls = []

    def encode(self, images):
        self.calls.append(len(images))
        n = len(images)
        return np.zeros((n, 84, 84, 3), np.uint8), np.arange(n, dtype=np.float32)[:, None]


def _logic(policy, clock, encoder=None):
    stage = _Stage(
        "encode", encoder or CountingEncoder(), policy, BoundedPool("t", 1), BatchMetrics(), clock
    )
    return _WindowLogic(stage)


def test_window_cuts_at_max_size():
    clock = FakeClock()
    logic = _logic(WindowPolicy(max_size=4, timeout_ms=1000), clock)
    logic.on_batch([solid(i) for i in range(10)])
    # two full batches were cut and handed to the encoder; two frames wait in the window
    assert len(logic.buffer) == 2
    assert logic.stage.metrics.wait_ms == [0.0, 0.0]


def test_window_deadline_counts_from_the_first_frame():
    clock = FakeClock()
    logic = _logic(WindowPolicy(max_size=100, timeout_ms=48), clock)
    # A frame every 15.625 ms (exact in binary): a 48 ms inactivity timeout would never fire.
    for i in range(8):
        logic.on_batch([solid(i)])
        logic.on_notify()
        clock.t += 1 / 64
    # Cut at the first notify past 48 ms after frame 0: frames 0..4, waited 62.5 ms.
    assert logic.stage.metrics.wait_ms == [62.5]
    assert [f.seq for f in logic.buffer] == [5, 6, 7]


def test_end_of_stream_flushes_the_window():
    logic = _logic(WindowPolicy(max_size=100, timeout_ms=10_000), FakeClock())
    logic.on_batch([solid(i) for i in range(3)])
    out, _ = logic.on_eof()
    assert [o.seq for o in out] == [0, 1, 2]
    assert logic.stage.encoder.calls == [3]


def _flow_encode(frames, encoder, policy):
    flow = Dataflow("encode_test")
    inp = op.key_on("key", op.input("in", flow, TestingSource(frames)), lambda f: f.stream_id)
    metrics = BatchMetrics()
    out = batch_encode("encode", inp, encoder, policy, BoundedPool("t", 1), metrics)
    got = []
    op.output("out", out, TestingSink(got))
    run_main(flow)
    return [x for _, x in got], metrics


def test_batched_output_equals_per_frame_output(frames):
    encoder = Encoder(device="cpu", threads=1)
    got, metrics = _flow_encode(frames, encoder, WindowPolicy(max_size=4, timeout_ms=1000))
    assert [e.seq for e in got] == [f.seq for f in frames]
    assert metrics.sizes == [4, 4, 4]
    for e, f in zip(got, frames, strict=True):
        visual, emb = encoder.encode([f.image])
        assert (
            isinstance(e, Encoded) and e.visual.shape == (84, 84, 3) and e.visual.dtype == np.uint8
        )
        np.testing.assert_allclose(e.embedding, emb[0], rtol=1e-4, atol=1e-5)
        assert np.abs(e.visual.astype(int) - visual[0].astype(int)).max() <= 1


def test_wrong_shaped_frame_fails_alone():
    bad = Frame("s", 1, 0.0, np.zeros((90, 160), np.uint8))
    out = encode_frames(CountingEncoder(), [solid(0), bad, solid(2)], "encode")
    assert [type(o) for o in out] == [Encoded, Outcome, Encoded]
    assert out[1].reason == "encode" and "encode" in out[1].detail


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


def test_size_tuner_picks_the_largest_batch_within_the_budget():
    from operators.batching import SizeTuner

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


def test_autotuned_window_caps_batches_in_a_real_run():
    import time

    class SlowEncoder(CountingEncoder):
        def encode(self, images):
            time.sleep(0.004 * len(images))  # 4 ms a frame
            return super().encode(images)

    def arriving(n):  # a frame every 2 ms
        for i in range(n):
            time.sleep(0.002)
            yield solid(i)

    enc = SlowEncoder()
    flow = Dataflow("tune")
    inp = op.key_on("k", op.input("in", flow, TestingSource(arriving(100))), lambda f: f.stream_id)
    metrics = BatchMetrics()
    policy = WindowPolicy(max_size=64, timeout_ms=50, max_pending_batches=100, latency_budget_ms=20)
    out = batch_encode("encode", inp, enc, policy, BoundedPool("t", 1), metrics)
    got = []
    op.output("out", out, TestingSink(got))
    run_main(flow)
    assert sorted(x.seq for _, x in got) == list(range(100))
    # Until a batch was measured, the 50 ms deadline cuts ~25-frame batches; then a
    # batch of B costs 2(B - 1) ms of window and 4B ms of compute: 3 fit 20 ms.
    assert max(enc.calls[:2]) > 10
    assert metrics.size_cap == 3 and max(enc.calls[-5:]) <= 3
