"""One stream of a running pipeline, as an agent acts on it and observes it.

A :class:`StreamSession` is what both envs are made of: the single env has one,
the vector env one per sub-env, all on one :class:`~flows.runner.Pipeline`.
It sends an action (to the arena's stream, and through the ``[actions]``
executor to a real game) without waiting, waits with a deadline for a frame
that can show it, and reads the freshest observation with its provenance.
Input the executor holds is released on reset, close, an exception and, through
the run's :class:`~flows.runtime.InputGuard`, on SIGINT, SIGTERM and exit.

Gymnasium is not needed here: rewards, spaces and episodes are the envs' part.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from flows.config import ActionsConfig
from flows.registry import build as build_stage
from flows.runner import Pipeline
from operators.actions.executor import COMMANDS, ActionExecutor, ActResult, InputDevice, Keymap
from operators.capture.base import AgentControl
from operators.errors import ConfigError
from operators.observation import Observation

__all__ = ["Executor", "Sent", "StreamSession", "build_executor"]

FIRE = COMMANDS.index("fire") + 1
"""The action's command that fires: a shot is the lag probe."""


class Executor(Protocol):
    """What a session drives: :class:`~operators.actions.ActionExecutor` or a config's own."""

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
    return ActionExecutor(
        made, keymap, max_hz=cfg.max_hz or control_hz, repeat_held=cfg.repeat_held
    )


@dataclass
class Sent:
    """An action applied to one stream, on its way to an observation."""

    control: AgentControl | None
    ticket: int
    action_seq: int | None
    """The first ``seq`` that can show the action (arena), once known."""
    result: ActResult
    """What the executor did: ``acted``, ``at`` (when input was sent), ``reason``."""
    started: float | None = None
    """When the step that sent it began (``time.monotonic()``)."""
    down_at: float | None = None
    """When the input had been sent (``time.monotonic()``): a period is held from here."""

    @property
    def action_at(self) -> float | None:
        """When input reached the game, if it did."""
        return self.result.at if self.result.acted else None


class StreamSession:
    """Act on and observe stream ``stream_id`` of ``pipeline``.

    Args:
        pipeline: a :class:`~flows.runner.Pipeline` built with ``controlled=True``;
            started on first use.
        stream_id: the stream (default: the pipeline's first).
        executor: where actions go besides the arena (default: built from ``[actions]``);
            it is guarded by the pipeline's runtime (released on SIGINT / SIGTERM / exit).
        control_hz: the env's control rate, the executor's input rate by default.
    """

    YIELD_EVERY_S = 0.005  # how often a tight step() loop hands the GIL to the dataflow
    PROBE_TIMEOUT_S = 2.0
    """A shot whose ammo drop no observation shows within this long is a lost probe."""

    def __init__(
        self,
        pipeline: Pipeline,
        stream_id: str | None = None,
        *,
        executor: Executor | None = None,
        control_hz: float = 0.0,
    ) -> None:
        self.pipeline = pipeline
        streams = pipeline.runtime.stream_ids()
        if stream_id is not None and stream_id not in streams:
            msg = f"stream_id = {stream_id!r} is not one of this pipeline's streams {streams}"
            raise ValueError(msg)
        self.stream_id = stream_id or streams[0]
        cfg = pipeline.runtime.config
        self.executor = executor or build_executor(cfg.actions, control_hz)
        pipeline.runtime.input_guard.add(self.executor)
        self._yielded = 0.0
        self.closed = False
        self.lag = pipeline.runtime.lag
        self._probe: tuple[float, int] | None = None  # (shot sent at, ammo read before)
        self._last_ammo: int | None = None
        self._firing = False

    # -- plumbing -----------------------------------------------------------------
    def running(self) -> Pipeline:
        """The pipeline, started if it was not; an error if its dataflow stopped."""
        p = self.pipeline
        if self.closed:
            msg = "this session was closed"
            raise RuntimeError(msg)
        if not p.started:
            p.start()
        if p.error is not None:
            msg = f"the framewax dataflow stopped: {p.error}"
            raise RuntimeError(msg) from p.error
        return p

    @property
    def control(self) -> AgentControl | None:
        """The game's control of this stream (``None`` for sources an agent cannot drive
        in-process: a screen, a recording)."""
        return (self.pipeline.runtime.controls or {}).get(self.stream_id)

    @property
    def lockstep(self) -> bool:
        """The game waits for this stream's agent: one frame per action."""
        control = self.control
        return control is not None and control.lockstep

    def ledger(self) -> dict[str, int]:
        """This stream's ledger counts."""
        return self.pipeline.ledger.stream_counts(self.stream_id)

    # -- an episode -----------------------------------------------------------------
    def restart(self, seed: int | None, timeout: float) -> tuple[Observation, int]:
        """Release held input, reseed the arena (if it is one) and wait up to ``timeout``
        for the first observation of the new episode; returns it and its first ``seq``."""
        self.executor.reset()  # nothing held over from the last episode
        p = self.running()
        control = self.control
        min_seq = 0
        if control is not None:
            ticket = control.reset(seed)
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
        return obs, min_seq

    # -- a step: send, wait, observe ---------------------------------------------------
    def send(self, action: Sequence[int]) -> Sent:
        """Apply ``action`` to the arena's stream and through the executor; never waits."""
        self.running()
        # Hand the GIL over now and then: an agent stepping in a tight loop would
        # otherwise hold it for whole switch intervals and starve the dataflow thread
        # (measured: observation age 737 ms instead of 310 ms at 20k steps/s).
        now = time.monotonic()
        if now - self._yielded >= self.YIELD_EVERY_S:
            time.sleep(0)
            self._yielded = now
        control = self.control
        action_seq: int | None = None
        ticket = 0
        if control is not None:
            action_seq = control.last_seq + 1  # the first frame that can show this action
            ticket = control.act(list(action))
        try:
            result = self.executor.act(action)
        except BaseException:
            self.executor.release_all()  # an error (or Ctrl-C) mid-step leaves no key down
            raise
        # A shot is a probe whose effect the game reports: the ammo drops on the screen.
        # Only a new press: with fire held, the gun fires by itself and a drop could be an
        # earlier shot's.
        shot_at = result.at if result.acted else (time.time() if control is not None else None)
        firing = len(action) > 3 and int(action[3]) == FIRE
        if firing and not self._firing and self._probe is None and shot_at and self._last_ammo:
            self._probe = (shot_at, self._last_ammo)
        self._firing = firing
        return Sent(control, ticket, action_seq, result)

    def wait(self, sent: Sent, deadline: float) -> None:
        """Wait until ``deadline`` (``time.monotonic()``) at most for a frame that can show
        ``sent``: the game's frame after the action (in lockstep: until that frame has
        ended, as an observation or a ledger record), or one captured after the input."""
        p = self.running()
        left = max(deadline - time.monotonic(), 0.0)
        if sent.control is not None:
            applied = sent.control.wait_applied(sent.ticket, left)
            if applied is not None:
                sent.action_seq = applied
                left = max(deadline - time.monotonic(), 0.0)
                if sent.control.lockstep:
                    # The game made one frame for this action; it ends as an observation
                    # or as a ledger record (dropped, failed), never silently: wait for that.
                    p.store.wait_ended(self.stream_id, applied, left)
                else:
                    p.store.wait_for(self.stream_id, applied, left)
        elif sent.result.acted:
            p.store.wait_for(self.stream_id, 0, left, captured_after=sent.result.at)

    def wait_captured(self, after: float, deadline: float) -> None:
        """Wait until ``deadline`` (``time.monotonic()``) at most for an observation of a
        frame captured after ``after`` (``time.time()``)."""
        left = max(deadline - time.monotonic(), 0.0)
        self.running().store.wait_for(self.stream_id, 0, left, captured_after=after)

    def latest(self) -> Observation | None:
        """The freshest observation of this stream, or ``None`` before the first."""
        return self.running().store.latest(self.stream_id)

    def info(
        self, obs: Observation, sent: Sent | None = None, action_seq: int | None = None
    ) -> dict[str, Any]:
        """Provenance of ``obs`` after ``sent``: ``stale`` is true when the frame was captured
        before the action (by ``seq`` for the arena, by time for input sent to a game)."""
        now = time.time()
        if sent is not None:
            action_seq = sent.action_seq
        action_at = sent.action_at if sent is not None else None
        stale = (action_seq is not None and obs.seq < action_seq) or (
            action_at is not None and obs.captured_at < action_at
        )
        probe = self._answer(obs, now)
        self.lag.add("observation", obs.age_ms(now))
        info: dict[str, Any] = {
            "seq": obs.seq,
            "source_seq": obs.source_seq,
            "status": obs.status.value,
            "captured_at": obs.captured_at,
            "age_ms": obs.age_ms(now),
            "stale": stale,
            "action_seq": -1 if action_seq is None else action_seq,
            "stream_id": self.stream_id,
            "ledger": self.ledger(),
        }
        if obs.vision.confidence:  # how sure the model was of each number delivered
            info["confidence"] = dict(obs.vision.confidence)
        if obs.vision.rejected:  # the numbers it would not deliver (None), and why
            info["unread"] = dict(obs.vision.rejected)
        if probe is not None:
            info["probe_ms"] = probe
        if sent is not None:
            info["acted"] = sent.result.acted
            info["action_at"] = sent.result.at
            if not sent.result.acted:
                info["not_acted"] = sent.result.reason
        return info

    def _answer(self, obs: Observation, now: float) -> dict[str, float] | None:
        """The shot probe's lags, when ``obs`` is the first frame that shows the ammo drop."""
        ammo = obs.vision.ammo
        probe, self._probe = self._probe, None
        if probe is not None:
            shot_at, before = probe
            if obs.captured_at >= shot_at and ammo is not None and ammo < before:
                pixels = (obs.captured_at - shot_at) * 1000.0
                seen = (now - shot_at) * 1000.0
                self.lag.add("action_to_pixels", pixels)
                self.lag.add("action_to_observation", seen)
                self.lag.probe(True)
                self._last_ammo = ammo
                return {"action_to_pixels": pixels, "action_to_observation": seen}
            if now - shot_at > self.PROBE_TIMEOUT_S:
                self.lag.probe(False)
            else:
                self._probe = probe  # not yet: keep waiting
        if self._probe is None and ammo is not None:
            self._last_ammo = ammo
        return None

    def let_go(self, action: Sequence[int]) -> None:
        """The end of a control period (``[env] timing = "period"``): every key up, and an
        in-process game's control told to do nothing from now (the pitch, a level, kept)."""
        self.executor.release_all()
        control = self.control
        if control is not None and not control.lockstep:
            idle = [0] * len(action)
            if len(action) > 2:
                idle[2] = int(action[2])
            control.act(idle)

    # -- the end ------------------------------------------------------------------------
    def release(self) -> None:
        """Release every key and button the executor holds."""
        self.executor.release_all()

    def close(self) -> None:
        """Release and close the executor (the pipeline is its owner's to stop)."""
        if self.closed:
            return
        self.closed = True
        try:
            self.executor.close()
        finally:
            self.pipeline.runtime.input_guard.discard(self.executor)
