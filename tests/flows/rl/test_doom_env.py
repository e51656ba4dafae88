"""The env over Doom in lockstep: ViZDoom in-process, the game's own reward, the baselines."""

import numpy as np

from flows.rl.env import VisionPipelineEnv
from flows.rl.policies import RandomPolicy, ScriptedPolicy
from flows.train_ppo import ENVS

QUIET = {"run": {"status_interval_s": 0, "summary": False}}


def _episode(env, policy, seed):
    _obs, info = env.reset(seed=seed)
    total, seqs = 0.0, [info["seq"]]
    while True:
        _obs, reward, terminated, truncated, info = env.step(policy.act(env.observation))
        total += reward
        seqs.append(info["seq"])
        if terminated or truncated:
            return total, env.observation, seqs


def test_the_return_is_the_games_score_and_the_episode_ends_when_the_game_ends_it():
    env = VisionPipelineEnv(ENVS["doom-basic"].config, overrides=QUIET)
    try:
        total, last, seqs = _episode(env, RandomPolicy(1), seed=5)
        assert last.truth.episode_end in ("terminated", "truncated")
        assert total == last.truth.score  # every step paid what the game paid, once
        assert seqs == list(range(seqs[0], seqs[0] + len(seqs)))  # a frame per step, in order
        # what the agent saw was read from the screen: the status bar's numbers
        assert last.vision.health == last.truth.health and last.vision.ammo is not None
    finally:
        env.close()
    counts = env.pipeline.ledger.counts()
    assert counts["in_flight"] == 0 and counts["failed"] == 0


def test_the_scripted_aimbot_beats_random_play_on_the_same_seeds():
    env = VisionPipelineEnv(ENVS["doom-basic"].config, overrides=QUIET)
    try:
        seeds = range(100, 104)
        scripted = [
            _episode(env, ScriptedPolicy(strafe=True, fire_within=0.5, approach=0.0), s)[0]
            for s in seeds
        ]
        random = [_episode(env, RandomPolicy(0), s)[0] for s in seeds]
    finally:
        env.close()
    assert np.mean(scripted) > 0 > np.mean(random)
