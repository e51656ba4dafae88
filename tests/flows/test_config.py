import pytest

from flows.config import load_config
from flows.vision import build, build_flow
from operators.errors import ConfigError
from operators.vision.queue import ServeOrder


def test_default_config_loads_into_frozen_dataclasses():
    cfg = load_config()
    assert cfg.capture.source == "arena" and cfg.vision.order is ServeOrder.NEWEST
    assert cfg.path.endswith("default.toml")
    with pytest.raises(AttributeError):
        cfg.vision.max_in_flight = 3  # type: ignore[misc]


@pytest.mark.parametrize(
    ("overrides", "match"),
    [
        (
            {"vision": {"max_in_fligt": 3}},
            r"unknown config key 'vision.max_in_fligt'.*max_in_flight",
        ),
        ({"visoin": {}}, r"unknown config key 'visoin'.*capture, hud, dedup, vision"),
        ({"vision": {"order": "sideways"}}, r"vision.order = 'sideways'.*'newest', 'oldest'"),
        ({"vision": {"max_in_flight": "many"}}, r"'vision.max_in_flight' must be an integer"),
        (
            {"vision": {"backend": "gpt-9"}},
            r"vision.backend = 'gpt-9' is not a known stage.*'local'",
        ),
        ({"vision": {"backend": "nowhere.mod:Thing"}}, r"cannot be imported"),
        (
            {"capture": {"options": {"fsp": 10}}},
            r"capture.source.options.fsp is not an option.*fps",
        ),
        ({"capture": {"options": {"controls": 1}}}, r"set by framewax itself"),
        (
            {"capture": {"source": "replay", "options": {"paths": ["/nope"]}}},
            r"not a recorded stream",
        ),
        ({"batch": {"options": {"device": "tpu"}}}, r"device = 'tpu'.*'auto', 'cpu', 'cuda'"),
        ({"hud": {"regions": "quake"}}, r"hud.regions = 'quake'.*'arena', 'cs2'"),
        ({"hud": {"regions": {"health": [0.5, 0.1, 0.2, 0.3]}}}, r"hud.regions.health"),
        ({"hud": {"ranges": {"health": [0, -1]}}}, r"hud.ranges.health"),
        (
            {"dedup": {"options": {"regions": "cs2"}}},
            r"'dedup.options.regions' .*is now \[hud\] regions",
        ),
        (
            {"vision": {"options": {"hud_regions": "cs2"}}},
            r"'vision.options.hud_regions' .*is now \[hud\] regions",
        ),
        (
            {"vision": {"options": {"ranges": "cs2"}}},
            r"'vision.options.ranges' .*is now \[hud\] ranges",
        ),
        ({"dedup": {"routes": {"lobby": "drop"}}}, r"dedup.routes = 'lobby'.*'menu'"),
        ({"dedup": {"routes": {"menu": "skip"}}}, r"dedup.routes.menu = 'skip'.*'classify'"),
        ({"dedup": {"cache_scenes": "menu"}}, r"cache_scenes' must be a list"),
        ({"vision": {"max_in_flight": 0}}, r"vision.max_in_flight = 0 .*>= 1"),
        ({"vision": {"deadline_ms": 0}}, r"vision.deadline_ms = 0.0 .*> 0"),
        ({"batch": {"max_size": 0}}, r"batch.max_size = 0 .*>= 1"),
        ({"order": {"gap_deadline_ms": 0}}, r"order.gap_deadline_ms = 0.0 .*> 0"),
        ({"capture": {"options": {"fps": -1}}}, r"capture.options.fps = -1 .*>= 0"),
        ({"capture": {"options": {"frames": "many"}}}, r"capture.options.frames = 'many'"),
        ({"capture": {"options": {"frames": -5}}}, r"capture.options.frames = -5 .*>= 0"),
        ({"capture": {"options": {"fps": "fast"}}}, r"capture.options.fps = 'fast' .*a number"),
        ({"capture": {"options": {"streams": 0}}}, r"capture.options.streams = 0 .*>= 1"),
        ({"vision": {"max_pending": -1}}, r"'vision.max_pending' must be >= 0"),
        ({"vision": {"poll_ms": 0}}, r"vision.poll_ms = 0.0 .*> 0"),
        ({"run": {"shutdown_ms": -1}}, r"'run.shutdown_ms' must be >= 0"),
        ({"run": {"shutdown_ms": "soon"}}, r"'run.shutdown_ms' must be a number"),
        (
            {"capture": {"source": "replay", "options": {"paths": "x", "pace": "fast"}}},
            r"capture.options.paths = 'x': expected a list",
        ),
        (
            {"capture": {"source": "replay", "options": {"paths": ["x"], "speed": 0}}},
            r"capture.options.speed = 0 .*> 0",
        ),
        (
            {"capture": {"source": "replay", "options": {"paths": ["x"], "pase": "recorded"}}},
            r"options.pase is not an option",
        ),
    ],
)
def test_bad_config_fails_when_the_flow_is_built(overrides, match):
    with pytest.raises(ConfigError, match=match):
        build_flow(load_config(None, overrides))


@pytest.mark.parametrize(
    ("dedup_table", "match"),
    [
        ({"detector": "thumbnail", "options": {"threshold": -1}}, r"threshold must be >= 0"),
        ({"detector": "thumbnail", "routes": {"menu": "drop"}}, r"cannot classify scenes"),
    ],
)
def test_bad_dedup_table_fails_when_the_flow_is_built(dedup_table, match):
    # A mapping is the whole config (not merged over default.toml's [dedup.options]).
    with pytest.raises(ConfigError, match=match):
        build_flow(load_config({"dedup": dedup_table}))


def test_module_attr_stage_and_toml_file(tmp_path):
    path = tmp_path / "c.toml"
    path.write_text(
        '[vision]\nbackend = "operators.vision.local:LocalVisionBackend"\n[capture.options]\nframes = 3\n'
    )
    rt = build(str(path)).runtime
    vision = rt.stage("vision")
    assert type(vision.backend).__name__ == "LocalVisionBackend"
    assert rt.config.capture.options["frames"] == 3


def test_missing_or_invalid_file_is_a_clear_error(tmp_path):
    with pytest.raises(ConfigError, match="does not exist"):
        load_config(tmp_path / "nope.toml")
    bad = tmp_path / "bad.toml"
    bad.write_text("[vision\n")
    with pytest.raises(ConfigError, match="not valid TOML"):
        load_config(bad)


def test_config_sections_are_the_stage_policies_with_one_set_of_defaults():
    import dataclasses

    from flows.config import BatchConfig, OrderConfig, VisionConfig
    from operators.batch.window import WindowPolicy
    from operators.order.resequence import OrderPolicy
    from operators.vision.queue import VisionPolicy

    for cfg_cls, pol_cls in (
        (VisionConfig, VisionPolicy),
        (BatchConfig, WindowPolicy),
        (OrderConfig, OrderPolicy),
    ):
        assert issubclass(cfg_cls, pol_cls)
        cfg, pol = cfg_cls(), pol_cls()
        for f in dataclasses.fields(pol_cls):
            assert getattr(cfg, f.name) == getattr(pol, f.name), (cfg_cls.__name__, f.name)


def test_the_builder_returns_the_runtime_with_every_stage():
    from operators.stage import Stage

    built = build(load_config(None, {"capture": {"options": {"frames": 2}}}))
    stages = built.runtime.stages
    assert sorted(stages) == ["batch", "capture", "dedup", "order", "vision"]
    assert all(isinstance(s, Stage) for s in stages.values())
    assert not hasattr(built.flow, "_framewax_runtime")
