"""Stable-Baselines3's ``VecEnv`` over one framewax pipeline (``pip install "framewax[rl]"``).

    from flows.rl.sb3 import SB3VecEnv
    from stable_baselines3 import PPO

    venv = SB3VecEnv(num_envs=4)                  # one dataflow, four arena streams
    PPO("MultiInputPolicy", venv, n_steps=128).learn(10_000)
    venv.close()

It adapts :class:`~flows.rl.vec_env.VisionPipelineVecEnv` to SB3's conventions:
``step_async`` applies every sub-env's action, ``step_wait`` waits once and
observes; a sub-env whose episode ended is reset in the same step, its last
observation in ``info["terminal_observation"]`` and
``info["TimeLimit.truncated"]`` set as SB3 expects.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np
import torch
from gymnasium import spaces
from stable_baselines3.common.torch_layers import BaseFeaturesExtractor, NatureCNN
from stable_baselines3.common.vec_env import VecEnv
from stable_baselines3.common.vec_env.base_vec_env import VecEnvIndices, VecEnvStepReturn

from flows.rl.env import ObsDict
from flows.rl.spaces import NUMERICAL_SCALE
from flows.rl.vec_env import VisionPipelineVecEnv

__all__ = ["FramewaxExtractor", "SB3ProcessVecEnv", "SB3VecEnv", "load_policy"]


class FramewaxExtractor(BaseFeaturesExtractor):
    """SB3's features extractor for the env's ``Dict`` observation:
    ``policy_kwargs={"features_extractor_class": FramewaxExtractor}``.

    A Nature-CNN over the 84×84 picture, and a small MLP over the HUD numbers (scaled
    by :data:`~flows.rl.spaces.NUMERICAL_SCALE`, so a health of 100 does not swamp the
    network) and the one-hot categories. SB3's own ``CombinedExtractor`` feeds the raw
    numbers in. A policy saved with it loads wherever framewax is installed.
    """

    def __init__(
        self, observation_space: spaces.Dict, cnn_dim: int = 256, hud_dim: int = 64
    ) -> None:
        super().__init__(observation_space, features_dim=cnn_dim + hud_dim)
        self.cnn = NatureCNN(observation_space["visual"], features_dim=cnn_dim)
        n_num = int(observation_space["numerical"].shape[0])
        n_cat = int(np.sum(observation_space["categorical"].nvec))
        self.hud = torch.nn.Sequential(torch.nn.Linear(n_num + n_cat, hud_dim), torch.nn.ReLU())
        self.register_buffer("scale", torch.tensor(NUMERICAL_SCALE, dtype=torch.float32))

    def forward(self, obs: dict[str, torch.Tensor]) -> torch.Tensor:
        # SB3 has made the picture channels-first in 0..1 and the categories one-hot.
        numbers = torch.clamp(obs["numerical"] / self.scale, -5.0, 5.0)
        hud = self.hud(torch.cat([numbers, obs["categorical"].float()], dim=1))
        return torch.cat([self.cnn(obs["visual"]), hud], dim=1)


def load_policy(path: str | os.PathLike[str], device: str = "cpu") -> Any:
    """A policy saved by ``python -m flows.train_ppo`` (SB3's ``policy.save``): call
    ``policy.predict(obs, deterministic=True)`` with the env's observation (one, or a
    batch stacked per key), as with a PPO model; an ``.zip`` of a whole PPO model loads
    too (``PPO.load``)."""
    from stable_baselines3 import PPO
    from stable_baselines3.common.policies import MultiInputActorCriticPolicy

    if str(path).endswith(".zip"):
        return PPO.load(path, device=device)
    return MultiInputActorCriticPolicy.load(str(path), device=device)


class SB3ProcessVecEnv(VecEnv):
    """SB3 ``VecEnv`` over a :class:`~flows.rl.process_vec_env.ProcessVecEnv`: the games
    spread over worker processes, a dataflow each (same-step reset, as SB3 expects).
    The sub-envs live in other processes: ``get_attr``, ``set_attr`` and ``env_method``
    are not available (``render_mode`` is ``None``)."""

    def __init__(self, venv: Any) -> None:
        self.venv = venv
        self._actions: np.ndarray | None = None
        super().__init__(venv.num_envs, venv.single_observation_space, venv.single_action_space)

    def reset(self) -> dict[str, np.ndarray]:
        obs, _infos = self.venv.reset(seed=list(self._seeds))
        self.reset_infos = [{} for _ in range(self.num_envs)]
        self._reset_seeds()
        self._reset_options()
        return obs

    def step_async(self, actions: np.ndarray) -> None:
        self._actions = np.asarray(actions)

    def step_wait(self) -> VecEnvStepReturn:
        if self._actions is None:
            msg = "step_wait() without step_async()"
            raise RuntimeError(msg)
        actions, self._actions = self._actions, None
        return self.venv.step_sb3(actions)

    def close(self) -> None:
        self.venv.close()

    def get_images(self) -> Sequence[np.ndarray | None]:
        return [None] * self.num_envs

    def get_attr(self, attr_name: str, indices: VecEnvIndices = None) -> list[Any]:
        if attr_name == "render_mode":
            return [None] * self.num_envs
        msg = f"get_attr({attr_name!r}): the sub-envs run in other processes"
        raise AttributeError(msg)

    def set_attr(self, attr_name: str, value: Any, indices: VecEnvIndices = None) -> None:
        msg = f"set_attr({attr_name!r}): the sub-envs run in other processes"
        raise AttributeError(msg)

    def env_method(
        self,
        method_name: str,
        *method_args: Any,
        indices: VecEnvIndices = None,
        **method_kwargs: Any,
    ) -> list[Any]:
        msg = f"env_method({method_name!r}): the sub-envs run in other processes"
        raise AttributeError(msg)

    def env_is_wrapped(self, wrapper_class: type, indices: VecEnvIndices = None) -> list[bool]:
        return [False] * self.num_envs


class SB3VecEnv(VecEnv):
    """SB3 ``VecEnv``: N sub-envs over one pipeline.

    Give it a :class:`~flows.rl.vec_env.VisionPipelineVecEnv` (``venv``), or its arguments
    (``num_envs``, ``config``, ``overrides``, ...) to make one.
    """

    def __init__(self, venv: VisionPipelineVecEnv | None = None, **kwargs: Any) -> None:
        if venv is not None and kwargs:
            msg = "give either a VisionPipelineVecEnv or the arguments to make one, not both"
            raise ValueError(msg)
        self.venv = venv if venv is not None else VisionPipelineVecEnv(**kwargs)
        self.envs = self.venv.envs
        self._actions: Sequence[Any] | None = None
        super().__init__(
            self.venv.num_envs, self.venv.single_observation_space, self.venv.single_action_space
        )

    def reset(self) -> dict[str, np.ndarray]:
        observations = []
        for i, env in enumerate(self.envs):
            options = self._options[i] or None
            obs, self.reset_infos[i] = env.reset(seed=self._seeds[i], options=options)
            observations.append(obs)
        self._reset_seeds()
        self._reset_options()
        return _stack(observations)

    def step_async(self, actions: np.ndarray) -> None:
        self._actions = list(actions)

    def step_wait(self) -> VecEnvStepReturn:
        if self._actions is None:
            msg = "step_wait() without step_async()"
            raise RuntimeError(msg)
        actions, self._actions = self._actions, None
        results = self.venv.step_envs(actions)
        observations: list[ObsDict] = []
        rewards = np.zeros(self.num_envs, dtype=np.float32)
        dones = np.zeros(self.num_envs, dtype=np.bool_)
        infos: list[dict[str, Any]] = []
        for i, result in enumerate(results):
            assert result is not None
            obs, reward, terminated, truncated, info = result
            rewards[i], dones[i] = float(reward), terminated or truncated
            info["TimeLimit.truncated"] = truncated and not terminated
            if dones[i]:
                info["terminal_observation"] = obs
                obs, self.reset_infos[i] = self.envs[i].reset()
            observations.append(obs)
            infos.append(info)
        return _stack(observations), rewards, dones, infos

    def close(self) -> None:
        self.venv.close()

    def get_images(self) -> Sequence[np.ndarray | None]:
        return [env.render() for env in self.envs]

    def get_attr(self, attr_name: str, indices: VecEnvIndices = None) -> list[Any]:
        return [getattr(self.envs[i], attr_name) for i in self._indices(indices)]

    def set_attr(self, attr_name: str, value: Any, indices: VecEnvIndices = None) -> None:
        for i in self._indices(indices):
            setattr(self.envs[i], attr_name, value)

    def env_method(
        self,
        method_name: str,
        *method_args: Any,
        indices: VecEnvIndices = None,
        **method_kwargs: Any,
    ) -> list[Any]:
        return [
            getattr(self.envs[i], method_name)(*method_args, **method_kwargs)
            for i in self._indices(indices)
        ]

    def env_is_wrapped(self, wrapper_class: type, indices: VecEnvIndices = None) -> list[bool]:
        return [isinstance(self.envs[i], wrapper_class) for i in self._indices(indices)]

    def _indices(self, indices: VecEnvIndices) -> Iterable[int]:
        if indices is None:
            return range(self.num_envs)
        if isinstance(indices, int):
            return [indices]
        return indices


def _stack(observations: list[ObsDict]) -> dict[str, np.ndarray]:
    return {k: np.stack([o[k] for o in observations]) for k in observations[0]}
