"""framewax sinks: the in-memory observation store and the Gymnasium env.

Importing this package registers ``framewax/VisionPipeline-v0``::

    import gymnasium as gym
    import sinks  # noqa: F401
    env = gym.make("framewax/VisionPipeline-v0", config="flows/configs/default.toml")
"""

from __future__ import annotations

import gymnasium as gym

ENV_ID = "framewax/VisionPipeline-v0"

if ENV_ID not in gym.registry:
    gym.register(
        id=ENV_ID,
        entry_point="sinks.env:VisionPipelineEnv",
        # A live pipeline: observations depend on timing, not only on seed and actions.
        nondeterministic=True,
    )

__all__ = ["ENV_ID"]
