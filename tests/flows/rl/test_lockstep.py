"""Lockstep: the game waits for the agent; every step's observation is the frame its
action made, through the real dataflow (real Bytewax, the local model, the encoder)."""

import time

import pytest

from flows.config import load_config
from flows.rl.env import VisionPipelineEnv
from flows.rl.vec_env import VisionPipelineVecEnv
from operators.errors import VisionError
from operators.frame import Frame
from operators.reading import VisionResult

LOCKSTEP = {
    "capture": {"options": {"width": 320, "height": 180, "lockstep": True, "frame_skip": 4}},
    "batch": {"options": {"device": "cpu", "threads": 1}},
    "run": {"status_interval_s": 0, "summary": False},
}


class FlakyBackend:
    """A vision backend that fails every third frame (``failed(flaky)`` in the ledger)."""

    name = "flaky"

    def infer(self, frame: Frame) -> VisionResult:
        if frame.seq % 3 == 2:
            raise VisionError("flaky", f"frame {frame.seq} fails on purpose")
        return VisionResult(frame.stream_id, frame.seq, health=100)


def test_each_step_observes_the_frame_its_action_made():
    env = VisionPipelineEnv(overrides=LOCKSTEP, max_episode_steps=10**6)
    try:
        _obs, info = env.reset(seed=3)
        first = info["seq"]
        control = env.session.control
        for k in range(1, 41):
            _obs, _r, _term, _trunc, info = env.step(env.action_space.sample())
            assert info["seq"] == first + k  # exactly one frame per action, none skipped
            assert not info["stale"] and info["action_seq"] == info["seq"]
        # The game waits: no frame is drawn while the agent does not act.
        before = control.last_seq
        time.sleep(0.3)
        assert control.last_seq == before
        assert env.session.ledger()["captured"] == info["seq"] + 1
    finally:
        env.close()
    counts = env.pipeline.ledger.counts()
    assert (
        counts["in_flight"] == 0 and counts["captured"] == counts["processed"] + counts["duplicate"]
    )


def test_a_frame_that_fails_ends_the_step_without_waiting_out_the_deadline():
    overrides = {
        **LOCKSTEP,
        "vision": {"backend": "tests.flows.rl.test_lockstep:FlakyBackend"},
        "env": {"lockstep_timeout_s": 20.0},
        # A frame that repeats a failed one is its duplicate and fails with it (tested in
        # tests/operators/order): with dedup on, how many fail would depend on the actions.
        "dedup": {"enabled": False},
    }
    env = VisionPipelineEnv(overrides=overrides, max_episode_steps=10**6)
    try:
        env.reset(seed=0)
        t0 = time.monotonic()
        stale = []
        for _ in range(9):
            _obs, _r, _t, _tr, info = env.step(env.action_space.sample())
            stale.append(info["stale"])
        assert time.monotonic() - t0 < 15  # three failed frames did not each wait 20 s
        assert sum(stale) == 3  # their steps say the observation predates the action
        assert env.session.ledger()["failed"] == 3
    finally:
        env.close()
    assert env.pipeline.ledger.counts()["in_flight"] == 0


def test_a_vector_env_steps_every_game_once_per_step():
    venv = VisionPipelineVecEnv(3, overrides=LOCKSTEP, max_episode_steps=10**6)
    try:
        _obs, info = venv.reset(seed=7)
        start = info["seq"].copy()
        for k in range(1, 16):
            _obs, _r, _t, _tr, info = venv.step(venv.action_space.sample())
            assert list(info["seq"]) == list(start + k)
            assert not info["stale"].any()
    finally:
        venv.close()
    counts = venv.pipeline.ledger.counts()
    assert counts["in_flight"] == 0 and counts["captured"] == 3 * 16


def test_lockstep_options_are_checked():
    from flows.registry import build
    from operators.errors import ConfigError

    with pytest.raises(ConfigError, match="frame_skip"):
        build("capture.source", "arena", {"lockstep": True, "frame_skip": 0})
    with pytest.raises(ConfigError, match="lockstep"):
        build("capture.source", "arena", {"lockstep": "yes"})
    assert load_config(None, LOCKSTEP).env.lockstep_timeout_s > 0
