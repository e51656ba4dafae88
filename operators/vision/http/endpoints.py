"""Several model servers behind one vision stage: limits, routing, breakers, adaptive concurrency.

Users scale a vision-language model the way Ollama makes easy: one server
per GPU. A :class:`Router` spreads calls over them:

- each :class:`EndpointState` has its own in-flight limit (the stage also has a
  total one, its pool), and a connection pool of that size;
- *least outstanding*: a call goes to the endpoint with the fewest calls in
  flight relative to its limit (ties: the fewest calls so far), so a slow or
  saturated server gets less;
- a *circuit breaker* per endpoint: after ``failures`` consecutive transport
  failures (connection, timeout, 5xx after retries) it opens for
  ``cooldown_s``, then lets one probe call through (half-open); a success
  closes it. With every endpoint open, calls fail fast as
  ``failed(unavailable)`` instead of waiting;
- *adaptive concurrency* (optional, AIMD with a latency gradient): the limit
  grows by one per limit's worth of calls whose latency stays within
  ``tolerance`` × the best recent latency, and is cut by ``backoff`` on a 503,
  a timeout or a latency above that — at most once per round trip.

``reserve()`` never blocks: the vision operator asks for a slot only when it has
a frame to send, and keeps the frame waiting (where the staleness budget
applies) when none is free.
"""

from __future__ import annotations

import math
import threading
from collections import Counter, deque
from dataclasses import dataclass, field
from enum import Enum
from typing import Any

from operators.clock import SYSTEM_CLOCK, Clock
from operators.placement import share_of
from operators.stats import percentiles

__all__ = ["AdaptivePolicy", "BreakerPolicy", "EndpointState", "Lease", "Router"]


class BreakerState(str, Enum):
    CLOSED = "closed"
    OPEN = "open"
    HALF_OPEN = "half_open"


@dataclass(frozen=True)
class BreakerPolicy:
    failures: int = 5
    """Consecutive transport failures that open the breaker (0 turns it off)."""
    cooldown_s: float = 5.0
    """How long an open breaker refuses calls before letting a probe through."""


@dataclass(frozen=True)
class AdaptivePolicy:
    enabled: bool = False
    min_in_flight: int = 1
    """The limit never goes below this (nor above the endpoint's ``max_in_flight``)."""
    tolerance: float = 1.5
    """Latency within ``tolerance`` × the best recent latency counts as holding."""
    backoff: float = 0.7
    """Factor applied to the limit on a 503, a timeout or rising latency."""
    window: int = 200
    """Calls over which the best recent latency is taken."""


@dataclass
class EndpointState:
    """One server: its limit, its calls in flight, its breaker and its numbers."""

    url: str
    max_in_flight: int
    adaptive: AdaptivePolicy = field(default_factory=AdaptivePolicy)
    breaker: BreakerPolicy = field(default_factory=BreakerPolicy)
    client: Any = None
    share: float = 1.0
    """This process's part of the endpoint's limit: the share of the cluster's streams it
    captures (1.0 in a single process; see :meth:`Router.set_share`)."""
    # live state (guarded by the router's lock)
    in_flight: int = 0
    peak_in_flight: int = 0
    limit_f: float = 0.0
    state: BreakerState = BreakerState.CLOSED
    opened_at: float = 0.0
    consecutive_failures: int = 0
    probing: bool = False
    last_cut: float = 0.0
    # counters
    requests: int = 0
    ok: int = 0
    retries: int = 0
    breaker_opened: int = 0
    failures: Counter[str] = field(default_factory=Counter)
    latency_ms: deque[float] = field(default_factory=lambda: deque(maxlen=10_000))
    recent_ms: deque[float] = field(default_factory=lambda: deque(maxlen=200))
    _grow: float = 0.0

    def __post_init__(self) -> None:
        if self.max_in_flight < 1:
            msg = f"endpoint {self.url}: max_in_flight must be >= 1; got {self.max_in_flight}"
            raise ValueError(msg)
        a = self.adaptive
        if a.enabled:
            if not 1 <= a.min_in_flight <= self.max_in_flight:
                msg = (
                    f"endpoint {self.url}: adaptive min_in_flight must be in "
                    f"[1, {self.max_in_flight}]; got {a.min_in_flight}"
                )
                raise ValueError(msg)
            self.limit_f = float(a.min_in_flight)
        else:
            self.limit_f = float(self.max_in_flight)
        self.recent_ms = deque(maxlen=max(1, a.window))

    @property
    def cap(self) -> int:
        """The most calls this process may have in flight here: ``max_in_flight`` times its
        share, rounded down, at least 1."""
        return share_of(self.max_in_flight, self.share)

    @property
    def limit(self) -> int:
        return min(max(1, math.floor(self.limit_f)), self.cap)

    def snapshot(self) -> dict[str, Any]:
        return {
            "url": self.url,
            "requests": self.requests,
            "ok": self.ok,
            "retries": self.retries,
            "failures": dict(self.failures),
            "in_flight": self.in_flight,
            "peak_in_flight": self.peak_in_flight,
            "limit": self.limit,
            "max_in_flight": self.max_in_flight,
            "share": self.share,
            "breaker": self.state.value,
            "breaker_opened": self.breaker_opened,
            "latency_ms": percentiles(self.latency_ms),
        }


@dataclass(frozen=True)
class Lease:
    """A reserved slot on an endpoint (``endpoint is None``: every breaker is open)."""

    endpoint: EndpointState | None
    started: float


class Router:
    """Least-outstanding routing over endpoints, with breakers and adaptive limits."""

    def __init__(self, endpoints: list[EndpointState], clock: Clock = SYSTEM_CLOCK) -> None:
        if not endpoints:
            msg = "a router needs at least one endpoint"
            raise ValueError(msg)
        self.endpoints = endpoints
        self.clock = clock
        self._lock = threading.Lock()

    # -- slots -----------------------------------------------------------------
    def reserve(self) -> Lease | None:
        """A slot on the least-loaded endpoint that may take a call; ``None`` if all are full.

        If every endpoint's breaker is open (and none is due a probe), the
        lease has no endpoint: the call fails fast as ``unavailable``.
        """
        now = self.clock.now()
        with self._lock:
            best: EndpointState | None = None
            best_key: tuple[float, int] = (math.inf, 0)
            all_open = True
            for ep in self.endpoints:
                if ep.state is BreakerState.OPEN:
                    if now - ep.opened_at < ep.breaker.cooldown_s:
                        continue
                    ep.state, ep.probing = BreakerState.HALF_OPEN, False
                all_open = False
                if ep.state is BreakerState.HALF_OPEN and ep.probing:
                    continue  # one probe at a time
                if ep.in_flight >= ep.limit:
                    continue
                key = (ep.in_flight / ep.limit, ep.requests)
                if key < best_key:
                    best, best_key = ep, key
            if best is None:
                return Lease(None, now) if all_open else None
            if best.state is BreakerState.HALF_OPEN:
                best.probing = True
            best.in_flight += 1
            best.requests += 1
            best.peak_in_flight = max(best.peak_in_flight, best.in_flight)
            return Lease(best, now)

    # -- outcomes --------------------------------------------------------------
    def retried(self, ep: EndpointState, cause: str) -> None:
        with self._lock:
            ep.retries += 1
            if cause == "503":
                self._cut(ep, self.clock.now())

    def succeeded(self, lease: Lease, latency_ms: float) -> None:
        ep = lease.endpoint
        assert ep is not None
        with self._lock:
            ep.in_flight -= 1
            ep.ok += 1
            ep.latency_ms.append(latency_ms)
            ep.consecutive_failures = 0
            ep.probing = False
            if ep.state is not BreakerState.CLOSED:
                ep.state = BreakerState.CLOSED
            a = ep.adaptive
            if not a.enabled:
                return
            ep.recent_ms.append(latency_ms)
            best = min(ep.recent_ms)
            if latency_ms > a.tolerance * best and len(ep.recent_ms) >= 5:
                if lease.started >= ep.last_cut:  # one cut per round trip
                    self._cut(ep, self.clock.now())
            elif ep.in_flight + 1 >= ep.limit:  # only grow a limit that is being used
                ep._grow += 1.0 / ep.limit
                if ep._grow >= 1.0:
                    ep._grow = 0.0
                    ep.limit_f = min(float(ep.max_in_flight), ep.limit_f + 1.0)

    def failed(self, lease: Lease, reason: str, *, transport: bool) -> None:
        """A call ended without a result; ``transport`` failures count toward the breaker."""
        ep = lease.endpoint
        if ep is None:
            return
        now = self.clock.now()
        with self._lock:
            ep.in_flight -= 1
            ep.failures[reason] += 1
            ep.probing = False
            if reason in ("timeout", "http_503") and lease.started >= ep.last_cut:
                self._cut(ep, now)
            if not transport:
                if ep.state is BreakerState.HALF_OPEN:
                    ep.state = BreakerState.CLOSED  # the server answered
                ep.consecutive_failures = 0
                return
            ep.consecutive_failures += 1
            b = ep.breaker
            if ep.state is BreakerState.HALF_OPEN or (
                b.failures > 0 and ep.consecutive_failures >= b.failures
            ):
                if ep.state is not BreakerState.OPEN:
                    ep.breaker_opened += 1
                ep.state, ep.opened_at = BreakerState.OPEN, now

    def _cut(self, ep: EndpointState, now: float) -> None:
        a = ep.adaptive
        if a.enabled:
            ep.limit_f = max(float(a.min_in_flight), ep.limit_f * a.backoff)
            ep._grow = 0.0
            ep.last_cut = now

    def set_share(self, share: float) -> None:
        """Take ``share`` (0 < share <= 1) of every endpoint's ``max_in_flight``: with several
        processes each takes its part, so a server sees at most its configured limit from the
        whole cluster (each part rounds down, and is at least 1)."""
        if not 0.0 < share <= 1.0:
            msg = f"share must be in (0, 1]; got {share}"
            raise ValueError(msg)
        with self._lock:
            for ep in self.endpoints:
                ep.share = share

    def snapshot(self) -> list[dict[str, Any]]:
        with self._lock:
            return [ep.snapshot() for ep in self.endpoints]
