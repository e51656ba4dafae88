"""Stage registry: a config names a stage by registry name or ``"module:attr"``.

Resolved like Gymnasium's ``EnvSpec.entry_point``, by the project's one
resolver (:func:`operators.resolve.resolve_attr`). Options are checked
against the factory's signature when the flow is built, so a wrong key fails
then, naming the key and what the stage accepts. A config is code: a
``"module:attr"`` may name any callable, so load only configs you trust.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Mapping
from typing import Any

from operators.errors import ConfigError, FramewaxError
from operators.resolve import resolve_attr

__all__ = ["REGISTRY", "build", "resolve"]

REGISTRY: dict[str, dict[str, str]] = {
    "capture.source": {
        "arena": "operators.capture.arena:ArenaSource",
        "doom": "operators.capture.doom:DoomSource",
        "replay": "operators.capture.replay:ReplaySource",
        "screen": "operators.capture.screen:ScreenSource",
    },
    "dedup.detector": {
        "regions": "operators.dedup.detectors:RegionDetector",
        "thumbnail": "operators.dedup.detectors:ThumbnailDetector",
    },
    "vision.backend": {
        "local": "operators.vision.local:LocalVisionBackend",
        "ollama": "operators.vision.http.backends:OllamaBackend",
        "openai": "operators.vision.http.backends:OpenAIBackend",
    },
    "batch.encoder": {
        "torch": "operators.batch.encoder:Encoder",
    },
    "actions.executor": {
        "none": "operators.actions.executor:ObserveOnly",
        "xtest": "operators.actions.xinput:XTestDevice",
    },
    "env.reward": {
        "default": "flows.rl.rewards:default_reward",
        "game": "flows.rl.rewards:game_reward",
    },
}


def resolve(key: str, name: str) -> Callable[..., Any]:
    """The factory that ``name`` (a registry name under ``key`` or ``"module:attr"``) stands for."""
    if ":" not in name:
        choices = REGISTRY.get(key, {})
        if name not in choices:
            valid = ", ".join(repr(c) for c in choices)
            msg = f"{key} = {name!r} is not a known stage; expected one of {valid} or 'module:attr'"
            raise ConfigError(msg)
        name = choices[name]
    obj = resolve_attr(name, key)
    if not callable(obj):
        msg = f"{key} = {name!r} is not callable"
        raise ConfigError(msg)
    return obj


def _parameters(factory: Callable[..., Any]) -> tuple[dict[str, inspect.Parameter], bool]:
    """A factory's keyword parameters; a class whose ``__init__`` passes ``**kwargs`` on
    to its base gets the base's too. The flag says whether anything is accepted."""
    try:
        params = dict(inspect.signature(factory).parameters)
    except (TypeError, ValueError):
        return {}, True
    var_kw = [n for n, p in params.items() if p.kind is inspect.Parameter.VAR_KEYWORD]
    if not var_kw or not inspect.isclass(factory):
        return params, bool(var_kw)
    for base in factory.__mro__[1:]:
        init = base.__dict__.get("__init__")
        if init is None:
            continue
        if base is object:
            return params, True
        for n, p in inspect.signature(init).parameters.items():
            if n != "self" and p.kind is not inspect.Parameter.VAR_KEYWORD:
                params.setdefault(n, p)
        if not any(
            p.kind is inspect.Parameter.VAR_KEYWORD
            for p in inspect.signature(init).parameters.values()
        ):
            for n in var_kw:
                params.pop(n, None)
            return params, False
    return params, True


def build(key: str, name: str, options: Mapping[str, Any], **runtime: Any) -> Any:
    """Resolve ``name`` and call it with ``runtime`` objects plus the user's ``options``.

    Runtime objects the factory does not accept are left out; an option the
    factory does not accept is a :class:`ConfigError` naming it.
    """
    factory = resolve(key, name)
    params, takes_any = _parameters(factory)
    accepted = [n for n, p in params.items() if p.kind is not inspect.Parameter.VAR_POSITIONAL]
    kwargs = {k: v for k, v in runtime.items() if takes_any or k in params}
    for opt in options:
        if opt in runtime:
            msg = f"{key}.options.{opt} is set by framewax itself and cannot be configured"
            raise ConfigError(msg)
        if not takes_any and opt not in params:
            valid = ", ".join(a for a in accepted if a not in runtime)
            msg = f"{key}.options.{opt} is not an option of {name!r}; expected one of: {valid}"
            raise ConfigError(msg)
    kwargs.update(options)
    try:
        return factory(**kwargs)
    except (TypeError, ValueError, FramewaxError) as ex:
        msg = f"{key} = {name!r} rejected its options {dict(options)!r}: {ex}"
        raise ConfigError(msg) from ex
