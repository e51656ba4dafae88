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
"""

from __future__ import annotations

import os
import time
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
from gymnasium.vector import AutoresetMode, VectorEnv
from gymnasium.vector.utils import batch_space, concatenate, create_empty_array, iterate

from flows.config import FlowConfig, Timing, load_config
from flows.rl.env import ControlRate, ObsDict, StepResult, VisionPipelineEnv, arena_for_agent
from flows.runner import Pipeline

__all__ = [
    "StepResult",
    "VisionPipelineVecEnv",
    "batch_observations",
    "batch_resets",
    "batch_steps",
    "env_seeds",
]


GAMES = ("arena", "doom")
"""Sources that run one game per stream: a vector env gets ``streams = num_envs`` of them."""


class VisionPipelineVecEnv(VectorEnv[dict[str, np.ndarray], np.ndarray, np.ndarray]):
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
    ) -> None:
        if isinstance(num_envs, bool) or not isinstance(num_envs, int) or num_envs < 1:
            msg = f"num_envs = {num_envs!r}: expected an integer >= 1"
            raise ValueError(msg)
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
        self.num_envs = num_envs
        self.render_mode = render_mode
        self.rate = ControlRate(cfg.env.control_hz if control_hz is None else float(control_hz))
        self.max_wait_ms = self.envs[0].max_wait_ms
        self.single_observation_space = self.envs[0].observation_space
        self.single_action_space = self.envs[0].action_space
        self.observation_space = batch_space(self.single_observation_space, num_envs)
        self.action_space = batch_space(self.single_action_space, num_envs)
        self.stream_ids = list(streams[:num_envs])
        self._autoreset = np.zeros(num_envs, dtype=np.bool_)

    # -- the shared step, for both adapters ---------------------------------------
    def step_envs(
        self, actions: Sequence[Any], skip: Sequence[bool] = ()
    ) -> list[StepResult | None]:
        """Apply each sub-env's action (all first), wait once, then observe each.

        ``skip[i]`` leaves sub-env ``i`` out (its entry is ``None``). Input held by any
        executor is released if anything fails half-way.
        """
        skipped = list(skip) or [False] * self.num_envs
        acts: list[list[int] | None] = []
        for i, action in enumerate(actions):
            if skipped[i]:
                acts.append(None)
                continue
            if action not in self.single_action_space:
                msg = f"action {action!r} for env {i} is not in {self.single_action_space}"
                raise ValueError(msg)
            acts.append([int(a) for a in action])
        try:
            sent = [
                None if a is None else env.session.send(a)
                for env, a in zip(self.envs, acts, strict=True)
            ]
            lockstep = self.envs[0].session.lockstep  # one source: all or none
            wait_s = (
                self.envs[0].cfg.env.lockstep_timeout_s if lockstep else self.max_wait_ms / 1000.0
            )
            if wait_s > 0:
                deadline = time.monotonic() + wait_s
                for env, s in zip(self.envs, sent, strict=True):
                    if s is not None:
                        env.session.wait(s, deadline)
            overrun = False if lockstep else self.rate.wait()
            return [
                None if s is None else env.finish(s, overrun)
                for env, s in zip(self.envs, sent, strict=True)
            ]
        except BaseException:
            for env in self.envs:
                env.session.release()  # an error (or Ctrl-C) mid-step leaves no key down
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
        results = self.step_envs(actions, skip=list(self._autoreset))
        out: list[StepResult] = []
        for i, result in enumerate(results):
            if result is None:  # its episode ended last step: reset it now (NEXT_STEP mode)
                obs, info = self.reset_env(i)
                out.append((obs, 0.0, False, False, info))
            else:
                out.append(result)
        self._autoreset = np.array([bool(r[2] or r[3]) for r in out], dtype=np.bool_)
        return out

    # -- gymnasium.vector API -----------------------------------------------------
    def reset(
        self,
        *,
        seed: int | Sequence[int | None] | None = None,
        options: dict[str, Any] | None = None,
    ) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
        pairs = self.reset_each(env_seeds(seed, self.num_envs), options)
        return batch_resets(self, pairs)

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
