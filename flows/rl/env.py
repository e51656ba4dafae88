"""``framewax/VisionPipeline-v0``: a Gymnasium env over the running vision pipeline.

The env runs the dataflow in-process on a background thread, applies each
action to the game (the arena by default; a real game through the
``[actions]`` executor) and returns the freshest observation without waiting
on the model. Every step's ``info`` says which frame the observation came
from (``seq``, ``captured_at``), how old it is (``age_ms``), whether it
predates the action (``stale``), whether and when input was sent (``acted``,
``action_at``) and the ledger. Acting and observing are a
:class:`~flows.rl.session.StreamSession`'s; the env adds the spaces, the
reward, the episode and the control rate.
"""

from __future__ import annotations

import os
import time
from collections.abc import Mapping
from typing import Any, SupportsFloat

import gymnasium as gym
import numpy as np

from flows.config import FlowConfig, Timing, load_config
from flows.registry import resolve
from flows.rl.session import Sent, StreamSession
from flows.rl.spaces import action_space, features, observation_space
from flows.runner import Pipeline
from operators.batch.encoder import OBS_SIZE
from operators.clock import SYSTEM_CLOCK, Clock
from operators.observation import Observation

__all__ = ["ControlRate", "ObsDict", "StepResult", "VisionPipelineEnv", "arena_for_agent"]

ObsDict = dict[str, np.ndarray]
TRAIN_SEEDS = 1_000_000_000
"""``reset()`` without a seed draws the game's seed below this."""
StepResult = tuple[ObsDict, SupportsFloat, bool, bool, dict[str, Any]]


class ControlRate:
    """A fixed control rate with elastic timing, as rtgym does for real-time games.

    :meth:`wait` returns at the end of the current time step; an agent that
    took longer than a step restarts the schedule from now (returns ``True``:
    an overrun) instead of a burst of catch-up steps. ``hz = 0`` never waits.

    >>> from operators.testing import FakeClock
    >>> clock = FakeClock(0.0); rate = ControlRate(10.0, clock)
    >>> rate.wait(), clock.now()
    (False, 0.1)
    >>> clock.advance(0.35); rate.wait(), round(clock.now(), 6)
    (True, 0.45)
    """

    def __init__(self, hz: float, clock: Clock = SYSTEM_CLOCK) -> None:
        if hz < 0:
            msg = f"control_hz must be >= 0; got {hz}"
            raise ValueError(msg)
        self.period = 1.0 / hz if hz > 0 else 0.0
        self.clock = clock
        self.tick: float | None = None
        self.overruns = 0

    def restart(self) -> None:
        """A new episode: its first time step starts at the next :meth:`wait`."""
        self.tick = None

    def wait(self) -> bool:
        """Sleep to the end of this time step; ``True`` if the agent was already past it."""
        if not self.period:
            return False
        now = self.clock.now()
        if self.tick is None:
            self.tick = now + self.period
        if now <= self.tick:
            self.clock.sleep(self.tick - now)
            self.tick += self.period
            return False
        self.overruns += 1
        self.tick = now + self.period
        return True


def arena_for_agent(cfg: FlowConfig) -> FlowConfig:
    """An arena driven by an agent runs until the env closes, without its autopilot."""
    if cfg.capture.source != "arena":
        return cfg
    return load_config(cfg, {"capture": {"options": {"frames": 0, "autopilot": False}}})


class VisionPipelineEnv(gym.Env[ObsDict, np.ndarray]):
    """Real-time RL over the framewax pipeline.

    Args:
        config: a config path, mapping or ``FlowConfig`` (default: the built-in one).
        overrides: nested mapping merged over the config.
        max_wait_ms: ``step()`` waits up to this long for an observation captured
            after the action (default from ``[env]``; 0 never waits).
        max_episode_steps: truncate episodes after this many steps.
        control_hz: a fixed control rate (default from ``[env]``; 0 = none): ``step()``
            returns at the end of its time step; a late agent restarts the schedule.
        stream_id: which stream to act on and observe (default: the first).
        render_mode: ``"rgb_array"`` returns the 84×84 visual observation.
        pipeline: run on this :class:`~flows.runner.Pipeline` (built with
            ``controlled=True``) instead of starting one; it is shared (a vector env's
            sub-envs each observe their own stream of one pipeline), so ``close()``
            leaves it running and ``config`` / ``overrides`` must not be given.
    """

    metadata = {"render_modes": ["rgb_array"], "render_fps": 15}

    def __init__(
        self,
        config: str | os.PathLike[str] | FlowConfig | Mapping[str, Any] | None = None,
        *,
        overrides: Mapping[str, Any] | None = None,
        max_wait_ms: float | None = None,
        max_episode_steps: int | None = None,
        control_hz: float | None = None,
        stream_id: str | None = None,
        render_mode: str | None = None,
        pipeline: Pipeline | None = None,
    ) -> None:
        if pipeline is not None and (config is not None or overrides):
            msg = "give either a shared pipeline or a config (and overrides), not both"
            raise ValueError(msg)
        if render_mode is not None and render_mode not in self.metadata["render_modes"]:
            msg = f"render_mode = {render_mode!r} is not valid; expected one of {self.metadata['render_modes']}"
            raise ValueError(msg)
        self._owns_pipeline = pipeline is None
        if pipeline is None:
            pipeline = Pipeline(arena_for_agent(load_config(config, overrides)), controlled=True)
        cfg = pipeline.runtime.config
        self.cfg = cfg
        self.render_mode = render_mode
        self.max_wait_ms = cfg.env.max_wait_ms if max_wait_ms is None else float(max_wait_ms)
        self.max_episode_steps = (
            cfg.env.max_episode_steps if max_episode_steps is None else max_episode_steps
        )
        hz = cfg.env.control_hz if control_hz is None else float(control_hz)
        self.rate = ControlRate(hz)
        self.timing = Timing(cfg.env.timing)
        if self.timing is Timing.PERIOD and hz <= 0:
            msg = (
                "[env] timing = 'period' needs a control period: set control_hz > 0 "
                "(a lockstep policy's: the game's tic rate / its frame skip, 35 / 4 for Doom)"
            )
            raise ValueError(msg)
        self._returned: float | None = None  # when the last period's step() returned
        self._late = 0
        self.reward_fn = resolve("env.reward", cfg.env.reward)
        self.session = StreamSession(pipeline, stream_id, control_hz=hz)
        self.action_space = action_space()
        self.observation_space = observation_space()  # type: ignore[assignment]
        self._last: Observation | None = None
        self._rewarded_seq = -1
        self._steps = 0

    @property
    def pipeline(self) -> Pipeline:
        return self.session.pipeline

    @property
    def stream_id(self) -> str:
        return self.session.stream_id

    @property
    def executor(self) -> Any:
        return self.session.executor

    # -- gymnasium API ---------------------------------------------------------
    def reset(
        self, *, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[ObsDict, dict[str, Any]]:
        super().reset(seed=seed)
        # Without a seed, the game's is drawn below TRAIN_SEEDS: seeds from there up are
        # left to evaluation episodes (flows.train_ppo), so none is also a training one.
        arena_seed = seed if seed is not None else int(self.np_random.integers(0, TRAIN_SEEDS))
        obs, min_seq = self.session.restart(arena_seed, self.cfg.env.start_timeout_s)
        self._last, self._rewarded_seq, self._steps = obs, obs.seq, 0
        self.rate.restart()
        self._returned = None
        return features(obs), self.session.info(obs, action_seq=min_seq)

    def step(self, action: np.ndarray) -> StepResult:
        if self._last is None:
            msg = "call reset() before step()"
            raise RuntimeError(msg)
        if action not in self.action_space:
            msg = f"action {action!r} is not in {self.action_space}"
            raise ValueError(msg)
        try:
            started = time.monotonic()
            sent = self.session.send([int(a) for a in action])
            sent.started, sent.down_at = started, time.monotonic()
            if self.session.lockstep:  # the game waits for us: its frame after the action
                self.session.wait(sent, time.monotonic() + self.cfg.env.lockstep_timeout_s)
                return self.finish(sent)
            if self.timing is Timing.PERIOD:
                return self._period(sent, action)
            if self.max_wait_ms > 0:
                self.session.wait(sent, time.monotonic() + self.max_wait_ms / 1000.0)
            return self.finish(sent, self.rate.wait())
        except BaseException:
            self.session.release()  # an error (or Ctrl-C) mid-step leaves no key down
            raise

    def _period(self, sent: Sent, action: np.ndarray) -> StepResult:
        """``timing = "period"``: the action's input is down from the step's start; hold it
        for exactly one control period, let it go, and observe the freshest frame (the
        first captured after the release, within ``max_wait_ms``)."""
        start = sent.started if sent.started is not None else time.monotonic()
        thinking = 0.0 if self._returned is None else (start - self._returned) * 1000.0
        overrun = thinking > self.rate.period * 1000.0
        self.session.lag.period(thinking, overrun)
        self._late += overrun
        down = sent.down_at if sent.down_at is not None else start
        left = down + self.rate.period - time.monotonic()  # a period from the input's sending
        if left > 0:
            time.sleep(left)  # the game plays the action for the period
        self.session.let_go([int(a) for a in action])
        released = time.time()
        if self.max_wait_ms > 0:
            self.session.wait_captured(released, time.monotonic() + self.max_wait_ms / 1000.0)
        out = self.finish(sent, overrun)
        out[4]["thinking_ms"] = thinking
        out[4]["held_ms"] = (released - sent.result.at) * 1000.0 if sent.result.acted else 0.0
        self._returned = time.monotonic()
        return out

    def finish(self, sent: Sent, overrun: bool = False) -> StepResult:
        """The step after ``sent``: the freshest observation, its reward (once per new
        frame), termination, truncation and ``info``. :meth:`step` is ``send``, an
        optional ``wait``, then this; the vector env sends all, waits once, then calls
        this per sub-env."""
        if self._last is None:
            msg = "call reset() before step()"
            raise RuntimeError(msg)
        obs = self.session.latest() or self._last
        reward, terminated = 0.0, False
        if obs.seq > self._rewarded_seq:
            reward, terminated = self.reward_fn(self._last, obs)
            self._rewarded_seq = obs.seq
        self._last = obs
        self._steps += 1
        game_end = obs.truth.episode_end if obs.truth is not None else None
        terminated = terminated or game_end == "terminated"
        truncated = self._steps >= self.max_episode_steps or game_end == "truncated"
        info = self.session.info(obs, sent)
        info["overrun"] = overrun
        return features(obs), float(reward), bool(terminated), bool(truncated), info

    @property
    def observation(self) -> Observation | None:
        """The observation behind the last ``reset()`` / ``step()``: the model's reading,
        the frame's ground truth where the game gives one, its provenance."""
        return self._last

    @property
    def overruns(self) -> int:
        """Steps whose agent took longer than a control period (``info["overrun"]``)."""
        return self._late if self.timing is Timing.PERIOD else self.rate.overruns

    def render(self) -> np.ndarray | None:
        if self.render_mode != "rgb_array":
            return None
        last = self._last or (self.pipeline.store.latest() if self.pipeline.started else None)
        if last is None:
            return np.zeros((OBS_SIZE, OBS_SIZE, 3), np.uint8)
        return np.array(last.visual, copy=True)

    def close(self) -> None:
        """Release every key and button, then stop the pipeline (``[run] shutdown_ms``)."""
        if self.session.closed:
            return
        try:
            self.session.close()
        finally:
            if self._owns_pipeline:
                self.pipeline.stop()
            super().close()
