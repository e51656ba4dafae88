"""A vector env over several processes: ``ProcessVecEnv(8, "arena-lockstep.toml", processes=2)``.

One :class:`~flows.rl.vec_env.VisionPipelineVecEnv` runs its dataflow on one Python
thread: dedup, the local model, the encoder and ordering share one interpreter lock, so
a machine with N cores uses about one for the pipeline however many games it steps.
:class:`ProcessVecEnv` spreads the games over ``processes`` worker processes, each with
a ``VisionPipelineVecEnv`` of its share (its own dataflow, models and games) and its
own lock, and steps them all at once: the actions go out to every process first, then
each process's observations come back. The sub-envs are numbered in process order
(process 0's first), and behave as the single vector env's (Gymnasium's
``NEXT_STEP`` autoreset, the same ``info`` per sub-env; ``stream_id`` is the stream
within its process).

Every wait is bounded (``timeout_s`` for a step or a reset, ``close_timeout_s`` for
the processes to stop their pipelines), a worker that dies or stops answering raises
:class:`WorkerError`, and :meth:`close` stops every pipeline, so every worker's ledger
ends balanced; it returns them (:attr:`ledgers`). The workers ignore SIGINT: Ctrl-C
reaches the agent's process, whose ``close()`` (or its ``with`` block) stops them in
order. A worker whose agent process is gone stops by itself (its pipe closes).
"""

from __future__ import annotations

import contextlib
import multiprocessing as mp
import signal
from collections import deque
from collections.abc import Mapping, Sequence
from multiprocessing.connection import Connection
from typing import Any

import numpy as np
from gymnasium.vector import AutoresetMode, VectorEnv
from gymnasium.vector.utils import batch_space, iterate

from flows.config import load_config
from flows.rl.vec_env import (
    GAMES,
    SendRecv,
    VisionPipelineVecEnv,
    batch_steps,
)

__all__ = ["ProcessVecEnv", "WorkerError", "merge_tables"]


class WorkerError(RuntimeError):
    """A worker process failed, died, or did not answer in time."""


def _shares(num_envs: int, processes: int) -> list[int]:
    """``num_envs`` split over ``processes`` as evenly as it goes, the larger shares first.

    >>> _shares(5, 2), _shares(4, 4), _shares(2, 3)
    ([3, 2], [1, 1, 1, 1], [1, 1])
    """
    n = min(processes, num_envs)
    return [num_envs // n + (k < num_envs % n) for k in range(n)]


def _worker(
    conn: Connection,
    num_envs: int,
    config: Any,
    overrides: Mapping[str, Any] | None,
    kwargs: Mapping[str, Any],
) -> None:
    """One worker: a ``VisionPipelineVecEnv`` of ``num_envs`` games, driven by ``conn``."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the agent's process stops us in order

    venv = None
    try:
        venv = VisionPipelineVecEnv(num_envs, config, overrides=overrides, **kwargs)
        conn.send(("ok", (venv.single_observation_space, venv.single_action_space)))
        sb3 = None
        while True:
            try:
                cmd, arg = conn.recv()
            except EOFError:  # the agent's process is gone
                return
            if cmd == "close":
                return
            try:
                if cmd == "reset":
                    seeds, options = arg
                    conn.send(("ok", venv.reset_each(seeds, options)))
                elif cmd == "step":
                    conn.send(("ok", venv.step_each(arg)))
                elif cmd == "step_sb3":  # Stable-Baselines3's: an ended episode resets now
                    if sb3 is None:
                        from flows.rl.sb3 import SB3VecEnv

                        sb3 = SB3VecEnv(venv)
                    sb3.step_async(arg)
                    conn.send(("ok", sb3.step_wait()))
                else:
                    conn.send(("error", f"unknown command {cmd!r}"))
            except Exception as ex:
                conn.send(("error", f"{type(ex).__name__}: {ex}"))
    except Exception as ex:
        with contextlib.suppress(OSError):
            conn.send(("error", f"{type(ex).__name__}: {ex}"))
    finally:
        if venv is not None:
            venv.close()
            ledger = venv.pipeline.ledger.counts()
            times = venv.pipeline.runtime.times.summary(ledger["captured"])
            report = {
                "ledger": ledger,
                "balanced": venv.pipeline.ledger.balanced() and ledger["in_flight"] == 0,
                "us_per_frame": {k: t["us_per_frame"] for k, t in times.items()},
            }
            with contextlib.suppress(OSError):
                conn.send(("closed", report))
        conn.close()


class ProcessVecEnv(SendRecv, VectorEnv[dict[str, np.ndarray], np.ndarray, np.ndarray]):
    """``num_envs`` sub-envs over ``processes`` worker processes, each running a
    :class:`~flows.rl.vec_env.VisionPipelineVecEnv` of its share of the games.

    Args:
        num_envs: how many sub-envs in all.
        config, overrides: as for ``VisionPipelineVecEnv`` (a path or a mapping: it goes
            to each process); each process's games are seeded ``capture.options.seed``
            plus the number of sub-envs before it, so no two games share a seed.
        processes: worker processes (at most ``num_envs``).
        timeout_s: the longest a step or a reset may take before :class:`WorkerError`.
        close_timeout_s: how long each worker gets to stop its pipeline.
        **kwargs: the rest of ``VisionPipelineVecEnv``'s (``max_episode_steps``...).

    Double-buffered stepping (:class:`~flows.rl.vec_env.SendRecv`'s ``async_reset``,
    ``recv``, ``send``) takes one process's games as a batch: while the policy computes
    one process's actions, the other processes' games play.
    """

    metadata = {"autoreset_mode": AutoresetMode.NEXT_STEP}

    def __init__(
        self,
        num_envs: int,
        config: Any = None,
        *,
        overrides: Mapping[str, Any] | None = None,
        processes: int = 2,
        timeout_s: float = 60.0,
        close_timeout_s: float = 30.0,
        **kwargs: Any,
    ) -> None:
        if isinstance(num_envs, bool) or not isinstance(num_envs, int) or num_envs < 1:
            msg = f"num_envs = {num_envs!r}: expected an integer >= 1"
            raise ValueError(msg)
        if isinstance(processes, bool) or not isinstance(processes, int) or processes < 1:
            msg = f"processes = {processes!r}: expected an integer >= 1"
            raise ValueError(msg)
        self.num_envs = num_envs
        self.timeout_s = float(timeout_s)
        self.close_timeout_s = float(close_timeout_s)
        self.shares = _shares(num_envs, processes)
        self.ledgers: list[dict[str, Any]] = []
        """Each worker's ledger, balance and per-step costs, once :meth:`close` returned."""
        base = load_config(config, overrides)
        seed = int(base.capture.options.get("seed", 0) or 0)
        game = base.capture.source in GAMES
        ctx = mp.get_context("spawn")  # no fork of a process with threads (torch, bytewax)
        self._conns: list[Connection] = []
        self._procs: list[Any] = []
        self._closed = False
        first = 0
        try:
            for k, share in enumerate(self.shares):
                # each process's games seeded apart (a game source; a replay has no seed)
                mine = {"capture": {"options": {"seed": seed + first}}} if game else {}
                parent, child = ctx.Pipe()
                proc = ctx.Process(
                    target=_worker,
                    args=(child, share, config, merge_tables(overrides, mine), dict(kwargs)),
                    name=f"framewax-env-{k}",
                    daemon=True,
                )
                proc.start()
                child.close()
                self._conns.append(parent)
                self._procs.append(proc)
                first += share
            spaces = [self._answer(k) for k in range(len(self._procs))]
        except BaseException:
            self.close()
            raise
        self.batches = self._split(list(range(num_envs)))  # send / recv: one process each
        self.batch_size = self.shares[0]
        self._pending = deque()
        self._received = set()
        self.single_observation_space, self.single_action_space = spaces[0]
        self.observation_space = batch_space(self.single_observation_space, num_envs)
        self.action_space = batch_space(self.single_action_space, num_envs)

    def _answer(self, k: int) -> Any:
        conn = self._conns[k]
        if not conn.poll(self.timeout_s):
            alive = self._procs[k].is_alive()
            msg = f"env process {k} did not answer in {self.timeout_s:.0f} s" + (
                "" if alive else f" (it exited with {self._procs[k].exitcode})"
            )
            raise WorkerError(msg)
        try:
            status, payload = conn.recv()
        except EOFError as ex:
            msg = f"env process {k} exited ({self._procs[k].exitcode})"
            raise WorkerError(msg) from ex
        if status != "ok":
            msg = f"env process {k}: {payload}"
            raise WorkerError(msg)
        return payload

    def _split(self, items: Sequence[Any]) -> list[list[Any]]:
        out, first = [], 0
        for share in self.shares:
            out.append(list(items[first : first + share]))
            first += share
        return out

    def _call(self, cmd: str, per_env: Sequence[Any], *extra: Any) -> list[Any]:
        """Send ``cmd`` with each process's share of ``per_env`` (and ``extra``) to every
        process first (they work at once), then collect each one's answer, in order."""
        for conn, part in zip(self._conns, self._split(per_env), strict=True):
            conn.send((cmd, (part, *extra) if extra else part))
        return [self._answer(k) for k in range(len(self._conns))]

    @staticmethod
    def _actions(actions: Any) -> list[list[int]]:
        return [[int(a) for a in np.atleast_1d(x)] for x in actions]

    def step(
        self, actions: np.ndarray
    ) -> tuple[dict[str, np.ndarray], np.ndarray, np.ndarray, np.ndarray, dict[str, Any]]:
        self._idle()
        per_env = self._actions(iterate(self.action_space, actions))
        return batch_steps(self, [r for answer in self._call("step", per_env) for r in answer])

    def step_sb3(
        self, actions: np.ndarray
    ) -> tuple[dict[str, np.ndarray], np.ndarray, np.ndarray, list[dict[str, Any]]]:
        """One step as Stable-Baselines3 takes it (each worker steps its share with
        :class:`~flows.rl.sb3.SB3VecEnv`): an ended episode resets in the same step, its
        last observation in ``info["terminal_observation"]``; per-env infos."""
        self._idle()
        answers = self._call("step_sb3", self._actions(actions))
        observations = {
            key: np.concatenate([obs[key] for obs, *_rest in answers]) for key in answers[0][0]
        }
        rewards = np.concatenate([a[1] for a in answers]).astype(np.float32)
        dones = np.concatenate([a[2] for a in answers])
        return observations, rewards, dones, [info for a in answers for info in a[3]]

    # -- double-buffered stepping: one process's games a batch -------------------------
    def _batches_reset(
        self, seeds: list[int | None], options: dict[str, Any] | None
    ) -> list[tuple[Any, dict[str, Any]]]:
        return [pair for answer in self._call("reset", seeds, options) for pair in answer]

    def _batch_send(self, batch: int, actions: list[Any]) -> None:
        self._conns[batch].send(("step", self._actions(actions)))

    def _batch_recv(self, batch: int, token: Any) -> list[Any]:
        return list(self._answer(batch))

    def close_extras(self, **kwargs: Any) -> None:
        """Stop every worker's pipeline (each ledger ends balanced) and its process."""
        if self._closed:
            return
        self._closed = True
        for conn in self._conns:
            with contextlib.suppress(OSError):  # already gone
                conn.send(("close", None))
        reports: list[dict[str, Any]] = []
        for k, (conn, proc) in enumerate(zip(self._conns, self._procs, strict=True)):
            report: dict[str, Any] = {"process": k, "balanced": False}
            try:
                while conn.poll(self.close_timeout_s):  # answers still in flight, then ours
                    status, payload = conn.recv()
                    if status == "closed":
                        report.update(payload)
                        break
            except (EOFError, OSError):
                pass
            proc.join(self.close_timeout_s)
            if proc.is_alive():
                proc.terminate()
                proc.join(5.0)
            conn.close()
            reports.append(report)
        self.ledgers = reports


def merge_tables(a: Mapping[str, Any] | None, b: Mapping[str, Any]) -> dict[str, Any]:
    """``b`` laid over ``a``, table by table.

    >>> merge_tables({"capture": {"options": {"fps": 30}}}, {"capture": {"options": {"seed": 4}}})
    {'capture': {'options': {'fps': 30, 'seed': 4}}}
    """
    out: dict[str, Any] = dict(a or {})
    for key, value in b.items():
        if isinstance(value, Mapping) and isinstance(out.get(key), Mapping):
            out[key] = merge_tables(out[key], value)
        else:
            out[key] = value
    return out
