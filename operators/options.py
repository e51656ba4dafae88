"""Checks of a stage's options, with errors that name the config key, the value and what is allowed.

Stage policies (``VisionPolicy``, ``WindowPolicy``...) are also the config's
sections (:mod:`flows.config`), so these checks run once, when the config is
loaded, and again when a test builds a policy by hand.
"""

from __future__ import annotations

from enum import Enum
from typing import Any, TypeVar

from operators.errors import ConfigError

__all__ = ["at_least", "check_int", "choice", "greater_than"]

E = TypeVar("E", bound=Enum)


def choice(enum: type[E], value: object, key: str) -> E:
    """Turn a config string into a member of ``enum``, naming ``key`` and the valid values.

    >>> from operators.reading import Scene
    >>> choice(Scene, "menu", "dedup.routes").name
    'MENU'
    """
    if isinstance(value, enum):
        return value
    try:
        return enum(value)
    except ValueError:
        valid = ", ".join(repr(m.value) for m in enum)
        msg = f"{key} = {value!r} is not valid; expected one of {valid}"
        raise ConfigError(msg) from None


def at_least(key: str, value: Any, minimum: float) -> None:
    """Raise :class:`ConfigError` unless ``value >= minimum``."""
    if isinstance(value, bool) or not isinstance(value, int | float) or not value >= minimum:
        msg = f"{key} = {value!r} is not allowed; expected a number >= {minimum:g}"
        raise ConfigError(msg)


def greater_than(key: str, value: Any, bound: float) -> None:
    """Raise :class:`ConfigError` unless ``value > bound``."""
    if isinstance(value, bool) or not isinstance(value, int | float) or not value > bound:
        msg = f"{key} = {value!r} is not allowed; expected a number > {bound:g}"
        raise ConfigError(msg)


def check_int(key: str, value: Any, minimum: int) -> None:
    """Raise :class:`ConfigError` unless ``value`` is an integer ``>= minimum``."""
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        msg = f"{key} = {value!r} is not allowed; expected an integer >= {minimum}"
        raise ConfigError(msg)
