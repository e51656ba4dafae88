import pytest

from flows.config import load_config
from flows.vision import build_flow, runtime_of
from operators.errors import ConfigError
from operators.vision import ServeOrder


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
        ({"visoin": {}}, r"unknown config key 'visoin'.*capture, dedup, vision"),
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
        ({"capture": {"options": {"ledger": 1}}}, r"set by framewax itself"),
        (
            {"capture": {"source": "replay", "options": {"paths": ["/nope"]}}},
            r"not a recorded stream",
        ),
        ({"batch": {"options": {"device": "tpu"}}}, r"device = 'tpu'.*'auto', 'cpu', 'cuda'"),
        ({"dedup": {"options": {"regions": "quake"}}}, r"'quake'.*'arena', 'cs2'"),
        ({"dedup": {"routes": {"lobby": "drop"}}}, r"dedup.routes = 'lobby'.*'menu'"),
        ({"dedup": {"routes": {"menu": "skip"}}}, r"dedup.routes.menu = 'skip'.*'classify'"),
        ({"dedup": {"cache_scenes": "menu"}}, r"cache_scenes' must be a list"),
    ],
)
def test_bad_config_fails_when_the_flow_is_built(overrides, match):
    with pytest.raises(ConfigError, match=match):
        build_flow(load_config(None, overrides))


@pytest.mark.parametrize(
    ("dedup_table", "match"),
    [
        ({"detector": "thumbnail", "options": {"threshold": -1}}, r"threshold must be >= 0"),
        ({"detector": "thumbnail", "routes": {"menu": "drop"}}, r"classifies scenes"),
    ],
)
def test_bad_dedup_table_fails_when_the_flow_is_built(dedup_table, match):
    # A mapping is the whole config (not merged over default.toml's [dedup.options]).
    with pytest.raises(ConfigError, match=match):
        build_flow(load_config({"dedup": dedup_table}))


def test_module_attr_stage_and_toml_file(tmp_path):
    path = tmp_path / "c.toml"
    path.write_text(
        '[vision]\nbackend = "operators.local_model:LocalVisionBackend"\n[capture.options]\nframes = 3\n'
    )
    flow = build_flow(str(path))
    rt = runtime_of(flow)
    assert (
        type(rt.backend).__name__ == "LocalVisionBackend"
        and rt.config.capture.options["frames"] == 3
    )


def test_missing_or_invalid_file_is_a_clear_error(tmp_path):
    with pytest.raises(ConfigError, match="does not exist"):
        load_config(tmp_path / "nope.toml")
    bad = tmp_path / "bad.toml"
    bad.write_text("[vision\n")
    with pytest.raises(ConfigError, match="not valid TOML"):
        load_config(bad)
