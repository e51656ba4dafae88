"""``framewax/VisionPipeline-v0``: a Gymnasium env over the running vision pipeline.

The env runs the dataflow in-process on a background thread, applies each
action to the game (the arena by default; a real game through the
``[actions]`` executor) and returns the freshest observation without waiting
on the model. Every step's ``info`` says which frame the observation came
from (``seq``, ``captured_at``), how old it is (``age_ms``), whether it
predates the action (``stale``), whether and when input was sent (``acted``,
``action_at``) and the ledger. Input held by the executor is released on
reset, close, an exception in ``step()``, SIGINT, SIGTERM and exit.
"""

from __future__ import annotations

import atexit
import os
import signal
import threading
import time
import weakref
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol, SupportsFloat

import gymnasium as gym
import numpy as np

from flows.config import ActionsConfig, FlowConfig, load_config
from flows.registry import build as build_stage
from flows.registry import resolve
from flows.rl.spaces import action_space, features, observation_space
from flows.runner import Pipeline
from operators.actions.executor import ActionExecutor, ActResult, InputDevice, Keymap
from operators.batch.encoder import OBS_SIZE
from operators.capture.arena import ArenaControl
from operators.clock import SYSTEM_CLOCK, Clock
from operators.errors import ConfigError
from operators.observation import Observation
from operators.reading import Scene

__all__ = [
    "ControlRate",
    "Executor",
    "VisionPipelineEnv",
    "arena_for_agent",
    "build_executor",
    "default_reward",
]

ObsDict = dict[str, np.ndarray]


def default_reward(prev: Observation | None, obs: Observation) -> tuple[float, bool]:
    """Reward from the vision features: +1 per kill ($300), -1 per 100 health lost, -1 on death.

    Returns ``(reward, terminated)``; the episode terminates on a death screen.
    """
    v = obs.vision
    if v.scene is Scene.DEATH or v.health == 0:
        return -1.0, True
    if prev is None:
        return 0.0, False
    p = prev.vision
    reward = 0.0
    if p.health is not None and v.health is not None and v.health < p.health:
        reward -= (p.health - v.health) / 100.0
    if p.money is not None and v.money is not None and v.money > p.money:
        reward += (v.money - p.money) / 300.0
    return reward, False


class Executor(Protocol):
    """What the env drives: :class:`~operators.actions.ActionExecutor` or a config's own."""

    def act(self, action: Sequence[int]) -> ActResult: ...

    def release_all(self) -> None: ...

    def reset(self) -> None: ...

    def close(self) -> None: ...


def build_executor(cfg: ActionsConfig, control_hz: float = 0.0) -> Executor:
    """The ``[actions]`` executor: ``none``, ``xtest`` or a ``"module:attr"`` that makes an
    input device (wrapped in an :class:`ActionExecutor` with the keymap) or a whole executor.
    A bad key name, display or option fails here, naming it."""
    made = build_stage("actions.executor", cfg.executor, cfg.options)
    if not isinstance(made, InputDevice):
        for method in ("act", "release_all", "reset", "close"):
            if not callable(getattr(made, method, None)):
                msg = (
                    f"actions.executor = {cfg.executor!r} made {type(made).__name__}, which is "
                    "neither an input device (check/press/release/move/focused/flush/close) "
                    f"nor an executor (act/release_all/reset/close): it has no {method}()"
                )
                raise ConfigError(msg)
        return made
    defaults = Keymap()
    kinds: dict[str, Any] = {**defaults.kinds, **cfg.kinds}
    keymap = Keymap(
        keys={**defaults.keys, **cfg.keys},
        kinds=kinds,
        turn_px=cfg.turn_px,
        pitch_px=cfg.pitch_px,
    )
    return ActionExecutor(made, keymap, max_hz=cfg.max_hz or control_hz)


# Every executor holding input in this process, released on SIGINT, SIGTERM and exit.
_LIVE: weakref.WeakSet[Any] = weakref.WeakSet()
_GUARDED = False


def _release_everything() -> None:
    for ex in list(_LIVE):
        try:
            ex.release_all()
        except Exception:  # releasing must not stop the others from releasing
            continue


def _guard(executor: Executor) -> None:
    """Release ``executor``'s input on SIGINT / SIGTERM (then do what the signal did before)
    and at exit."""
    global _GUARDED
    _LIVE.add(executor)
    if _GUARDED or threading.current_thread() is not threading.main_thread():
        return
    _GUARDED = True
    atexit.register(_release_everything)
    for sig in (signal.SIGINT, signal.SIGTERM):
        before = signal.getsignal(sig)

        def on_signal(signum: int, frame: Any, before: Any = before) -> None:
            _release_everything()
            if callable(before):
                before(signum, frame)
            elif before == signal.SIG_DFL:
                signal.signal(signum, signal.SIG_DFL)
                os.kill(os.getpid(), signum)

        signal.signal(sig, on_signal)


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


@dataclass
class _Sent:
    """An action applied to one stream, on its way to an observation."""

    control: ArenaControl | None
    ticket: int
    action_seq: int | None
    result: ActResult


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
    YIELD_EVERY_S = 0.005  # how often a tight step() loop hands the GIL to the dataflow

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
        if pipeline is not None:
            if config is not None or overrides:
                msg = "give either a shared pipeline or a config (and overrides), not both"
                raise ValueError(msg)
            cfg = pipeline.runtime.config
        else:
            cfg = arena_for_agent(load_config(config, overrides))
        self._owns_pipeline = pipeline is None
        if render_mode is not None and render_mode not in self.metadata["render_modes"]:
            msg = f"render_mode = {render_mode!r} is not valid; expected one of {self.metadata['render_modes']}"
            raise ValueError(msg)
        self.cfg = cfg
        self.render_mode = render_mode
        self.max_wait_ms = cfg.env.max_wait_ms if max_wait_ms is None else float(max_wait_ms)
        self.max_episode_steps = (
            cfg.env.max_episode_steps if max_episode_steps is None else max_episode_steps
        )
        hz = cfg.env.control_hz if control_hz is None else float(control_hz)
        self.rate = ControlRate(hz)
        self.executor = build_executor(cfg.actions, hz)
        _guard(self.executor)
        self._yielded = 0.0
        self.reward_fn = resolve("env.reward", cfg.env.reward)
        self._stream_id = stream_id
        self.action_space = action_space()
        self.observation_space = observation_space()  # type: ignore[assignment]
        self.pipeline: Pipeline | None = pipeline
        self._last: Observation | None = None
        self._rewarded_seq = -1
        self._steps = 0

    # -- plumbing --------------------------------------------------------------
    def _ensure_running(self) -> Pipeline:
        if self.pipeline is None:
            if not self._owns_pipeline:
                msg = "this env's shared pipeline was closed"
                raise RuntimeError(msg)
            self.pipeline = Pipeline(self.cfg, controlled=True).start()
        elif not self.pipeline.started:
            self.pipeline.start()
        if self.pipeline.error is not None:
            msg = f"the framewax dataflow stopped: {self.pipeline.error}"
            raise RuntimeError(msg) from self.pipeline.error
        return self.pipeline

    @property
    def stream_id(self) -> str:
        p = self._ensure_running()
        if self._stream_id is None:
            self._stream_id = p.runtime.stream_ids()[0]
        return self._stream_id

    def _control(self) -> ArenaControl | None:
        controls = self._ensure_running().runtime.controls or {}
        return controls.get(self.stream_id)

    def _to_obs(self, obs: Observation) -> ObsDict:
        return features(obs)

    def _info(
        self, obs: Observation, action_seq: int | None, action_at: float | None = None
    ) -> dict[str, Any]:
        """Provenance: ``stale`` is true when the frame was captured before the action
        (by seq for the arena, by time for input sent to a real game)."""
        p = self._ensure_running()
        now = time.time()
        stale = (action_seq is not None and obs.seq < action_seq) or (
            action_at is not None and obs.captured_at < action_at
        )
        return {
            "seq": obs.seq,
            "source_seq": obs.source_seq,
            "status": obs.status.value,
            "captured_at": obs.captured_at,
            "age_ms": obs.age_ms(now),
            "stale": stale,
            "action_seq": -1 if action_seq is None else action_seq,
            "stream_id": self.stream_id,
            "ledger": p.ledger.stream_counts(self.stream_id),
        }

    # -- gymnasium API ---------------------------------------------------------
    def reset(
        self, *, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[ObsDict, dict[str, Any]]:
        super().reset(seed=seed)
        self.executor.reset()  # nothing held over from the last episode
        p = self._ensure_running()
        timeout = self.cfg.env.start_timeout_s
        control = self._control()
        min_seq = 0
        if control is not None:
            arena_seed = seed if seed is not None else int(self.np_random.integers(0, 2**31 - 1))
            ticket = control.reset(arena_seed)
            applied = control.wait_applied(ticket, timeout)
            if applied is None:
                msg = f"the arena did not take the reset within {timeout} s (ledger: {p.ledger.counts()})"
                raise RuntimeError(msg)
            min_seq = applied
        obs = p.store.wait_for(self.stream_id, min_seq, timeout)
        if obs is None:
            err = f"; dataflow error: {p.error}" if p.error else ""
            msg = (
                f"no observation of {self.stream_id!r} within {timeout} s after reset "
                f"(ledger: {p.ledger.counts()}, reasons: {p.ledger.reasons()}){err}"
            )
            raise RuntimeError(msg)
        self._last, self._rewarded_seq, self._steps = obs, obs.seq, 0
        self.rate.restart()
        return self._to_obs(obs), self._info(obs, min_seq)

    def step(self, action: np.ndarray) -> tuple[ObsDict, SupportsFloat, bool, bool, dict[str, Any]]:
        if self._last is None:
            msg = "call reset() before step()"
            raise RuntimeError(msg)
        if action not in self.action_space:
            msg = f"action {action!r} is not in {self.action_space}"
            raise ValueError(msg)
        try:
            return self._step([int(a) for a in action])
        except BaseException:
            self.executor.release_all()  # an error (or Ctrl-C) mid-step leaves no key down
            raise

    def _step(self, action: list[int]) -> tuple[ObsDict, SupportsFloat, bool, bool, dict[str, Any]]:
        sent = self._send(action)
        if self.max_wait_ms > 0:
            self._await(sent, time.monotonic() + self.max_wait_ms / 1000.0)
        return self._observe(sent, self.rate.wait())

    def _send(self, action: list[int]) -> _Sent:
        """Apply ``action`` (to the arena's stream, and through the executor); no waiting."""
        self._ensure_running()
        # Hand the GIL over now and then: an agent stepping in a tight loop would
        # otherwise hold it for whole switch intervals and starve the dataflow thread
        # (measured: observation age 737 ms instead of 310 ms at 20k steps/s).
        now = time.monotonic()
        if now - self._yielded >= self.YIELD_EVERY_S:
            time.sleep(0)
            self._yielded = now
        control = self._control()
        action_seq: int | None = None
        ticket = 0
        if control is not None:
            action_seq = control.last_seq + 1  # the first frame that can show this action
            ticket = control.act(action)
        result = self.executor.act(action)
        return _Sent(control, ticket, action_seq, result)

    def _await(self, sent: _Sent, deadline: float) -> None:
        """Wait until ``deadline`` (monotonic) at most for a frame that shows the action."""
        p = self._ensure_running()
        left = max(deadline - time.monotonic(), 0.0)
        if sent.control is not None:
            applied = sent.control.wait_applied(sent.ticket, left)
            if applied is not None:
                sent.action_seq = applied
                p.store.wait_for(self.stream_id, applied, max(deadline - time.monotonic(), 0.0))
        elif sent.result.acted:
            p.store.wait_for(self.stream_id, 0, left, captured_after=sent.result.at)

    def _observe(
        self, sent: _Sent, overrun: bool
    ) -> tuple[ObsDict, SupportsFloat, bool, bool, dict[str, Any]]:
        """The freshest observation after ``sent``, its reward and provenance."""
        p = self._ensure_running()
        obs = p.store.latest(self.stream_id) or self._last
        assert obs is not None
        reward, terminated = 0.0, False
        if obs.seq > self._rewarded_seq:
            reward, terminated = self.reward_fn(self._last, obs)
            self._rewarded_seq = obs.seq
        self._last = obs
        self._steps += 1
        truncated = self._steps >= self.max_episode_steps
        action_at = sent.result.at if sent.result.acted else None
        info = self._info(obs, sent.action_seq, action_at)
        info["overrun"] = overrun
        info["acted"] = sent.result.acted
        info["action_at"] = sent.result.at
        if not sent.result.acted:
            info["not_acted"] = sent.result.reason
        return self._to_obs(obs), float(reward), bool(terminated), bool(truncated), info

    @property
    def overruns(self) -> int:
        """Steps whose agent took longer than a control period (``info["overrun"]``)."""
        return self.rate.overruns

    def render(self) -> np.ndarray | None:
        if self.render_mode != "rgb_array":
            return None
        last = self._last or (self.pipeline.store.latest() if self.pipeline else None)
        if last is None:
            return np.zeros((OBS_SIZE, OBS_SIZE, 3), np.uint8)
        return np.array(last.visual, copy=True)

    def close(self) -> None:
        """Release every key and button, then stop the pipeline (``[run] shutdown_ms``)."""
        try:
            self.executor.close()
        finally:
            if self.pipeline is not None:
                pipeline, self.pipeline = self.pipeline, None
                if self._owns_pipeline:
                    pipeline.stop()
            super().close()
