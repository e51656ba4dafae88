"""``ProcessVecEnv``: the games of one vector env spread over worker processes."""

import os
import signal
import subprocess
import sys
import textwrap

import numpy as np
import pytest

from flows.rl.process_vec_env import ProcessVecEnv, WorkerError
from tests.conftest import ROOT

SMALL = {
    "capture": {"options": {"width": 320, "height": 180, "fps": 30.0, "lockstep": True}},
    "batch": {"options": {"device": "cpu", "threads": 1, "network": "none"}},
}


def test_games_over_two_processes_step_reset_and_end_balanced():
    """Five arenas over two processes (three and two): each sub-env acts on its own game
    (distinct seeds: no two show the same picture), an ended episode resets on the next
    step (NEXT_STEP), and closing stops both pipelines with every frame accounted for."""
    venv = ProcessVecEnv(5, overrides=SMALL, processes=2, max_episode_steps=4, timeout_s=120)
    try:
        assert venv.shares == [3, 2]
        obs, info = venv.reset(seed=3)
        assert obs["visual"].shape == (5, 84, 84, 3) and info["_seq"].all()
        pictures = {obs["visual"][i].tobytes() for i in range(5)}
        assert len(pictures) == 5  # five games, five seeds
        truncs = []
        for _ in range(6):
            actions = np.stack([venv.single_action_space.sample() for _ in range(5)])
            obs, rewards, term, trunc, info = venv.step(actions)
            truncs.append((term | trunc).tolist())
            assert rewards.shape == (5,) and obs["numerical"].shape == (5, 10)
        # every sub-env's episode ends at its 4th step, and the 5th step resets it
        assert truncs[3] == [True] * 5 and truncs[4] == [False] * 5
        assert not info["stale"].any()
    finally:
        venv.close()
    assert len(venv.ledgers) == 2
    for report in venv.ledgers:
        assert report["balanced"], report
        assert report["ledger"]["captured"] > 0 and report["ledger"]["in_flight"] == 0
    venv.close()  # twice: nothing left to do


def test_double_buffered_one_process_a_batch():
    """``send`` / ``recv`` over two processes: each batch is one process's games; one
    plays on while the other's observations are in the agent's hands."""
    venv = ProcessVecEnv(4, overrides=SMALL, processes=2, max_episode_steps=3, timeout_s=120)
    try:
        assert venv.batches == [[0, 1], [2, 3]]
        venv.async_reset(seed=5)
        order, seqs = [], {i: [] for i in range(4)}
        ends = {i: 0 for i in range(4)}
        for _ in range(12):
            obs, _rewards, term, trunc, info = venv.recv()
            ids = [int(i) for i in info["env_id"]]
            order.append(ids)
            assert obs["visual"].shape == (2, 84, 84, 3)
            for k, i in enumerate(ids):
                seqs[i].append(int(info["seq"][k]))
                ends[i] += bool(term[k] or trunc[k])
            venv.send(np.stack([venv.single_action_space.sample() for _ in ids]), ids)
        assert order == [[0, 1], [2, 3]] * 6
        # six steps a sub-env, an episode of three steps then a reset: two ended episodes
        assert ends == {i: 1 for i in range(4)}, ends
        with pytest.raises(RuntimeError, match="recv"):
            venv.reset()
        venv.recv()
        venv.recv()
        obs, _info = venv.reset(seed=1)  # nothing in flight: the whole vector again
        assert obs["visual"].shape[0] == 4
    finally:
        venv.close()
    assert all(r["balanced"] for r in venv.ledgers), venv.ledgers


def test_a_worker_that_cannot_start_says_why():
    replay = {
        "capture": {
            "source": "replay",
            "options": {"paths": [str(ROOT / "tests" / "data" / "arena_small")]},
        }
    }
    with pytest.raises(WorkerError, match="num_envs = 2, but the 'replay' source has 1 streams"):
        ProcessVecEnv(4, overrides=replay, processes=2, timeout_s=120)
    with pytest.raises(ValueError, match="processes = 0"):
        ProcessVecEnv(2, overrides=SMALL, processes=0)


def test_ctrl_c_stops_every_process_with_its_ledger_balanced(tmp_path):
    """Ctrl-C reaches the whole process group: the workers ignore it, the agent's
    process gets KeyboardInterrupt, and its close() stops each worker's pipeline in
    order: both ledgers balanced, no process left."""
    script = tmp_path / "agent.py"
    script.write_text(
        textwrap.dedent(
            f"""
            import sys
            sys.path.insert(0, {str(ROOT)!r})
            from flows.rl.process_vec_env import ProcessVecEnv
            from tests.flows.rl.test_process_vec_env import SMALL

            if __name__ == "__main__":
                venv = ProcessVecEnv(2, overrides=SMALL, processes=2, timeout_s=120)
                try:
                    venv.reset(seed=0)
                    print("stepping", flush=True)
                    while True:
                        venv.step(venv.action_space.sample())
                except KeyboardInterrupt:
                    print("interrupted", flush=True)
                finally:
                    venv.close()
                    print("balanced", [r["balanced"] for r in venv.ledgers], flush=True)
            """
        )
    )
    proc = subprocess.Popen(
        [sys.executable, str(script)],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,  # its own process group, as a terminal's job is
    )
    try:
        assert proc.stdout is not None
        for line in proc.stdout:
            if line.startswith("stepping"):
                break
        os.killpg(proc.pid, signal.SIGINT)  # what Ctrl-C in a terminal sends
        out, _ = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    assert "interrupted" in out and "balanced [True, True]" in out, out
    assert proc.returncode == 0
