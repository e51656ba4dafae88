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


class TimedDevice:
    """An input device that notes when each key went down and up (``time.monotonic()``)."""

    def __init__(self) -> None:
        import time

        self._now = time.monotonic
        self.events: list[tuple[str, str, float]] = []

    def check(self, key):
        return None

    def press(self, key):
        self.events.append(("press", key, self._now()))

    def release(self, key):
        self.events.append(("release", key, self._now()))

    def move(self, dx, dy):
        return None

    def focused(self):
        return True

    def flush(self, wait=False):
        return None

    def close(self):
        return None


def test_period_timing_holds_each_action_for_exactly_its_period_and_reports_a_late_agent():
    """``[env] timing = "period"`` (rtgym's fixed control period): the keys go down at
    the step's start and up at its period's end, whatever the agent does next; the
    observation is the freshest at the end; thinking over a period is an overrun, in
    ``info`` and in the run's summary."""
    import time

    over = {
        **SMALL,
        "env": {"timing": "period", "control_hz": 20.0},
        "actions": {"executor": "tests.flows.rl.test_env:TimedDevice", "max_hz": 100.0},
        "run": {"summary": False, "status_interval_s": 0},
    }
    env = VisionPipelineEnv(overrides=over)
    try:
        env.reset(seed=3)
        device = env.executor.device
        forward = np.array([1, 0, 0, 0])
        starts, infos = [], []
        for i in range(6):
            if i == 4:
                time.sleep(0.12)  # the agent thinks for over two periods
            starts.append(time.monotonic())
            _obs, _r, _t, _tr, info = env.step(forward)
            infos.append(info)
            assert time.monotonic() - starts[-1] >= 0.05 - 1e-3  # the whole period
            assert info["captured_at"] <= time.time()
        presses = [t for kind, key, t in device.events if kind == "press" and key == "w"]
        releases = [t for kind, key, t in device.events if kind == "release" and key == "w"]
        assert len(presses) == len(releases) == 6  # up at every period's end, down at the next
        for down, up, start in zip(presses, releases, starts, strict=True):
            assert down - start < 0.02  # applied at the period's start
            assert 0.05 - 1e-3 <= up - down < 0.05 + 0.1  # held for the period, let go at its end
        assert all(0.045 < i["held_ms"] / 1000 < 0.15 for i in infos)
        assert infos[4]["overrun"] and infos[4]["thinking_ms"] >= 100
        assert not infos[3]["overrun"] and env.overruns == 1
        lag = env.pipeline.runtime.lag.summary()
        assert lag["periods"] == 6 and lag["overruns"] == 1
    finally:
        env.close()
    with pytest.raises(ValueError, match="control_hz"):
        VisionPipelineEnv(overrides={**SMALL, "env": {"timing": "period"}})
    with pytest.raises(ValueError, match="timing"):
        VisionPipelineEnv(overrides={**SMALL, "env": {"timing": "sometimes"}})


def test_action_history_puts_the_last_actions_in_the_observation():
    from flows.rl.wrappers import ActionHistory

    env = ActionHistory(VisionPipelineEnv(overrides=SMALL), n=3)
    try:
        obs, _ = env.reset(seed=4)
        assert obs in env.observation_space and not obs["actions"].any()
        sent = [
            np.array([1, 2, 3, 4]),
            np.array([2, 0, 9, 7]),
            np.array([0, 4, 0, 1]),
            np.array([1, 1, 1, 1]),
        ]
        for i, a in enumerate(sent):
            obs, *_ = env.step(a)
            assert obs in env.observation_space
            want = sent[max(0, i - 2) : i + 1]
            assert np.array_equal(obs["actions"][3 - len(want) :], np.stack(want))  # oldest first
        obs, _ = env.reset(seed=5)
        assert not obs["actions"].any()  # a new episode starts with none
    finally:
        env.close()


def test_period_timing_tells_the_arena_to_do_nothing_at_the_periods_end():
    """The in-process arena has no keys to let go: at a period's end its control gets a
    do-nothing action (the pitch kept), so the action lasts exactly its period there too."""
    env = VisionPipelineEnv(overrides={**SMALL, "env": {"timing": "period", "control_hz": 20.0}})
    try:
        env.reset(seed=6)
        env.step(np.array([1, 3, 7, 1]))
        assert env.session.control._action == (0, 0, 7, 0)  # what the arena plays next
    finally:
        env.close()
