"""The two shapes every stage has: a ``Stage`` the run owns, and a ``StreamLogic`` per stream.

A **Stage** is what the runtime holds for one step of the dataflow (its
models, pools and counters): it is warmed up before frames flow, closed when
the run ends, and asked for its ``metrics()`` by the summary.

A **StreamLogic** is one stream's state in a step, driven by time, with no
knowledge of Bytewax::

    out = logic.offer(items)     # new items arrive
    out = logic.poll()           # nothing arrived; time passed (due at next_wake())
    t   = logic.next_wake()      # clock time poll() wants to run at, or None
    out = logic.drain(until)     # end of stream: finish what can finish, resolve the rest

``drain`` returns within each item's own deadline (and by ``until`` where one
is given): whatever is still unresolved then comes out as ``failed(timeout)``
or ``dropped(shutdown)``, so nothing is lost and nothing waits forever.
:mod:`operators.steps` adapts both to Bytewax.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Generic, Protocol, TypeVar, runtime_checkable

__all__ = [
    "Stage",
    "StreamLogic",
    "SupportsClose",
    "SupportsMetrics",
    "SupportsSampling",
    "SupportsShare",
    "SupportsWarmUp",
]

In = TypeVar("In")
Out = TypeVar("Out")


@runtime_checkable
class Stage(Protocol):
    """A step's shared parts (models, pools, counters), owned by the run."""

    name: str

    def warm_up(self) -> None:
        """Load models and start what must be ready before the first frame."""

    def close(self) -> None:
        """Stop threads and release clients; the flow has ended or is ending."""

    def metrics(self) -> dict[str, Any]:
        """JSON-ready numbers for the run summary (and Prometheus, at scrape time): where
        the stage has work in flight, ``in_flight``; an HTTP model, ``endpoints``."""


# What a plug-in (a vision backend, an encoder) may implement, each on its own;
# its stage calls the ones it has.


@runtime_checkable
class SupportsWarmUp(Protocol):
    def warm_up(self) -> None: ...


@runtime_checkable
class SupportsClose(Protocol):
    def close(self) -> None: ...


@runtime_checkable
class SupportsMetrics(Protocol):
    def metrics(self) -> dict[str, Any]: ...


@runtime_checkable
class SupportsShare(Protocol):
    """A stage or backend whose limits are for the whole cluster: each process is told its
    share (the fraction of the streams it captures) and takes that part of them."""

    def set_share(self, share: float) -> None: ...


@runtime_checkable
class SupportsSampling(Protocol):
    """A stage that reports per-item timings as they happen: ``on_sample(name, seconds)``
    is called for each (``vision``, ``vision_queue``, ``batch_window``, ``batch_compute``)."""

    def sample_to(self, on_sample: Callable[[str, float], None] | None) -> None: ...


class StreamLogic(Protocol, Generic[In, Out]):
    """One stream's state in a stage: offer / poll / next_wake / drain (see the module doc)."""

    def offer(self, items: list[In]) -> list[Out]: ...

    def poll(self) -> list[Out]: ...

    def next_wake(self) -> float | None: ...

    def drain(self, until: float | None = None) -> list[Out]: ...
