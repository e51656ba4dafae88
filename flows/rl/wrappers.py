"""Wrappers for real-time play: the env's own spaces and behaviour, plus what an agent
acting on a game that does not wait needs to stay Markov."""

from __future__ import annotations

from collections import deque
from typing import Any, SupportsFloat

import gymnasium as gym
import numpy as np
from gymnasium import spaces

__all__ = ["ActionHistory"]


class ActionHistory(
    gym.ObservationWrapper[dict[str, np.ndarray], np.ndarray, dict[str, np.ndarray]]
):
    """Add the last ``n`` actions to a ``Dict`` observation, as rtgym's action buffer
    does: in real time the observation trails the game (a frame in flight, keys landing
    a tic late), and the actions already on their way are part of the state. The key
    ``"actions"`` holds them oldest first, ``(n, len(nvec))``, zeros before the first::

        env = ActionHistory(VisionPipelineEnv("flows/configs/doom.toml"), n=4)
        obs, info = env.reset()  # obs["actions"].shape == (4, 4)
    """

    def __init__(self, env: gym.Env[Any, Any], n: int = 4) -> None:
        super().__init__(env)
        if n < 1:
            msg = f"ActionHistory(n={n}): keep at least one action"
            raise ValueError(msg)
        act = env.action_space
        if not isinstance(act, spaces.MultiDiscrete) or not isinstance(
            env.observation_space, spaces.Dict
        ):
            msg = "ActionHistory wraps an env with a MultiDiscrete action and a Dict observation"
            raise TypeError(msg)
        self.n = int(n)
        self.nvec = np.asarray(act.nvec).ravel()
        self._actions: deque[np.ndarray] = deque(maxlen=self.n)
        self.observation_space = spaces.Dict(  # type: ignore[assignment]
            {
                **env.observation_space.spaces,
                "actions": spaces.MultiDiscrete(np.tile(self.nvec, (self.n, 1))),
            }
        )

    def reset(
        self, *, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
        self._actions.clear()
        return super().reset(seed=seed, options=options)

    def step(
        self, action: np.ndarray
    ) -> tuple[dict[str, np.ndarray], SupportsFloat, bool, bool, dict[str, Any]]:
        self._actions.append(np.asarray(action, dtype=np.int64).ravel())
        return super().step(action)

    def observation(self, observation: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        past = np.zeros((self.n, len(self.nvec)), np.int64)
        if self._actions:
            past[self.n - len(self._actions) :] = np.stack(self._actions)
        return {**observation, "actions": past}
