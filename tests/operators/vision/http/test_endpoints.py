"""Routing, breakers and adaptive limits over several endpoints, on a fake clock (no server)."""

import pytest

from operators.testing.fakes import FakeClock
from operators.vision.http.endpoints import AdaptivePolicy, BreakerPolicy, EndpointState, Router


def _router(*limits, breaker=None, adaptive=None):
    clock = FakeClock(0.0)
    breaker, adaptive = breaker or BreakerPolicy(), adaptive or AdaptivePolicy()
    eps = [
        EndpointState(f"http://e{i}", limit, adaptive=adaptive, breaker=breaker)
        for i, limit in enumerate(limits)
    ]
    return Router(eps, clock), clock


def test_least_outstanding_spreads_calls_and_never_exceeds_a_limit():
    router, _ = _router(1, 1)
    a, b = router.reserve(), router.reserve()
    assert {a.endpoint.url, b.endpoint.url} == {"http://e0", "http://e1"}
    assert router.reserve() is None  # both full: the frame waits upstream
    served = []
    for _ in range(20):
        router.succeeded(a, 50.0)
        served.append(a.endpoint.url)
        a, b = b, router.reserve()
    assert served.count("http://e0") == served.count("http://e1") == 10


def test_the_fewer_calls_in_flight_relative_to_the_limit_wins():
    router, _ = _router(4, 1)
    leases = [router.reserve() for _ in range(5)]
    assert [lease.endpoint.url for lease in leases].count("http://e0") == 4
    assert router.reserve() is None


def test_breaker_opens_fails_fast_probes_after_cooldown_and_closes():
    router, clock = _router(2, breaker=BreakerPolicy(failures=2, cooldown_s=5.0))
    for _ in range(2):
        router.failed(router.reserve(), "connection", transport=True)
    ep = router.endpoints[0]
    assert ep.state.value == "open" and ep.breaker_opened == 1
    assert router.reserve().endpoint is None  # every breaker open: fail fast (unavailable)
    clock.advance(5.0)
    probe = router.reserve()
    assert probe.endpoint is ep and ep.state.value == "half_open"
    assert router.reserve() is None  # one probe at a time
    router.succeeded(probe, 10.0)
    assert ep.state.value == "closed" and router.reserve().endpoint is ep


def test_a_failed_probe_opens_the_breaker_again():
    router, clock = _router(1, breaker=BreakerPolicy(failures=1, cooldown_s=1.0))
    router.failed(router.reserve(), "timeout", transport=True)
    clock.advance(1.0)
    router.failed(router.reserve(), "connection", transport=True)
    assert router.endpoints[0].state.value == "open" and router.endpoints[0].breaker_opened == 2


def test_a_server_that_answers_with_an_error_does_not_trip_the_breaker():
    router, _ = _router(1, breaker=BreakerPolicy(failures=1))
    router.failed(router.reserve(), "parse", transport=False)
    assert router.endpoints[0].state.value == "closed"


ADAPTIVE = AdaptivePolicy(enabled=True, min_in_flight=1, tolerance=1.5, backoff=0.5)


def _busy_round(router, clock, latency_ms):
    """Fill every slot, then finish every call at ``latency_ms``."""
    leases = []
    while (lease := router.reserve()) is not None:
        leases.append(lease)
    clock.advance(latency_ms / 1000.0)
    for lease in leases:
        router.succeeded(lease, latency_ms)
    return len(leases)


def test_adaptive_limit_grows_while_latency_holds():
    router, clock = _router(8, adaptive=ADAPTIVE)
    ep = router.endpoints[0]
    assert ep.limit == 1
    for _ in range(30):
        _busy_round(router, clock, 60.0)
    assert ep.limit == 8  # up to the endpoint's max, one step per limit's worth of calls


def test_adaptive_limit_is_cut_on_a_503_once_per_round_trip():
    router, clock = _router(8, adaptive=ADAPTIVE)
    ep = router.endpoints[0]
    ep.limit_f = 8.0
    leases = [router.reserve() for _ in range(8)]
    clock.advance(0.01)
    for lease in leases:
        router.failed(lease, "http_503", transport=True)
    assert ep.limit == 4  # eight 503s from one round trip: one cut, not eight


def test_adaptive_limit_is_cut_when_latency_rises():
    router, clock = _router(8, adaptive=ADAPTIVE)
    ep = router.endpoints[0]
    ep.limit_f = 6.0
    for _ in range(5):
        _busy_round(router, clock, 50.0)
    assert ep.limit == 6
    _busy_round(router, clock, 200.0)  # 4x the best recent latency: calls are queueing
    assert ep.limit == 3


@pytest.mark.parametrize("bad", [0, -1])
def test_an_endpoint_needs_a_positive_limit(bad):
    with pytest.raises(ValueError, match="max_in_flight must be >= 1"):
        EndpointState("http://x", bad)


def test_a_share_of_the_cluster_caps_each_endpoint_rounding_down_to_at_least_one():
    eps = [EndpointState("http://a", 8), EndpointState("http://b", 3), EndpointState("http://c", 1)]
    router = Router(eps)
    router.set_share(0.5)
    assert [ep.limit for ep in eps] == [4, 1, 1]
    leases = [router.reserve() for _ in range(8)]
    assert sum(lease is not None for lease in leases) == 6  # 4 + 1 + 1, then none
    router.set_share(1.0)
    assert [ep.limit for ep in eps] == [8, 3, 1]
    with pytest.raises(ValueError, match="share"):
        router.set_share(0.0)


def test_a_pool_limit_lowers_and_rises_within_its_capacity():
    from operators.pool import BoundedPool

    pool = BoundedPool("p", 4)
    pool.set_limit(2)
    assert [pool.try_acquire() for _ in range(3)] == [True, True, False]
    pool.set_limit(99)
    assert pool.limit == 4 and pool.try_acquire() and pool.try_acquire() and not pool.try_acquire()
    pool.set_limit(0)
    assert pool.limit == 1
