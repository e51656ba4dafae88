"""The one resolver of ``"module:attr"`` strings, the way Gymnasium resolves ``entry_point``.

Configs name stages, encoder networks and reward functions this way; a
config is code, trust it as such (``"os:system"`` would resolve too).
"""

from __future__ import annotations

import importlib
from typing import Any

from operators.errors import ConfigError

__all__ = ["resolve_attr"]


def resolve_attr(spec: str, key: str) -> Any:
    """Import ``"package.module:attr.sub"`` and return the attribute; errors name ``key``.

    >>> resolve_attr("math:pi", "demo") > 3
    True
    """
    mod_name, sep, attr = spec.partition(":")
    if not sep or not mod_name or not attr:
        msg = f"{key} = {spec!r}: expected 'module:attr'"
        raise ConfigError(msg)
    try:
        obj: Any = importlib.import_module(mod_name)
        for part in attr.split("."):
            obj = getattr(obj, part)
    except (ImportError, AttributeError) as ex:
        msg = f"{key} = {spec!r} cannot be imported: {ex}"
        raise ConfigError(msg) from ex
    return obj
