"""RL: the Gymnasium envs over the running pipeline. A new reward or wrapper goes here.

Importing this package registers ``framewax/VisionPipeline-v0`` with Gymnasium
(string entry points: the env's code loads on ``gym.make``)::

    import gymnasium as gym
    import flows.rl  # noqa: F401  (registers the env)

    env = gym.make("framewax/VisionPipeline-v0", config="flows/configs/default.toml")
    envs = gym.make_vec("framewax/VisionPipeline-v0", num_envs=4)  # one pipeline, 4 streams

``gym.make("flows.rl:framewax/VisionPipeline-v0")`` imports it for you.
:mod:`.session` is one stream of a running pipeline as an agent sees it (act,
wait, observe); :mod:`.env` and :mod:`.vec_env` are the single and vector
envs built on it (:mod:`.process_vec_env`: a vector env's games spread over worker
processes, a dataflow each, to use more than one core); :mod:`.spaces` the observation and action spaces;
:mod:`.rewards` the reward functions a config's ``[env] reward`` names;
:mod:`.wrappers` what real-time play adds (the last actions in the observation);
:mod:`.sb3` the Stable-Baselines3 adapter and the features extractor a learned
policy uses; :mod:`.policies` the baselines it is measured against (random, a
scripted aimbot). With a lockstep source (``[capture.options] lockstep``) the
game waits for the agent and every step observes the frame its action made.
"""

from __future__ import annotations

import gymnasium as gym

ENV_ID = "framewax/VisionPipeline-v0"
ENV_ENTRY_POINT = "flows.rl.env:VisionPipelineEnv"
VECTOR_ENTRY_POINT = "flows.rl.vec_env:VisionPipelineVecEnv"

__all__ = ["ENV_ENTRY_POINT", "ENV_ID", "VECTOR_ENTRY_POINT", "register_env"]


def register_env() -> None:
    """Register ``framewax/VisionPipeline-v0`` with Gymnasium (once)."""
    if ENV_ID not in gym.registry:
        gym.register(
            id=ENV_ID,
            entry_point=ENV_ENTRY_POINT,
            # make_vec(..., num_envs=N): one pipeline with N streams, not N pipelines
            vector_entry_point=VECTOR_ENTRY_POINT,
            # A live pipeline: observations depend on timing, not only on seed and actions.
            nondeterministic=True,
        )


register_env()
