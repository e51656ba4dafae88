"""What a process knows of the cluster it runs in, from ``python -m bytewax.run``'s options.

Bytewax numbers worker ``w`` of process ``p`` as ``p * workers_per_process + w``, but a
dataflow's sources are told only a worker's index and the cluster's worker count. To
spread streams over processes (not only over workers) framewax reads ``-w`` the way
``bytewax.run`` does: the command line, else ``BYTEWAX_WORKERS_PER_PROCESS``.
"""

from __future__ import annotations

import argparse
import os
import socket
import sys
from collections.abc import Mapping, Sequence

__all__ = ["loopback_addresses", "workers_per_process"]


def workers_per_process(
    argv: Sequence[str] | None = None, env: Mapping[str, str] | None = None
) -> int:
    """``-w`` / ``--workers-per-process`` of this ``bytewax.run`` process (1 if not given).

    >>> workers_per_process(["/x/bytewax/run.py", "flows.vision", "-w", "2"], {})
    2
    >>> workers_per_process(["pytest"], {"BYTEWAX_WORKERS_PER_PROCESS": "3"})
    3
    >>> workers_per_process(["pytest", "-w", "5"], {})
    1
    """
    argv = list(sys.argv if argv is None else argv)
    env = os.environ if env is None else env
    value: str | int | None = env.get("BYTEWAX_WORKERS_PER_PROCESS")
    prog = argv[0].replace("\\", "/") if argv else ""
    if prog.endswith("bytewax/run.py") or prog.endswith("bytewax.run"):
        parser = argparse.ArgumentParser(add_help=False)
        parser.add_argument("-w", "--workers-per-process", type=int, default=None)
        known, _rest = parser.parse_known_args(argv[1:])
        if known.workers_per_process is not None:
            value = known.workers_per_process
    try:
        n = int(value) if value is not None else 1
    except ValueError:
        return 1
    return max(n, 1)


def loopback_addresses(n: int) -> str:
    """``-a`` for ``n`` processes on this machine: free loopback ports, ``;``-separated."""
    socks = [socket.socket() for _ in range(n)]
    try:
        for s in socks:
            s.bind(("127.0.0.1", 0))
        return ";".join(f"127.0.0.1:{s.getsockname()[1]}" for s in socks)
    finally:
        for s in socks:
            s.close()
