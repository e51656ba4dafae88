import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from operators.observation import Encoded, Observation
from operators.order.resequence import OrderMetrics, OrderPolicy, OrderStage, Resequencer
from operators.outcome import CacheEntry, Outcome, Status
from operators.reading import VisionResult
from operators.steps import order_by_seq
from operators.testing.fakes import FakeClock
from tests.conftest import run_step


def enc(seq, s="s"):
    return Encoded(s, seq, float(seq), np.full((84, 84, 3), seq, np.uint8), np.zeros(4, np.float32))


def vis(seq, s="s"):
    return VisionResult(s, seq, health=seq)


def parts_for(n):
    """Seq kinds cycle: processed, duplicate of the previous kept, dropped, failed-by-encoder."""
    parts, kept = [], None
    for seq in range(n):
        kind = seq % 4
        if kind == 1 and kept is not None:
            parts.append(Outcome("s", seq, Status.DUPLICATE, float(seq), of=kept))
        elif kind == 2:
            parts += [Outcome("s", seq, Status.DROPPED, float(seq), reason="stale"), enc(seq)]
        elif kind == 3:
            parts += [vis(seq), Outcome("s", seq, Status.FAILED, float(seq), reason="encode")]
        else:
            parts += [vis(seq), enc(seq)]
            kept = seq
    return parts


@settings(max_examples=60, deadline=None)
@given(st.integers(1, 24).flatmap(lambda n: st.permutations(parts_for(n))), st.integers(1, 5))
def test_any_interleaving_yields_every_seq_once_in_order(parts, chunk):
    n = max(p.seq for p in parts) + 1
    logic = Resequencer(OrderPolicy(gap_deadline_ms=1e9), OrderMetrics(), FakeClock(0.0))
    out = []
    for i in range(0, len(parts), chunk):
        out += logic.offer(parts[i : i + chunk])
    out += logic.drain()
    assert [o.seq for o in out] == list(range(n))
    for o in out:
        if o.seq % 4 == 0:
            assert (
                isinstance(o, Observation)
                and o.status is Status.PROCESSED
                and o.vision.health == o.seq
            )
        elif o.seq % 4 == 1:
            # a duplicate reuses the kept frame's result, keeps its own provenance
            assert isinstance(o, Observation) and o.status is Status.DUPLICATE
            assert (
                o.source_seq == o.seq - 1
                and o.vision.health == o.seq - 1
                and o.captured_at == o.seq
            )
        elif o.seq % 4 == 2:
            assert o.label == "dropped(stale)"
        else:
            assert o.label == "failed(encode)"


def test_gap_deadline_emits_failed_timeout_and_moves_on():
    clock = FakeClock(0.0)
    logic = Resequencer(OrderPolicy(gap_deadline_ms=100), OrderMetrics(), clock)
    out = logic.offer([vis(1), enc(1), vis(2), enc(2)])  # seq 0 never comes
    assert out == []
    assert logic.next_wake() == pytest.approx(0.1)
    clock.t = 0.05
    assert logic.poll() == []
    clock.t = 0.11
    out = logic.poll()
    assert [o.seq for o in out] == [0, 1, 2]
    assert out[0].label == "failed(timeout)" and "no part" in out[0].detail
    # a half that turns up after its seq was emitted is discarded, not emitted twice
    assert logic.offer([vis(0)]) == [] and logic.metrics.late == 1


def test_duplicate_of_a_dropped_frame_ends_the_same_way():
    logic = Resequencer(OrderPolicy(), OrderMetrics(), FakeClock(0.0))
    out = logic.offer(
        [
            Outcome("s", 0, Status.DROPPED, 0.0, reason="stale"),
            Outcome("s", 1, Status.DUPLICATE, 1.0, of=0),
        ]
    )
    assert [o.label for o in out] == ["dropped(stale)", "dropped(stale)"]
    assert "duplicate of seq 0" in out[1].detail


@pytest.mark.parametrize("workers", [1, 2])
def test_order_in_a_flow_with_two_streams(workers):
    items = [p for s in ("a", "b") for p in (vis(1, s), enc(1, s), vis(0, s), enc(0, s))]
    items += [vis(3, "a"), enc(3, "a")]  # a's seq 2 never comes: failed at end of stream
    got = run_step(order_by_seq, items, OrderStage(OrderPolicy()), workers=workers)
    assert [(o.seq, o.status.value) for o in got if o.stream_id == "b"] == [
        (0, "processed"),
        (1, "processed"),
    ]
    a = [o for o in got if o.stream_id == "a"]
    assert [o.seq for o in a] == [0, 1, 2, 3]
    assert a[2].label == "failed(eof)" and a[2].stream_id == "a"


def test_cached_frames_resolve_against_a_pinned_scene_long_after_it():
    policy = OrderPolicy(gap_deadline_ms=1e9, keep_results=4, cache_results=8)
    logic = Resequencer(policy, OrderMetrics(), FakeClock(0.0))
    parts = [CacheEntry("s", 0), vis(0), enc(0)]  # a menu, kept and pinned
    for seq in range(1, 20):  # gameplay pushes it out of the recent results
        parts += [vis(seq), enc(seq)]
    parts.append(Outcome("s", 20, Status.CACHED, 20.0, of=0))  # the menu again
    parts.append(Outcome("s", 21, Status.DUPLICATE, 21.0, of=1))  # seq 1 is long gone
    out = []
    for p in parts:
        out += logic.offer([p])
    assert [o.seq for o in out] == list(range(22))
    cached = out[20]
    assert isinstance(cached, Observation) and cached.status is Status.CACHED
    assert cached.source_seq == 0 and cached.vision.health == 0
    assert out[21].label == "failed(reference_lost)"  # not pinned: honest failure, not a guess
