"""Rewards: ``reward(prev_obs, obs) -> (reward, terminated)``, named by ``[env] reward``.

A reward reads the vision features of two consecutive observations (the
previous one is ``None`` at the start of an episode). It is called once per
new frame, not per step, so an agent stepping faster than frames arrive is
not paid twice for one change. A new reward is a function like these,
registered in :mod:`flows.registry` (``env.reward``) or named as
``"module:attr"`` in a config.
"""

from __future__ import annotations

from operators.observation import Observation
from operators.reading import Scene

__all__ = ["default_reward", "game_reward"]


def default_reward(prev: Observation | None, obs: Observation) -> tuple[float, bool]:
    """Reward from the vision features: +1 per kill ($300), -1 per 100 health lost, -1 on death.

    Returns ``(reward, terminated)``; the episode terminates on a death screen.
    """
    v = obs.vision
    if v.scene is Scene.DEATH or v.health == 0:
        return -1.0, True
    if prev is None:
        return 0.0, False
    p = prev.vision
    reward = 0.0
    if p.health is not None and v.health is not None and v.health < p.health:
        reward -= (p.health - v.health) / 100.0
    if p.money is not None and v.money is not None and v.money > p.money:
        reward += (v.money - p.money) / 300.0
    return reward, False


def game_reward(prev: Observation | None, obs: Observation) -> tuple[float, bool]:
    """The game's own reward, for games that keep a score (ViZDoom's scenarios, the
    arena's :attr:`~operators.capture.arena.Arena.score`): the
    change of ``truth.score`` since the previous observation, so a frame that never
    reached the agent (failed, dropped) loses no reward; the episode terminates when
    the game ends it.

    The agent still sees only what the pipeline read from the screen; the score is
    what the game pays, as in any RL setup over that game.
    """
    truth = obs.truth
    if truth is None or truth.score is None:
        msg = (
            "env.reward = 'game' needs a source that reports the game's score "
            "(capture.source = 'doom' or 'arena'); use the 'default' reward for other sources"
        )
        raise ValueError(msg)
    before = 0.0
    if prev is not None and prev.truth is not None and prev.truth.score is not None:
        before = prev.truth.score
    return truth.score - before, truth.episode_end == "terminated"
