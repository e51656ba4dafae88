"""``gymnasium.make_vec`` and Stable-Baselines3: N envs over one pipeline, one stream each."""

import threading

import gymnasium as gym
import numpy as np
import pytest

import flows.rl
from flows.rl.vec_env import VisionPipelineVecEnv

SMALL = {
    "capture": {"options": {"width": 320, "height": 180, "fps": 30.0}},
    "batch": {"options": {"device": "cpu", "threads": 1}},
}


def _dataflow_threads():
    return [t for t in threading.enumerate() if t.name == "framewax-dataflow"]


def _record_actions(venv):
    """Which actions each stream's arena took (wrapping each stream's ArenaControl)."""
    taken: dict[str, list[tuple[int, ...]]] = {}
    for sid, control in venv.pipeline.runtime.controls.items():
        taken[sid] = []
        real = control.act

        def act(action, log=taken[sid], real=real):
            log.append(tuple(int(a) for a in action))
            return real(action)

        control.act = act
    return taken


def test_make_vec_runs_n_envs_on_one_pipeline_each_on_its_own_stream():
    envs = gym.make_vec(flows.rl.ENV_ID, num_envs=3, overrides=SMALL, max_episode_steps=1000)
    try:
        venv = envs.unwrapped
        assert isinstance(venv, VisionPipelineVecEnv)
        assert {id(e.pipeline) for e in venv.envs} == {id(venv.pipeline)}
        assert venv.pipeline.runtime.stream_ids() == ["arena-0", "arena-1", "arena-2"]
        taken = _record_actions(venv)
        obs, info = envs.reset(seed=7)
        assert obs["visual"].shape == (3, 84, 84, 3)
        assert len(_dataflow_threads()) == 1  # one dataflow (one set of models) for three envs
        sent = []
        for t in range(8):
            # distinct actions per env, so a swap or a broadcast would show
            actions = np.array([[t % 3, i % 5, (t + i) % 10, 0] for i in range(3)])
            actions = np.clip(actions, 0, envs.single_action_space.nvec - 1)
            sent.append(actions)
            obs, rewards, _term, _trunc, info = envs.step(actions)
        assert list(info["stream_id"]) == ["arena-0", "arena-1", "arena-2"]
        for i, sid in enumerate(venv.stream_ids):
            assert taken[sid] == [tuple(int(a) for a in s[i]) for s in sent], sid
            # the observation is the stream's own freshest one, and so is its ledger
            latest = venv.pipeline.store.latest(sid)
            assert latest is not None and info["seq"][i] <= latest.seq
            assert info["ledger"]["captured"][i] > info["seq"][i]
            assert (
                info["ledger"]["captured"][i] <= venv.pipeline.ledger.stream_counts(sid)["captured"]
            )
        assert rewards.shape == (3,) and obs["numerical"].shape == (3, 10)
    finally:
        envs.close()
    assert _dataflow_threads() == []
    led = venv.pipeline.ledger.summary()
    assert led["balanced"] and sorted(led["streams"]) == venv.stream_ids, led


def test_an_ended_episode_resets_on_the_next_step_without_acting():
    envs = VisionPipelineVecEnv(2, overrides=SMALL, max_episode_steps=3)
    try:
        taken = _record_actions(envs)
        envs.reset(seed=1)
        noop = np.zeros((2, 4), dtype=np.int64)
        truncs = [envs.step(noop)[3].copy() for _ in range(4)]
        assert [t.tolist() for t in truncs] == [[False, False]] * 2 + [[True, True], [False, False]]
        # the fourth step reset both envs (NEXT_STEP autoreset) and sent nothing
        assert [len(v) for v in taken.values()] == [3, 3]
    finally:
        envs.close()


def test_more_envs_than_streams_is_a_clear_error(tmp_path):
    from tests.conftest import ROOT

    replay = {
        "capture": {
            "source": "replay",
            "options": {"paths": [str(ROOT / "tests" / "data" / "arena_small")]},
        }
    }
    with pytest.raises(ValueError, match="num_envs = 2, but the 'replay' source has 1 streams"):
        VisionPipelineVecEnv(2, overrides=replay)
    with pytest.raises(ValueError, match="num_envs = 0"):
        VisionPipelineVecEnv(0)


def test_stable_baselines3_ppo_trains_on_n_streams_of_one_pipeline():
    from stable_baselines3 import PPO
    from stable_baselines3.common.env_checker import check_env  # noqa: F401 (SB3 present)

    from flows.rl.sb3 import SB3VecEnv

    venv = SB3VecEnv(num_envs=2, overrides=SMALL, max_episode_steps=16)
    try:
        obs = venv.reset()
        assert obs["visual"].shape == (2, 84, 84, 3)
        model = PPO("MultiInputPolicy", venv, n_steps=16, batch_size=16, n_epochs=1, seed=0)
        model.learn(total_timesteps=64)
        assert model.num_timesteps >= 64
        assert len(_dataflow_threads()) == 1
        # SB3's same-step reset: a finished episode hands over its last observation
        venv.step_async(np.zeros((2, 4), dtype=np.int64))
        _obs, _r, dones, infos = venv.step_wait()
        for done, info in zip(dones, infos, strict=True):
            assert ("terminal_observation" in info) == bool(done)
            assert info["stream_id"] in ("arena-0", "arena-1")
        assert venv.get_attr("stream_id") == ["arena-0", "arena-1"]
    finally:
        venv.close()
    assert _dataflow_threads() == []


LOCKSTEP = {
    "capture": {"options": {"width": 320, "height": 180, "lockstep": True, "frame_skip": 2}},
    "batch": {"options": {"device": "cpu", "threads": 1}},
}


def test_double_buffered_batches_alternate_and_each_steps_its_own_games():
    """``batch_size = num_envs / 2``: ``recv`` hands back one half while the other half's
    games play on; each half's actions reach its own arenas only, every frame once."""
    envs = VisionPipelineVecEnv(4, overrides=LOCKSTEP, max_episode_steps=5, batch_size=2)
    try:
        taken = _record_actions(envs)
        with pytest.raises(RuntimeError, match="async_reset"):
            envs.recv()
        envs.async_reset(seed=3)
        got, last_seq = [], {i: -1 for i in range(4)}
        sent: dict[int, list[tuple[int, ...]]] = {i: [] for i in range(4)}
        ended = np.zeros(4, dtype=bool)
        for t in range(16):
            obs, rewards, term, trunc, info = envs.recv()
            ids = [int(i) for i in info["env_id"]]
            got.append(ids)
            assert obs["visual"].shape == (2, 84, 84, 3) and rewards.shape == (2,)
            for k, i in enumerate(ids):
                assert info["stream_id"][k] == envs.stream_ids[i]
                # a new frame of its own game each step (or the reset's first frame)
                assert info["seq"][k] != last_seq[i] or ended[i]
                last_seq[i] = int(info["seq"][k])
                ended[i] = bool(term[k] or trunc[k])
            if t == 1:  # the half not received cannot be sent
                with pytest.raises(ValueError, match="env_id"):
                    envs.send(np.zeros((2, 4), dtype=np.int64), [2, 3] if ids == [0, 1] else [0, 1])
            actions = np.array([[t % 3, i % 5, (t + i) % 10, 0] for i in ids])
            actions = np.clip(actions, 0, envs.single_action_space.nvec - 1)
            for k, i in enumerate(ids):
                if not envs._autoreset[i]:
                    sent[i].append(tuple(int(a) for a in actions[k]))
            envs.send(actions, info["env_id"])
        # the halves alternate, oldest first
        assert got == [[0, 1], [2, 3]] * 8
        with pytest.raises(RuntimeError, match="recv"):
            envs.step(np.zeros((4, 4), dtype=np.int64))
        for _ in range(2):
            envs.recv()
        for i, sid in enumerate(envs.stream_ids):
            assert taken[sid] == sent[i], sid  # its own actions, none lost, none repeated
        # the whole vector steps again once nothing is in flight
        assert envs.step(np.zeros((4, 4), dtype=np.int64))[0]["visual"].shape[0] == 4
    finally:
        envs.close()
    led = envs.pipeline.ledger.summary()
    assert led["balanced"], led


def test_batch_size_must_divide_num_envs():
    with pytest.raises(ValueError, match="does not divide"):
        VisionPipelineVecEnv(3, overrides=LOCKSTEP, batch_size=2)
    with pytest.raises(ValueError, match="batch_size = 0"):
        VisionPipelineVecEnv(2, overrides=LOCKSTEP, batch_size=0)
