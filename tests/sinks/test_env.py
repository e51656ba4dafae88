import threading

import gymnasium as gym
import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env

import sinks
from sinks.env import VisionPipelineEnv

SMALL = {
    "capture": {"options": {"width": 320, "height": 180, "fps": 30.0}},
    "batch": {"options": {"device": "cpu", "threads": 1}},
}


def _framewax_threads():
    return [t for t in threading.enumerate() if t.name.startswith("framewax")]


def test_check_env_passes_on_the_registered_env():
    env = gym.make(sinks.ENV_ID, overrides=SMALL)
    try:
        check_env(env.unwrapped)
    finally:
        env.close()
    assert _framewax_threads() == []


def test_step_returns_freshest_observation_with_provenance():
    env = gym.make(sinks.ENV_ID, overrides=SMALL, max_episode_steps=30)
    try:
        obs, info = env.reset(seed=5)
        assert obs in env.observation_space
        assert info["seq"] >= info["action_seq"]
        seqs = []
        for _ in range(30):
            obs, _reward, terminated, truncated, info = env.step(env.action_space.sample())
            assert obs in env.observation_space
            assert {"seq", "age_ms", "captured_at", "stale", "ledger"} <= set(info)
            assert info["age_ms"] >= 0
            c = info["ledger"]
            assert (
                c["captured"]
                == sum(c[k] for k in ("processed", "duplicate", "cached", "dropped", "failed"))
                + c["in_flight"]
            )
            seqs.append(info["seq"])
            if terminated or truncated:
                break
        assert seqs == sorted(seqs)
        assert truncated or terminated
    finally:
        env.close()
    assert _framewax_threads() == []


def test_max_wait_gives_an_observation_captured_after_the_action():
    env = VisionPipelineEnv(overrides=SMALL, max_wait_ms=3000)
    try:
        env.reset(seed=1)
        for _ in range(5):
            _, _, _, _, info = env.step(np.array([0, 2, 0, 0]))
            assert not info["stale"] and info["seq"] >= info["action_seq"]
    finally:
        env.close()


def test_step_before_reset_and_bad_action_are_clear_errors():
    env = VisionPipelineEnv(overrides=SMALL)
    try:
        with pytest.raises(RuntimeError, match="reset"):
            env.step(np.array([0, 0, 0, 0]))
        env.reset(seed=0)
        with pytest.raises(ValueError, match="not in MultiDiscrete"):
            env.step(np.array([9, 0, 0, 0]))
    finally:
        env.close()
