import threading

import gymnasium as gym
import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env

import flows.rl
from flows.rl.env import VisionPipelineEnv

SMALL = {
    "capture": {"options": {"width": 320, "height": 180, "fps": 30.0}},
    "batch": {"options": {"device": "cpu", "threads": 1}},
}


def _framewax_threads():
    return [t for t in threading.enumerate() if t.name.startswith("framewax")]


def test_check_env_passes_on_the_registered_env():
    env = gym.make(flows.rl.ENV_ID, overrides=SMALL)
    try:
        check_env(env.unwrapped)
    finally:
        env.close()
    assert _framewax_threads() == []


def test_step_returns_freshest_observation_with_provenance():
    env = gym.make(flows.rl.ENV_ID, overrides=SMALL, max_episode_steps=30)
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
            # the observation's frame was captured and resolved, and it is in the counts
            assert c["captured"] > info["seq"] and not c.get("violations")
            assert c[info["status"]] >= 1
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


def test_works_under_gymnasium_wrappers():
    from gymnasium.wrappers import (
        FlattenObservation,
        FrameStackObservation,
        RecordEpisodeStatistics,
    )

    env = RecordEpisodeStatistics(gym.make(flows.rl.ENV_ID, overrides=SMALL, max_episode_steps=12))
    stacked = FrameStackObservation(FlattenObservation(env), stack_size=4)
    try:
        obs, _ = stacked.reset(seed=1)
        assert obs.shape == (4, 84 * 84 * 3 + 10 + 50) and obs in stacked.observation_space
        episode = None
        for _ in range(12):
            obs, _r, terminated, truncated, info = stacked.step(stacked.action_space.sample())
            if terminated or truncated:
                episode = info["episode"]
                break
        assert episode is not None and episode["l"] >= 1
    finally:
        stacked.close()
    assert _framewax_threads() == []


def test_a_vector_env_of_two_runs_two_pipelines():
    envs = gym.vector.SyncVectorEnv(
        [lambda: gym.make(flows.rl.ENV_ID, overrides=SMALL, max_episode_steps=50) for _ in range(2)]
    )
    try:
        obs, info = envs.reset(seed=[3, 4])
        assert obs["visual"].shape == (2, 84, 84, 3)
        for _ in range(5):
            obs, rewards, _term, _trunc, info = envs.step(envs.action_space.sample())
        assert rewards.shape == (2,) and obs["numerical"].shape == (2, 10)
        # each copy observes its own pipeline: its own ledger, counting the frame it shows
        captured = info["ledger"]["captured"]
        assert captured.shape == (2,) and (captured > info["seq"]).all()
        assert not np.array_equal(obs["visual"][0], obs["visual"][1])  # seeds 3 and 4
    finally:
        envs.close()
    assert _framewax_threads() == []


def test_control_rate_on_a_fake_clock_is_exact_and_elastic():
    from flows.rl.env import ControlRate
    from operators.testing.fakes import FakeClock

    clock = FakeClock(0.0)
    rate = ControlRate(20.0, clock)
    assert [rate.wait() for _ in range(10)] == [False] * 10
    assert clock.now() == pytest.approx(0.5)  # 10 steps of 50 ms
    clock.advance(0.2)  # the agent thinks for four time steps
    assert rate.wait() and rate.overruns == 1 and clock.now() == pytest.approx(0.7)
    assert not rate.wait() and clock.now() == pytest.approx(0.75)  # a full step, no burst
    rate.restart()
    assert not rate.wait() and clock.now() == pytest.approx(0.8)
    assert ControlRate(0.0, clock).wait() is False and clock.now() == pytest.approx(0.8)


def test_control_rate_in_the_env_paces_steps_and_flags_a_late_agent():
    import time

    env = VisionPipelineEnv(overrides=SMALL, control_hz=20.0)
    try:
        env.reset(seed=2)
        t0 = time.monotonic()
        for _ in range(10):
            env.step(env.action_space.sample())
        assert time.monotonic() - t0 >= 0.5 - 1e-3  # 10 steps of 50 ms, at least
        time.sleep(0.2)  # the agent thinks for four time steps
        _obs, _r, _t, _tr, info = env.step(env.action_space.sample())
        assert info["overrun"] and env.overruns >= 1
    finally:
        env.close()


def test_stable_baselines3_ppo_trains_on_it_unmodified():
    from stable_baselines3 import PPO  # in the test extra (and the rl extra)

    env = gym.make(flows.rl.ENV_ID, overrides=SMALL, max_episode_steps=64)
    try:
        model = PPO(
            "MultiInputPolicy", env, n_steps=64, batch_size=32, n_epochs=1, seed=0, device="cpu"
        )
        model.learn(total_timesteps=128)
        assert model.num_timesteps >= 128
        action, _ = model.predict(env.observation_space.sample(), deterministic=True)
        assert action in env.action_space
    finally:
        env.close()
    assert _framewax_threads() == []
