"""Many envs, one pipeline: ``gymnasium.make_vec("framewax/VisionPipeline-v0", num_envs=N)``.

A vector env of N copies of :class:`~flows.rl.env.VisionPipelineEnv` would start N
dataflows, each with its own models (N OCR models, N torch encoders, N HTTP
connection pools), and N times the memory. :class:`VisionPipelineVecEnv` runs
**one** dataflow with N streams (the arena gets ``streams = N``; a replay or
another source must have at least N) and one set of models; sub-env ``i`` acts
on and observes stream ``i`` only, and its ``info`` carries that stream's
ledger. A step applies every sub-env's action first, then waits (``max_wait_ms``,
one deadline for all) and reads every observation, so N envs cost one wait,
not N.

Autoreset follows Gymnasium's default (``AutoresetMode.NEXT_STEP``): the step
after an episode ends resets that sub-env and ignores its action.
:class:`flows.rl.sb3.SB3VecEnv` adapts the same env to Stable-Baselines3's
``VecEnv`` (same-step reset, ``terminal_observation`` in ``info``).

Double-buffered stepping (``batch_size = num_envs // 2``; :class:`SendRecv`, EnvPool's
``async_reset`` / ``recv`` / ``send``): one half's games play while the policy picks
the other half's actions.
"""

from __future__ import annotations

import abc
import contextlib
import os
import time
from collections import deque
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

import numpy as np
from gymnasium.vector import AutoresetMode, VectorEnv
from gymnasium.vector.utils import batch_space, concatenate, create_empty_array, iterate

from flows.config import FlowConfig, Timing, load_config
from flows.rl.env import ControlRate, ObsDict, StepResult, VisionPipelineEnv, arena_for_agent
from flows.rl.session import Sent
from flows.runner import Pipeline

__all__ = [
    "SendRecv",
    "StepResult",
    "VisionPipelineVecEnv",
    "batch_observations",
    "batch_resets",
    "batch_steps",
    "env_seeds",
]


GAMES = ("arena", "doom")
"""Sources that run one game per stream: a vector env gets ``streams = num_envs`` of them."""


class SendRecv(abc.ABC):
    """Double-buffered stepping, with EnvPool's asynchronous interface.

    The sub-envs are cut into fixed batches of ``batch_size`` (``batches``). After
    :meth:`async_reset`, :meth:`recv` returns one batch's results (``info["env_id"]``
    names its sub-envs) and :meth:`send` gives that batch its actions, which sets its
    games going and returns at once. While the policy computes one batch's actions, the
    other batches' frames are in the pipeline (Sample Factory's double buffering, with
    two batches)::

        venv = VisionPipelineVecEnv(8, "arena-lockstep.toml", batch_size=4)
        venv.async_reset(seed=0)
        while training:
            obs, reward, terminated, truncated, info = venv.recv()
            venv.send(policy(obs), info["env_id"])

    ``recv`` returns the batches in the order they were sent (the oldest first), so
    each batch alternates with the others and none waits longer than the rest. Each
    batch steps as :meth:`step` does (``NEXT_STEP`` autoreset, the same ``info``);
    :meth:`step` is for the whole vector, when nothing is in flight.
    """

    num_envs: int
    single_observation_space: Any
    batches: list[list[int]]
    _pending: deque[tuple[int, list[StepResult] | None, Any]]
    _received: set[int]

    def _init_batches(self, batch_size: int | None) -> None:
        size = self.num_envs if batch_size is None else batch_size
        if isinstance(size, bool) or not isinstance(size, int) or not 1 <= size <= self.num_envs:
            msg = f"batch_size = {batch_size!r}: expected an integer from 1 to num_envs"
            raise ValueError(msg)
        if self.num_envs % size:
            msg = f"batch_size = {size} does not divide num_envs = {self.num_envs}"
            raise ValueError(msg)
        self.batch_size = size
        self.batches = [list(range(k, k + size)) for k in range(0, self.num_envs, size)]
        self._pending = deque()
        self._received = set()

    # the vector env's own part: reset every sub-env, start a batch's step, finish it
    @abc.abstractmethod
    def _batches_reset(
        self, seeds: list[int | None], options: dict[str, Any] | None
    ) -> list[tuple[ObsDict, dict[str, Any]]]:
        """Reset every sub-env (``seeds[i]`` for sub-env ``i``): each one's pair."""

    @abc.abstractmethod
    def _batch_send(self, batch: int, actions: list[Any]) -> Any:
        """Set batch ``batch``'s games going; what :meth:`_batch_recv` needs to finish."""

    @abc.abstractmethod
    def _batch_recv(self, batch: int, token: Any) -> list[StepResult]:
        """Wait for batch ``batch``'s step and observe it (autoreset included)."""

    def _idle(self) -> None:
        """Before a whole-vector ``step()`` or ``reset()``: no batch may be in flight."""
        if any(ready is None for _k, ready, _token in self._pending):
            msg = "step() or reset() with batches sent and not received: recv() them first"
            raise RuntimeError(msg)
        self._pending.clear()
        self._received.clear()

    def reset(
        self,
        *,
        seed: int | Sequence[int | None] | None = None,
        options: dict[str, Any] | None = None,
    ) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
        """Reset every sub-env (the whole vector; no batch may be in flight)."""
        self._idle()
        return batch_resets(self, self._batches_reset(env_seeds(seed, self.num_envs), options))

    def async_reset(
        self,
        *,
        seed: int | Sequence[int | None] | None = None,
        options: dict[str, Any] | None = None,
    ) -> None:
        """Reset every sub-env; :meth:`recv` then returns the first observations, batch
        by batch (reward 0, not ended)."""
        pairs = self._batches_reset(env_seeds(seed, self.num_envs), options)
        self._pending.clear()
        self._received.clear()
        for k, ids in enumerate(self.batches):
            first = [(pairs[i][0], 0.0, False, False, pairs[i][1]) for i in ids]
            self._pending.append((k, first, None))

    def recv(
        self,
    ) -> tuple[dict[str, np.ndarray], np.ndarray, np.ndarray, np.ndarray, dict[str, Any]]:
        """The oldest batch sent: its observations, rewards, terminations, truncations
        and infos, batched (``batch_size`` rows), with ``info["env_id"]``."""
        if not self._pending:
            msg = "recv() with no batch in flight: async_reset() first, and send() each batch"
            raise RuntimeError(msg)
        k, ready, token = self._pending[0]
        results = ready if ready is not None else self._batch_recv(k, token)
        self._pending.popleft()
        self._received.add(k)
        out = batch_steps(_Batch(self, len(results)), results)
        out[4]["env_id"] = np.array(self.batches[k])
        return out

    def send(self, actions: Any, env_id: Any) -> None:
        """Set a batch's games going with ``actions`` (one row per sub-env of ``env_id``,
        the ids :meth:`recv` gave); returns without waiting."""
        ids = [int(i) for i in np.atleast_1d(np.asarray(env_id))]
        k = next((k for k, b in enumerate(self.batches) if b == ids), None)
        if k is None or k not in self._received:
            msg = (
                f"send(env_id={ids}): expected the env_id of a batch recv() returned and "
                f"not yet sent ({[self.batches[j] for j in sorted(self._received)]})"
            )
            raise ValueError(msg)
        rows = list(actions)
        if len(rows) != len(ids):
            msg = f"{len(rows)} actions for a batch of {len(ids)} envs"
            raise ValueError(msg)
        token = self._batch_send(k, rows)
        self._received.discard(k)
        self._pending.append((k, None, token))


class _Batch(VectorEnv[Any, Any, Any]):
    """A batch of some of a vector env's sub-envs, for batching their results."""

    def __init__(self, venv: Any, size: int) -> None:
        self.num_envs = size
        self.single_observation_space = venv.single_observation_space


class VisionPipelineVecEnv(SendRecv, VectorEnv[dict[str, np.ndarray], np.ndarray, np.ndarray]):
    """N sub-envs over one framewax pipeline, one stream each.

    Args:
        num_envs: how many sub-envs (streams).
        config, overrides: as for :class:`~flows.rl.env.VisionPipelineEnv`; an arena or
            Doom gets ``capture.options.streams = num_envs`` (one game per sub-env). With
            a lockstep source every step waits for each sub-env's frame, all at once.
        max_wait_ms, max_episode_steps: per sub-env, as for the single env.
        control_hz: one control rate for the whole vector (0: none).
        render_mode: ``"rgb_array"``: :meth:`render` returns each sub-env's picture.
        workers: Bytewax workers for the one dataflow (streams are spread over them).
        batch_size: for double-buffered stepping (:class:`SendRecv`): the sub-envs
            :meth:`recv` returns at a time (a divisor of ``num_envs``; half of it for
            two buffers). :meth:`step` steps them all, whatever it is.
    """

    metadata = {"autoreset_mode": AutoresetMode.NEXT_STEP, "render_modes": ["rgb_array"]}

    def __init__(
        self,
        num_envs: int = 1,
        config: str | os.PathLike[str] | FlowConfig | Mapping[str, Any] | None = None,
        *,
        overrides: Mapping[str, Any] | None = None,
        max_wait_ms: float | None = None,
        max_episode_steps: int | None = None,
        control_hz: float | None = None,
        render_mode: str | None = None,
        workers: int = 1,
        batch_size: int | None = None,
    ) -> None:
        if isinstance(num_envs, bool) or not isinstance(num_envs, int) or num_envs < 1:
            msg = f"num_envs = {num_envs!r}: expected an integer >= 1"
            raise ValueError(msg)
        self.num_envs = num_envs
        self._init_batches(batch_size)  # checked before any pipeline starts
        cfg = load_config(config, overrides)
        if cfg.capture.source in GAMES:
            cfg = load_config(cfg, {"capture": {"options": {"streams": num_envs}}})
        cfg = arena_for_agent(cfg)
        if cfg.env.timing is not Timing.FREE:
            msg = (
                f"[env] timing = {cfg.env.timing.value!r} is the single env's (one game held "
                "to its control period); the vector env steps its games together: use 'free'"
            )
            raise ValueError(msg)
        self.pipeline = Pipeline(cfg, controlled=True, workers=workers)
        streams = self.pipeline.runtime.stream_ids()
        if len(streams) < num_envs:
            msg = (
                f"num_envs = {num_envs}, but the {cfg.capture.source!r} source has "
                f"{len(streams)} streams ({streams}); give it one stream per env"
            )
            raise ValueError(msg)
        self.envs = [
            VisionPipelineEnv(
                pipeline=self.pipeline,
                stream_id=sid,
                max_wait_ms=max_wait_ms,
                max_episode_steps=max_episode_steps,
                control_hz=0.0,  # the vector keeps one rate for all its sub-envs
                render_mode=render_mode,
            )
            for sid in streams[:num_envs]
        ]
        self.render_mode = render_mode
        hz = cfg.env.control_hz if control_hz is None else float(control_hz)
        self.rate = ControlRate(hz)
        self.max_wait_ms = self.envs[0].max_wait_ms
        self.single_observation_space = self.envs[0].observation_space
        self.single_action_space = self.envs[0].action_space
        self.observation_space = batch_space(self.single_observation_space, num_envs)
        self.action_space = batch_space(self.single_action_space, num_envs)
        self.stream_ids = list(streams[:num_envs])
        self._autoreset = np.zeros(num_envs, dtype=np.bool_)
        self._rates = [ControlRate(hz) for _ in self.batches]  # one per batch

    # -- the shared step, for both adapters ---------------------------------------
    def step_envs(
        self, actions: Sequence[Any], skip: Sequence[bool] = ()
    ) -> list[StepResult | None]:
        """Apply each sub-env's action (all first), wait once, then observe each.

        ``skip[i]`` leaves sub-env ``i`` out (its entry is ``None``). Input held by any
        executor is released if anything fails half-way.
        """
        every = range(self.num_envs)
        return self.wait_envs(every, self.send_envs(every, actions, skip), self.rate)

    def send_envs(
        self, indices: Sequence[int], actions: Sequence[Any], skip: Sequence[bool] = ()
    ) -> list[Sent | None]:
        """Apply ``actions[k]`` to sub-env ``indices[k]`` (none where ``skip[k]``); never
        waits. :meth:`wait_envs` observes them."""
        skipped = list(skip) or [False] * len(indices)
        if len(actions) != len(indices) or len(skipped) != len(indices):
            msg = f"{len(actions)} actions for {len(indices)} envs"
            raise ValueError(msg)
        acts: list[list[int] | None] = []
        for i, action, left_out in zip(indices, actions, skipped, strict=True):
            if left_out:
                acts.append(None)
                continue
            if action not in self.single_action_space:
                msg = f"action {action!r} for env {i} is not in {self.single_action_space}"
                raise ValueError(msg)
            acts.append([int(a) for a in action])
        with self._releasing():
            return [
                None if a is None else self.envs[i].session.send(a)
                for i, a in zip(indices, acts, strict=True)
            ]

    def wait_envs(
        self, indices: Sequence[int], sent: Sequence[Sent | None], rate: ControlRate
    ) -> list[StepResult | None]:
        """Wait once (``max_wait_ms``, or in lockstep until each game's frame has ended)
        for the actions :meth:`send_envs` applied, keep ``rate``, then observe each."""
        envs = [self.envs[i] for i in indices]
        with self._releasing():
            lockstep = self.envs[0].session.lockstep  # one source: all or none
            wait_s = (
                self.envs[0].cfg.env.lockstep_timeout_s if lockstep else self.max_wait_ms / 1000.0
            )
            if wait_s > 0:
                deadline = time.monotonic() + wait_s
                for env, s in zip(envs, sent, strict=True):
                    if s is not None:
                        env.session.wait(s, deadline)
            overrun = False if lockstep else rate.wait()
            return [
                None if s is None else env.finish(s, overrun)
                for env, s in zip(envs, sent, strict=True)
            ]

    @contextlib.contextmanager
    def _releasing(self) -> Iterator[None]:
        """Input held by any executor is released if the block fails half-way (an
        error, or Ctrl-C, mid-step leaves no key down)."""
        try:
            yield
        except BaseException:
            for env in self.envs:
                env.session.release()
            raise

    def reset_env(
        self, index: int, *, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[ObsDict, dict[str, Any]]:
        return self.envs[index].reset(seed=seed, options=options)

    def reset_each(
        self, seeds: Sequence[int | None], options: dict[str, Any] | None = None
    ) -> list[tuple[ObsDict, dict[str, Any]]]:
        """Reset every sub-env (``seeds[i]`` for sub-env ``i``): each one's observation and
        info, unbatched (:meth:`reset` batches them; a worker process sends them on)."""
        out = [self.reset_env(i, seed=s, options=options) for i, s in enumerate(seeds)]
        self._autoreset[:] = False
        self.rate.restart()
        return out

    def step_each(self, actions: Sequence[Any]) -> list[StepResult]:
        """One step of every sub-env (``actions[i]`` for sub-env ``i``), Gymnasium's
        ``NEXT_STEP`` autoreset included: a sub-env whose episode ended last step is reset
        (reward 0, not ended) and its action ignored. Unbatched (:meth:`step` batches)."""
        self._idle()
        every = list(range(self.num_envs))
        return self._autoreset_each(every, self.step_envs(actions, skip=list(self._autoreset)))

    def _autoreset_each(
        self, indices: Sequence[int], results: Sequence[StepResult | None]
    ) -> list[StepResult]:
        """Reset the sub-envs left out of a step (their episode ended the step before) and
        note which ended this one."""
        out: list[StepResult] = []
        for i, result in zip(indices, results, strict=True):
            if result is None:  # its episode ended last step: reset it now (NEXT_STEP mode)
                obs, info = self.reset_env(i)
                out.append((obs, 0.0, False, False, info))
            else:
                out.append(result)
            self._autoreset[i] = bool(out[-1][2] or out[-1][3])
        return out

    # -- double-buffered stepping: EnvPool's send / recv ----------------------------
    def _batches_reset(
        self, seeds: list[int | None], options: dict[str, Any] | None
    ) -> list[tuple[ObsDict, dict[str, Any]]]:
        for rate in self._rates:
            rate.restart()
        return self.reset_each(seeds, options)

    def _batch_send(self, batch: int, actions: list[Any]) -> Any:
        ids = self.batches[batch]
        return self.send_envs(ids, actions, skip=[bool(self._autoreset[i]) for i in ids])

    def _batch_recv(self, batch: int, token: Any) -> list[StepResult]:
        ids = self.batches[batch]
        return self._autoreset_each(ids, self.wait_envs(ids, token, self._rates[batch]))

    # -- gymnasium.vector API -----------------------------------------------------
    def step(
        self, actions: np.ndarray
    ) -> tuple[dict[str, np.ndarray], np.ndarray, np.ndarray, np.ndarray, dict[str, Any]]:
        return batch_steps(self, self.step_each(list(iterate(self.action_space, actions))))

    def render(self) -> tuple[np.ndarray, ...] | None:
        if self.render_mode is None:
            return None
        frames = [env.render() for env in self.envs]
        return tuple(f for f in frames if f is not None)

    def close_extras(self, **kwargs: Any) -> None:
        """Release every sub-env's input, then stop the one pipeline."""
        try:
            for env in self.envs:
                env.close()
        finally:
            self.pipeline.stop()


def env_seeds(seed: int | Sequence[int | None] | None, num_envs: int) -> list[int | None]:
    """Each sub-env's seed from a vector env's ``reset(seed=...)``: none, ``seed + i``, or
    one given per sub-env.

    >>> env_seeds(7, 3), env_seeds(None, 2), env_seeds([1, None], 2)
    ([7, 8, 9], [None, None], [1, None])
    """
    if seed is None:
        return [None] * num_envs
    if isinstance(seed, int):
        return [seed + i for i in range(num_envs)]
    seeds = list(seed)
    if len(seeds) != num_envs:
        msg = f"{len(seeds)} seeds for {num_envs} envs"
        raise ValueError(msg)
    return seeds


def batch_observations(venv: VectorEnv[Any, Any, Any], observations: list[ObsDict]) -> Any:
    """The sub-envs' observations as one batch of ``venv``'s observation space."""
    out: Any = create_empty_array(venv.single_observation_space, venv.num_envs)
    return concatenate(venv.single_observation_space, observations, out)


def batch_resets(
    venv: VectorEnv[Any, Any, Any], pairs: Sequence[tuple[ObsDict, dict[str, Any]]]
) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
    """:meth:`~VisionPipelineVecEnv.reset_each`'s per-sub-env results as ``reset()``
    returns them: the observations batched, the infos as Gymnasium's vector infos."""
    infos: dict[str, Any] = {}
    for i, (_obs, info) in enumerate(pairs):
        infos = venv._add_info(infos, info, i)
    return batch_observations(venv, [obs for obs, _info in pairs]), infos


def batch_steps(
    venv: VectorEnv[Any, Any, Any], results: Sequence[StepResult]
) -> tuple[dict[str, np.ndarray], np.ndarray, np.ndarray, np.ndarray, dict[str, Any]]:
    """:meth:`~VisionPipelineVecEnv.step_each`'s per-sub-env results as ``step()``
    returns them: observations, rewards, terminations and truncations batched, and
    Gymnasium's vector infos."""
    rewards = np.array([float(r[1]) for r in results], dtype=np.float64)
    terminated = np.array([bool(r[2]) for r in results], dtype=np.bool_)
    truncated = np.array([bool(r[3]) for r in results], dtype=np.bool_)
    infos: dict[str, Any] = {}
    for i, r in enumerate(results):
        infos = venv._add_info(infos, r[4], i)
    observations = batch_observations(venv, [r[0] for r in results])
    return observations, rewards, terminated, truncated, infos
