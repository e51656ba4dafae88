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


def test_simulated_realtime_takes_the_picture_before_the_hold_ends_and_the_rest_plays_after():
    """``[capture.options] realtime``: an action held 4 tics, its picture taken 2 tics
    before the end, is the picture a plain lockstep game shows after 2 tics of it; the
    2 tics left play after it (the next picture has all 4 and 4 more)."""
    turn = np.array([0, 1, 0, 0])  # turn left: the view moves every tic
    sim = {"realtime": {"hold_tics": {"4": 1}, "delay_tics": {"2": 1}}}
    pictures = {}
    for name, options in (("sim", sim), ("two", {"frame_skip": 2}), ("four", {})):
        env = VisionPipelineEnv(
            ENVS["doom-basic"].config, overrides={**QUIET, "capture": {"options": options}}
        )
        try:
            env.reset(seed=9)
            pictures[name] = [env.step(turn)[0]["visual"] for _ in range(2)]
        finally:
            env.close()
    assert np.array_equal(pictures["sim"][0], pictures["two"][0])  # 2 tics of the turn shown
    assert not np.array_equal(pictures["sim"][0], pictures["four"][0])
    # the second picture: 4 + 2 tics of turning, as a plain game shows after 3 steps of 2
    assert not np.array_equal(pictures["sim"][1], pictures["four"][1])


def test_realtime_conditions_come_from_a_live_timeline(tmp_path):
    import json

    from flows.train_ppo import realtime_conditions

    # keys reach the game 2 tics after the call (down_tic), one step's never showed
    steps = [
        {"episode": 1, "call_tic": t, "down_tic": t + 2, "obs_tic": t + 3} for t in (20, 24, 28, 33)
    ] + [{"episode": 2, "call_tic": 16, "down_tic": None, "obs_tic": 16}]
    path = tmp_path / "timeline.json"
    path.write_text(json.dumps({"steps": steps}))
    c = realtime_conditions(path)
    # holds 4, 4, 5 (the episode change is no step); delays: the next action's landing
    # tic - 1 - the observation's tic (26 - 1 - 23 = 2), at most the hold - 1
    assert c == {"hold_tics": {"4": 2, "5": 1}, "delay_tics": {"2": 2, "3": 1}}
