"""Where each stream's work runs in a cluster: the stream's capture worker, for every step.

Bytewax sends a keyed item to worker ``siphash13(key) % worker_count`` (Rust's
``DefaultHasher`` with zero keys over the key string, in every stateful step
of bytewax 0.21). Keyed by its stream name, a stream's frames would be
captured on one worker and dedup'd, read, encoded and ordered on whichever
worker its name hashes to: with two processes a full frame crosses the
network on every capture, and two streams can hash onto one worker while the
other idles.

So framewax places streams itself: stream ``i`` (in the capture stage's order)
is captured on a worker chosen round-robin over processes, then over each
process's workers (:func:`place`), and its items carry a *routing key*
chosen so that Bytewax's hash lands on that same worker. Every step of the
stream then runs where its frames are, and streams spread evenly over the
workers. Items still say which stream they belong to (``stream_id``); the key
is only an address.

If Bytewax ever hashes differently, nothing goes wrong but locality: the run
counts the frames (and bytes) that arrived from another process, and the
summary reports them (``placement.crossed_frames``).

>>> worker_of_key("arena-0", 2), worker_of_key("arena-1", 2)
(0, 0)
>>> [worker_of_key(routing_key(s, w, 2), 2) for s, w in place(["arena-0", "arena-1"], 2).items()]
[0, 1]
"""

from __future__ import annotations

import math

__all__ = ["place", "routing_key", "share_of", "siphash13", "worker_of_key"]

_MASK = (1 << 64) - 1


def _rotl(x: int, b: int) -> int:
    return ((x << b) | (x >> (64 - b))) & _MASK


def siphash13(data: bytes, k0: int = 0, k1: int = 0) -> int:
    """SipHash-1-3 of ``data`` (Rust's ``DefaultHasher`` with keys ``k0, k1``)."""
    v0 = k0 ^ 0x736F6D6570736575
    v1 = k1 ^ 0x646F72616E646F6D
    v2 = k0 ^ 0x6C7967656E657261
    v3 = k1 ^ 0x7465646279746573

    def sip_round(v0: int, v1: int, v2: int, v3: int) -> tuple[int, int, int, int]:
        v0 = (v0 + v1) & _MASK
        v1 = _rotl(v1, 13) ^ v0
        v0 = _rotl(v0, 32)
        v2 = (v2 + v3) & _MASK
        v3 = _rotl(v3, 16) ^ v2
        v0 = (v0 + v3) & _MASK
        v3 = _rotl(v3, 21) ^ v0
        v2 = (v2 + v1) & _MASK
        v1 = _rotl(v1, 17) ^ v2
        v2 = _rotl(v2, 32)
        return v0, v1, v2, v3

    n = len(data)
    end = n - n % 8
    for i in range(0, end, 8):
        m = int.from_bytes(data[i : i + 8], "little")
        v3 ^= m
        v0, v1, v2, v3 = sip_round(v0, v1, v2, v3)
        v0 ^= m
    m = ((n & 0xFF) << 56) | int.from_bytes(data[end:], "little")
    v3 ^= m
    v0, v1, v2, v3 = sip_round(v0, v1, v2, v3)
    v0 ^= m
    v2 ^= 0xFF
    for _ in range(3):
        v0, v1, v2, v3 = sip_round(v0, v1, v2, v3)
    return v0 ^ v1 ^ v2 ^ v3


def worker_of_key(key: str, worker_count: int) -> int:
    """The worker Bytewax's stateful steps send ``key`` to (Rust hashes a ``str`` as its
    UTF-8 bytes and a ``0xff`` terminator)."""
    return siphash13(key.encode("utf-8") + b"\xff") % worker_count


def routing_key(stream_id: str, worker: int, worker_count: int) -> str:
    """A key Bytewax routes to ``worker``: the stream's own name when it already lands
    there, else the name with the first ``#n`` suffix that does."""
    if not 0 <= worker < worker_count:
        msg = f"worker {worker} is not one of {worker_count} workers"
        raise ValueError(msg)
    key, n = stream_id, 0
    while worker_of_key(key, worker_count) != worker:
        n += 1
        key = f"{stream_id}#{n}"
    return key


def place(stream_ids: list[str], worker_count: int, workers_per_process: int = 1) -> dict[str, int]:
    """Stream → capture worker, spreading streams over processes first, then over each
    process's workers: stream ``i`` goes to process ``i % P``, and there to its worker
    ``(i // P) % workers_per_process`` (Bytewax numbers worker ``w`` of process ``p`` as
    ``p * workers_per_process + w``).

    >>> place(["a", "b", "c", "d"], 4, workers_per_process=2)
    {'a': 0, 'b': 2, 'c': 1, 'd': 3}
    >>> place(["a", "b", "c"], 2)
    {'a': 0, 'b': 1, 'c': 0}
    """
    if worker_count < 1:
        msg = f"worker_count must be >= 1; got {worker_count}"
        raise ValueError(msg)
    per = workers_per_process if 1 <= workers_per_process <= worker_count else 1
    if worker_count % per:
        per = 1
    processes = worker_count // per
    return {s: (i % processes) * per + (i // processes) % per for i, s in enumerate(stream_ids)}


def share_of(limit: int, share: float) -> int:
    """One process's part of a cluster-wide ``limit``: ``limit * share`` rounded down (so
    the parts never add up past the limit), at least 1.

    >>> share_of(8, 0.5), share_of(3, 0.5), share_of(4, 1 / 3), share_of(1, 0.25)
    (4, 1, 1, 1)
    """
    return max(1, math.floor(limit * share + 1e-9))
