"""The baselines on the bare arena: the scripted aimbot's rules, and that it scores."""

from types import SimpleNamespace

import numpy as np
import pytest

from flows.rl.policies import RandomPolicy, ScriptedPolicy
from operators.capture.arena import Arena
from operators.reading import Detection
from operators.truth import GroundTruth


def _seeing(*boxes: tuple[float, float, float, float], ammo: int = 30) -> SimpleNamespace:
    enemies = tuple(Detection(*b) for b in boxes)
    truth = GroundTruth(health=100, armor=0, ammo=ammo, ammo_reserve=90, money=800, enemies=enemies)
    return SimpleNamespace(truth=truth)


def test_it_turns_and_fires_at_once_when_the_crosshair_is_on_an_off_centre_box():
    policy = ScriptedPolicy()
    move, turn, _, cmd = policy.act(_seeing((0.38, 0.3, 0.52, 0.9)))  # centre 0.45: on it
    assert (turn, cmd) == (1, 1)  # a gentle left, firing
    move, turn, _, cmd = policy.act(_seeing((0.70, 0.45, 0.74, 0.55)))  # far right, small
    assert (move, turn, cmd) == (1, 4, 0)  # walks towards it, turns hard, holds fire


def test_it_searches_towards_the_side_it_saw_an_enemy_last_and_reloads_an_empty_clip():
    policy = ScriptedPolicy(search=4)
    policy.act(_seeing((0.05, 0.4, 0.1, 0.6)))  # left of centre
    assert policy.act(_seeing())[1] == 3  # gone: search left
    policy.reset()
    assert policy.act(_seeing())[1] == 4
    assert policy.act(_seeing((0.4, 0.3, 0.6, 0.9), ammo=0))[3] == 2
    with pytest.raises(ValueError, match="hard turn"):
        ScriptedPolicy(search=1)


def _score(policy: ScriptedPolicy | RandomPolicy, seed: int) -> float:
    arena, ticks = Arena(width=320, height=180, seed=seed), 4
    policy.reset()
    for _ in range(150):
        action = tuple(int(a) for a in policy.act(SimpleNamespace(truth=arena.truth())))
        for _ in range(ticks):
            arena.step(action)
    return arena.score


def test_the_scripted_aimbot_kills_in_the_arena_where_random_play_does_not():
    seeds = range(5)
    scripted = [_score(ScriptedPolicy(), s) for s in seeds]
    random = [_score(RandomPolicy(s), s) for s in seeds]
    assert min(scripted) > 2.0 > max(random)  # a kill with its hits is +2.02
    assert np.mean(scripted) > np.mean(random) + 5.0
