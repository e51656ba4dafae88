"""framewax sinks: the in-memory observation store (:mod:`sinks.memory`) and the recorder.

Importing this package registers ``framewax/VisionPipeline-v0`` with
Gymnasium by a string entry point (``flows.env:VisionPipelineEnv``), so
neither this package nor the dataflow that imports it loads the env's code.
Gymnasium itself is not imported here either: the env is registered when
Gymnasium is already loaded (the usual ``import gymnasium as gym; import
sinks``), or by calling :func:`register_env` (``import flows.env`` does)::

    import gymnasium as gym
    import sinks  # noqa: F401
    env = gym.make("framewax/VisionPipeline-v0", config="flows/configs/default.toml")
    envs = gym.make_vec("framewax/VisionPipeline-v0", num_envs=4)  # one pipeline, 4 streams
"""

from __future__ import annotations

import sys

ENV_ID = "framewax/VisionPipeline-v0"
ENV_ENTRY_POINT = "flows.env:VisionPipelineEnv"
VECTOR_ENTRY_POINT = "flows.vec_env:VisionPipelineVecEnv"

__all__ = ["ENV_ENTRY_POINT", "ENV_ID", "VECTOR_ENTRY_POINT", "register_env"]


def register_env() -> None:
    """Register ``framewax/VisionPipeline-v0`` with Gymnasium (once; imports Gymnasium)."""
    import gymnasium as gym

    if ENV_ID not in gym.registry:
        gym.register(
            id=ENV_ID,
            entry_point=ENV_ENTRY_POINT,
            # make_vec(..., num_envs=N): one pipeline with N streams, not N pipelines
            vector_entry_point=VECTOR_ENTRY_POINT,
            # A live pipeline: observations depend on timing, not only on seed and actions.
            nondeterministic=True,
        )


if "gymnasium" in sys.modules:
    register_env()
