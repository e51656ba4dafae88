"""Dependencies point one way: operators (stage logic) <- operators.steps (Bytewax) <- sinks <- flows."""

import ast
import subprocess
import sys

import pytest

from tests.conftest import ROOT

RANK = {"operators": 0, "sinks": 1, "flows": 2}


def _imports(path):
    tree = ast.parse(path.read_text(encoding="utf-8"))
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            yield from (a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            yield node.module


def _modules(package):
    return sorted((ROOT / package).glob("*.py"))


@pytest.mark.parametrize("package", sorted(RANK))
def test_no_package_imports_a_higher_layer(package):
    for path in _modules(package):
        for name in _imports(path):
            top = name.split(".")[0]
            assert RANK.get(top, -1) <= RANK[package], f"{path.relative_to(ROOT)} imports {name}"


def test_stage_logic_does_not_import_bytewax():
    adapters = {"steps.py"}
    for path in _modules("operators"):
        if path.name in adapters:
            continue
        bad = [n for n in _imports(path) if n.split(".")[0] == "bytewax"]
        assert not bad, f"{path.relative_to(ROOT)} imports {bad}: stage logic must stay engine-free"


def test_the_dataflow_does_not_load_the_env_or_gymnasium():
    code = (
        "import sys, flows.vision\n"
        "loaded = [m for m in ('gymnasium', 'flows.env', 'flows.runner') if m in sys.modules]\n"
        "print(','.join(loaded))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True
    )
    assert out.stdout.strip() == ""


def test_importing_sinks_after_gymnasium_registers_the_env():
    code = (
        "import gymnasium as gym, sinks\n"
        "spec = gym.spec(sinks.ENV_ID)\n"
        "import sys\n"
        "print(spec.entry_point, 'flows.env' in sys.modules)\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True
    )
    assert out.stdout.split() == ["flows.env:VisionPipelineEnv", "False"]


def test_one_definition_of_rect_clock_and_the_image_check():
    sources = {p: p.read_text(encoding="utf-8") for pkg in RANK for p in _modules(pkg)}
    rect = [p.name for p, s in sources.items() if "\nRect = " in s]
    clock = [p.name for p, s in sources.items() if "\nclass Clock" in s or "\nClock = " in s]
    dtype_checks = [p.name for p, s in sources.items() if "dtype != np.uint8" in s]
    assert (rect, clock, dtype_checks) == (["hud.py"], ["clock.py"], ["frame.py"])
