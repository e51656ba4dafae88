"""Configuration: frozen dataclasses loaded from TOML, validated when the flow is built.

``load_config(None)`` gives the built-in default (``flows/configs/default.toml``);
``load_config("path.toml")`` reads another; ``FRAMEWAX_CONFIG`` names the file
``python -m bytewax.run flows.vision`` uses. Every table and key is checked:
an unknown one fails with its name and the keys that are valid there.

The ``[vision]``, ``[batch]`` and ``[order]`` sections *are* the stages'
policies (``VisionConfig`` is a ``VisionPolicy`` plus the backend's name and
options), so their defaults and range checks live in one place, the stage's
module, and the config passes straight to the stage.
"""

from __future__ import annotations

import dataclasses
import os
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import Enum
from pathlib import Path
from typing import Any, get_type_hints

from operators.batch.window import WindowPolicy
from operators.errors import ConfigError
from operators.hud import hud_ranges, hud_regions
from operators.options import choice
from operators.order.resequence import OrderPolicy
from operators.reading import HUD_FIELDS
from operators.vision.queue import VisionPolicy

__all__ = [
    "ActionsConfig",
    "BatchConfig",
    "CaptureConfig",
    "DedupConfig",
    "EnvConfig",
    "FlowConfig",
    "HudConfig",
    "OrderConfig",
    "RunConfig",
    "SinkConfig",
    "Timing",
    "VisionConfig",
    "load_config",
]

CONFIG_DIR = Path(__file__).parent / "configs"
DEFAULT_CONFIG = CONFIG_DIR / "default.toml"


@dataclass(frozen=True)
class CaptureConfig:
    source: str = "arena"
    """Registry name (``arena``, ``replay``) or ``"module:attr"`` of the source."""
    options: dict[str, Any] = field(default_factory=dict)
    """Keyword arguments of the source (arena: ``frames``, ``fps``, ``seed``, ``streams``, ``width``...)."""


@dataclass(frozen=True)
class HudConfig:
    """``[hud]``: where the game draws its numbers; one key, read by dedup (the regions it
    watches digit by digit) and by the local model (the regions it reads)."""

    regions: Any = "arena"
    """A preset (``"arena"``, ``"cs2"``, ``"doom"``) or a table ``{field = [x0, y0, x1, y1]}``
    in relative coordinates, as ``python -m flows.calibrate`` writes it. The local model
    reads the fields it knows (``health``, ``armor``, ``ammo``, ``money``); dedup watches all."""
    ranges: Any = ""
    """What each field can show, for the local model's plausibility check: a preset
    (``"arena"``, ``"cs2"``, ``"doom"``), a table ``{field = [lo, hi]}``, or ``""`` (the
    preset the regions name; CS2's for a table)."""


# Keys that [hud] replaced: refused with a message naming the new key.
_MOVED_KEYS = {
    ("dedup", "options", "regions"): "[hud] regions",
    ("vision", "options", "hud_regions"): "[hud] regions",
    ("vision", "options", "ranges"): "[hud] ranges",
}


@dataclass(frozen=True)
class DedupConfig:
    enabled: bool = True
    """Skip frames that look the same as the last kept frame (``duplicate(of)``)."""
    detector: str = "regions"
    """Registry name (``regions``: HUD regions + perceptual hash; ``thumbnail``) or ``"module:attr"``."""
    options: dict[str, Any] = field(default_factory=dict)
    """Keyword arguments of the detector (regions: ``pixel_threshold``, ``min_pixels``,
    ``hash_size``, ``margin``, ``hamming``; its HUD regions are ``[hud] regions``;
    thumbnail: ``threshold``)."""
    cache_size: int = 0
    """Scenes remembered by perceptual hash (0: off); a frame matching one is ``cached(of)``."""
    cache_scenes: list[str] = field(default_factory=lambda: ["menu", "loading", "death"])
    """Scenes (as the detector classifies them) whose results may be cached."""
    routes: dict[str, str] = field(default_factory=dict)
    """Per scene (``gameplay``, ``menu``, ``loading``, ``death``): ``model`` (default),
    ``classify`` (no model call; the classifier's reading) or ``drop``."""


@dataclass(frozen=True)
class VisionConfig(VisionPolicy):
    """``[vision]``: the backend, plus the scheduling keys of :class:`~operators.vision.VisionPolicy`."""

    backend: str = "local"
    """Registry name (``local``, ``ollama``, ``openai``) or ``"module:attr"`` of the vision backend."""
    options: dict[str, Any] = field(default_factory=dict)
    """Keyword arguments of the backend."""


@dataclass(frozen=True)
class BatchConfig(WindowPolicy):
    """``[batch]``: the encoder, plus the window keys of :class:`~operators.batch.window.WindowPolicy`."""

    encoder: str = "torch"
    """Registry name or ``"module:attr"`` of the encoder."""
    options: dict[str, Any] = field(default_factory=dict)
    """Keyword arguments of the encoder (``device``, ``network``, ``weights``, ``seed``...)."""


@dataclass(frozen=True)
class OrderConfig(OrderPolicy):
    """``[order]``: the keys of :class:`~operators.order.OrderPolicy`."""


@dataclass(frozen=True)
class SinkConfig:
    history: int = 256
    """Observations kept per stream in the memory sink's ordered history."""


@dataclass(frozen=True)
class ActionsConfig:
    """``[actions]``: how the env's actions reach the game (see :mod:`operators.actions`)."""

    executor: str = "none"
    """``none`` (observe only), ``xtest`` (X11 keyboard and mouse) or ``"module:attr"`` of an
    input device (``press``/``release``/``move``...) or of a whole executor (``act``...)."""
    options: dict[str, Any] = field(default_factory=dict)
    """Keyword arguments of the device (xtest: ``display``, ``window`` = a title: act only
    while that window has the focus)."""
    keys: dict[str, str] = field(default_factory=dict)
    """Key or button per move and command, over Counter-Strike 2's defaults
    (``forward = "w"``, ``fire = "Button1"``, ``walk = "Shift_L"``...)."""
    kinds: dict[str, str] = field(default_factory=dict)
    """``hold``, ``tap`` or ``click`` per command, over the defaults."""
    turn_px: list[int] = field(default_factory=lambda: [0, -40, 40, -160, 160])
    """Mouse pixels for turn 0..4."""
    pitch_px: int = 30
    """Mouse pixels per pitch level changed."""
    max_hz: float = 0.0
    """At most this many inputs a second (0: the env's ``control_hz``, if any)."""
    repeat_held: bool = False
    """Each action lets go of the keys it keeps down and presses them again at once (the
    game reads both between two frames: the key stays down): a game that drops its key
    state on a level load or a new episode (Doom does) sees a held key again at the next
    action, instead of never. Off by default: a game that acts on a key's release (a
    charged shot) would act on it."""


class Timing(str, Enum):
    """How a real-time game's env steps are timed (``[env] timing``)."""

    FREE = "free"
    PERIOD = "period"


@dataclass(frozen=True)
class EnvConfig:
    max_wait_ms: float = 0.0
    """``step()`` waits up to this long for an observation captured after its action (0: never waits)."""
    max_episode_steps: int = 1000
    """Episodes are truncated after this many steps."""
    control_hz: float = 0.0
    """A fixed control rate (0: none). ``step()`` sends the action, then returns at the end
    of its time step with the freshest observation; when the agent is late, the schedule
    restarts from now (elastic, as rtgym does) and ``info["overrun"]`` says so."""
    timing: Timing = Timing.FREE
    """How a real-time game's steps are timed (a lockstep source's game waits instead):

    - ``"free"``: the action's input goes to the game at once and stays (a key held
      until an action lets it go); ``step()`` returns the freshest observation, after
      ``max_wait_ms`` for one captured after the input and, with ``control_hz``, at
      the end of its time step. For agents trained live, acting as fast as they can.
    - ``"period"``: rtgym's fixed control period, ``1 / control_hz``. The action is
      applied at the period's start (the ``step()`` call), its keys are held for
      exactly the period and released at its end, and the observation is the
      freshest frame at the end (waiting up to ``max_wait_ms`` past it for a frame
      captured after the release). The agent thinks between periods with no key
      held; a thinking time over a period is an overrun (``info["late_ms"]``,
      ``info["overrun"]``, the run summary). For a policy trained in lockstep with a
      frame skip: ``control_hz`` = the game's tic rate / the frame skip (Doom: 35 / 4).
    """
    start_timeout_s: float = 60.0
    """``reset()`` fails if no observation arrives within this long."""
    lockstep_timeout_s: float = 30.0
    """With a lockstep source, ``step()`` waits up to this long for the frame after its
    action to end (an observation, or its ledger record); the game waits meanwhile.
    ``max_wait_ms`` and ``control_hz`` are for real-time sources."""
    reward: str = "default"
    """Registry name or ``"module:attr"`` of ``reward(prev_obs, obs) -> (reward, terminated)``."""


class KeyPlacement(str, Enum):
    """Where a stream's steps run: ``local`` (on the worker that captures it: no frame
    crosses processes) or ``hash`` (Bytewax's hash of the stream's name; for comparison)."""

    LOCAL = "local"
    HASH = "hash"


@dataclass(frozen=True)
class RunConfig:
    status_interval_s: float = 1.0
    """Seconds between live status lines on stderr (0 turns them off)."""
    summary: bool = True
    """Print the summary (ledger, throughput, latency, HUD accuracy) when the flow ends."""
    metrics: str = ""
    """Serve Prometheus metrics at this ``host:port`` while the run lasts (``""``: off;
    ``":9464"`` is loopback; ``FRAMEWAX_METRICS`` overrides it)."""
    placement: KeyPlacement = KeyPlacement.LOCAL
    """``local``: each stream's steps run on the worker that captures it (frames never cross
    processes); ``hash``: Bytewax's own placement by the stream's name (frames may cross)."""
    shutdown_ms: float = 2000.0
    """On SIGINT / SIGTERM (or ``Pipeline.stop()``, the env's ``close()``): how long work in
    flight may still finish; what is left then is ``failed(timeout)`` / ``dropped(shutdown)``."""


@dataclass(frozen=True)
class FlowConfig:
    capture: CaptureConfig = field(default_factory=CaptureConfig)
    hud: HudConfig = field(default_factory=HudConfig)
    dedup: DedupConfig = field(default_factory=DedupConfig)
    vision: VisionConfig = field(default_factory=VisionConfig)
    batch: BatchConfig = field(default_factory=BatchConfig)
    order: OrderConfig = field(default_factory=OrderConfig)
    sink: SinkConfig = field(default_factory=SinkConfig)
    env: EnvConfig = field(default_factory=EnvConfig)
    actions: ActionsConfig = field(default_factory=ActionsConfig)
    run: RunConfig = field(default_factory=RunConfig)
    path: str = ""
    """The file this config came from (not a TOML key)."""


def _section(cls: type, data: Mapping[str, Any], where: str) -> Any:
    hints = get_type_hints(cls)
    names = [f.name for f in dataclasses.fields(cls) if f.name != "path"]
    kwargs: dict[str, Any] = {}
    for key, value in data.items():
        full = f"{where}.{key}" if where else key
        if key not in names:
            msg = f"unknown config key {full!r}; valid keys in [{where or 'top level'}]: {', '.join(names)}"
            raise ConfigError(msg)
        typ = hints[key]
        if dataclasses.is_dataclass(typ):
            if not isinstance(value, Mapping):
                msg = f"config key {full!r} must be a table"
                raise ConfigError(msg)
            kwargs[key] = _section(typ, value, full)  # type: ignore[arg-type]
        elif isinstance(typ, type) and issubclass(typ, Enum):
            kwargs[key] = choice(typ, value, full)
        else:
            kwargs[key] = _check_type(full, typ, value)
    return cls(**kwargs)


def _check_type(key: str, typ: Any, value: Any) -> Any:
    origin = getattr(typ, "__origin__", typ)
    if origin is list:
        (item,) = getattr(typ, "__args__", (str,))
        ok = isinstance(value, list) and all(
            isinstance(v, item) and not isinstance(v, bool) for v in value
        )
        if not ok:
            msg = f"config key {key!r} must be a list of {item.__name__}s; got {value!r}"
            raise ConfigError(msg)
        return list(value)
    if origin is dict:
        if not isinstance(value, Mapping):
            msg = f"config key {key!r} must be a table; got {value!r}"
            raise ConfigError(msg)
        return dict(value)
    if typ is bool:
        if not isinstance(value, bool):
            msg = f"config key {key!r} must be true or false; got {value!r}"
            raise ConfigError(msg)
        return value
    if typ is int:
        if isinstance(value, bool) or not isinstance(value, int):
            msg = f"config key {key!r} must be an integer; got {value!r}"
            raise ConfigError(msg)
        if value < 0:
            msg = f"config key {key!r} must be >= 0; got {value!r}"
            raise ConfigError(msg)
        return value
    if typ is float:
        if isinstance(value, bool) or not isinstance(value, int | float):
            msg = f"config key {key!r} must be a number; got {value!r}"
            raise ConfigError(msg)
        if value < 0:
            msg = f"config key {key!r} must be >= 0; got {value!r}"
            raise ConfigError(msg)
        return float(value)
    if typ is str and not isinstance(value, str):
        msg = f"config key {key!r} must be a string; got {value!r}"
        raise ConfigError(msg)
    return value


# The key that names a table's stage; its `options` belong to that stage.
_STAGE_KEYS = ("source", "detector", "backend", "encoder", "executor")


_WHOLE_TABLES = ("regions",)
"""Tables an override replaces whole: ``[hud] regions`` is one screen's set of regions
(a calibration's file), never mixed with another's (a preset's ARMOR region left
over a full-screen HUD that has none there would read the picture)."""


def _merge(base: dict[str, Any], over: Mapping[str, Any]) -> dict[str, Any]:
    """``over`` merged into ``base``, table by table (``[hud] regions`` replaced whole).
    An override that names another stage (``source``, ``detector``, ``backend``,
    ``encoder``, ``executor``) starts its ``options`` afresh: the base's options were for
    the stage it replaces (``executor`` too).

    >>> _merge({"hud": {"regions": {"a": 1, "b": 2}, "ranges": "doom"}}, {"hud": {"regions": {"a": 3}}})
    {'hud': {'regions': {'a': 3}, 'ranges': 'doom'}}
    """
    out = dict(base)
    for key in _STAGE_KEYS:
        if key in over and over[key] != base.get(key):
            out.pop("options", None)
    for k, v in over.items():
        merge = isinstance(v, Mapping) and isinstance(out.get(k), dict) and k not in _WHOLE_TABLES
        out[k] = _merge(out[k], v) if merge else v
    return out


def _read_toml(file: Path, seen: tuple[Path, ...] = ()) -> dict[str, Any]:
    r"""A config file with its ``include``\ s laid over it."""
    if file.resolve() in seen:
        msg = f"config file {str(file)!r} includes itself (through {[str(p) for p in seen]})"
        raise ConfigError(msg)
    try:
        data = tomllib.loads(file.read_text(encoding="utf-8"))
    except OSError as ex:
        msg = f"config file {str(file)!r} cannot be read: {ex}"
        raise ConfigError(msg) from ex
    except tomllib.TOMLDecodeError as ex:
        msg = f"config file {str(file)!r} is not valid TOML: {ex}"
        raise ConfigError(msg) from ex
    include = data.pop("include", [])
    if isinstance(include, str):
        include = [include]
    if not isinstance(include, list) or not all(isinstance(i, str) for i in include):
        msg = f"{file}: include must be a file name or a list of them; got {include!r}"
        raise ConfigError(msg)
    for name in include:
        other = (file.parent / name) if not Path(name).is_absolute() else Path(name)
        if not other.is_file():
            msg = f"{file}: include {name!r}: no such file ({other})"
            raise ConfigError(msg)
        data = _merge(data, _read_toml(other, (*seen, file.resolve())))
    return data


def load_config(
    source: str | os.PathLike[str] | FlowConfig | Mapping[str, Any] | None = None,
    overrides: Mapping[str, Any] | None = None,
) -> FlowConfig:
    """Load a config: ``None`` (the default), a TOML path, a mapping, or a ``FlowConfig``.

    ``overrides`` is a nested mapping merged over the file's tables, e.g.
    ``{"capture": {"options": {"frames": 50}}}``. A file may name others to lay over
    it, ``include = ["regions.toml"]`` (paths relative to it; later ones win), e.g.
    the regions ``python -m flows.calibrate`` wrote.
    """
    if isinstance(source, FlowConfig) and not overrides:
        return source
    path = ""
    if isinstance(source, FlowConfig):
        data = dataclasses.asdict(source)
        path = data.pop("path")
    elif isinstance(source, Mapping):
        data = dict(source)
    else:
        file = DEFAULT_CONFIG if source is None else Path(source)
        if not file.is_file():
            msg = f"config file {str(file)!r} does not exist (presets are in {CONFIG_DIR})"
            raise ConfigError(msg)
        data = _read_toml(file)
        path = str(file)
    _refuse_moved_keys(data, path)
    if overrides:
        _refuse_moved_keys(overrides, "overrides")
        data = _merge(data, overrides)
    cfg = _section(FlowConfig, data, "")
    _check_hud(cfg.hud)
    return dataclasses.replace(cfg, path=path)


def _refuse_moved_keys(data: Mapping[str, Any], path: str) -> None:
    for keys, new in _MOVED_KEYS.items():
        node: Any = data
        for k in keys:
            node = node.get(k) if isinstance(node, Mapping) else None
        if node is not None:
            where = f" (in {path})" if path else ""
            msg = (
                f"config key {'.'.join(keys)!r}{where} is now {new}: HUD regions and ranges are "
                f"set once, for dedup and the local model alike; move it there"
            )
            raise ConfigError(msg)


def _check_hud(hud: HudConfig) -> None:
    try:
        hud_regions(hud.regions, "hud.regions")
        if hud.ranges != "":
            hud_ranges(hud.ranges, "hud.ranges", HUD_FIELDS)
    except ValueError as ex:
        raise ConfigError(str(ex)) from ex
