"""The import graph: every edge points down the layers, and there is no cycle.

Layers, lowest first (a module may import its own layer and those below):

0. ``operators`` core: item types, ledger, clock, stage protocols, pool (``operators/*.py``)
1. stage packages: ``operators.capture``, ``.dedup``, ``.vision``, ``.batch``, ``.order``,
   ``.actions``: engine-free logic
2. ``operators.steps`` (the Bytewax adapter) and ``operators.testing`` (test doubles)
3. ``sinks``
4. ``flows`` core: wiring, config, registry, runtime, report, runner
5. applications: ``flows.rl`` (the envs) and the commands users type (``python -m flows.<tool>``)

The graph is read from the code (every ``import`` in every module, relative ones
resolved, ``if TYPE_CHECKING:`` blocks left out), not from a list written here.
"""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import ROOT

PACKAGES = ("operators", "sinks", "flows")
STAGE_PACKAGES = {p.name for p in (ROOT / "operators").iterdir() if (p / "__init__.py").exists()}
STAGE_PACKAGES -= {"testing"}
TOOLS = {"calibrate", "record", "summary", "train_ppo", "ollama_server"}


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


MODULES = {
    module_name(p): p
    for pkg in PACKAGES
    for p in sorted((ROOT / pkg).rglob("*.py"))
    if "__pycache__" not in p.parts
}


def layer(module: str) -> int:
    parts = module.split(".")
    top = parts[0]
    sub = parts[1] if len(parts) > 1 else ""
    if top == "operators":
        if sub in ("steps", "testing"):
            return 2
        return 1 if sub in STAGE_PACKAGES else 0
    if top == "sinks":
        return 3
    if sub == "rl" or sub in TOOLS:
        return 5
    return 4


def _type_checking(node: ast.AST) -> bool:
    return isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test)


def imports(module: str) -> set[str]:
    """The project modules ``module`` imports at run time (nearest existing module)."""
    path = MODULES[module]
    tree = ast.parse(path.read_text(encoding="utf-8"))
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    found: set[str] = set()

    def visit(node: ast.AST) -> None:
        if _type_checking(node):
            return
        if isinstance(node, ast.Import):
            found.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")
                anchor = anchor[: len(anchor) - node.level + 1]
                base = ".".join([*anchor, base] if base else anchor)
            found.add(base)
            found.update(f"{base}.{a.name}" for a in node.names)
        for child in ast.iter_child_nodes(node):
            visit(child)

    visit(tree)
    out = set()
    for name in found:
        while name and name not in MODULES:
            name = name.rpartition(".")[0]
        if name and name != module:
            out.add(name)
    return out


GRAPH = {m: imports(m) for m in MODULES}


def test_the_graph_is_read_from_every_package():
    assert {m.split(".")[0] for m in MODULES} == set(PACKAGES)
    assert {"operators.capture", "operators.vision.http", "flows.rl"} <= set(MODULES)
    assert sum(len(v) for v in GRAPH.values()) > 100


@pytest.mark.parametrize("module", sorted(MODULES))
def test_no_upward_import(module):
    up = sorted(dep for dep in GRAPH[module] if layer(dep) > layer(module))
    assert not up, f"{module} (layer {layer(module)}) imports higher layers: {up}"


def test_no_cycle():
    # Tarjan's strongly connected components over modules; a package's __init__
    # re-exporting its submodules is an edge package -> submodule, never back.
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on: set[str] = set()
    cycles: list[list[str]] = []
    counter = [0]

    def strong(v: str) -> None:
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on.add(v)
        for w in GRAPH[v]:
            if w not in index:
                strong(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                cycles.append(sorted(comp))

    sys.setrecursionlimit(10_000)
    for v in sorted(GRAPH):
        if v not in index:
            strong(v)
    assert not cycles, f"import cycles: {cycles}"


def test_stage_logic_does_not_import_bytewax():
    for module, path in MODULES.items():
        if module.split(".")[0] != "operators" or layer(module) == 2:
            continue
        tree = ast.parse(path.read_text(encoding="utf-8"))
        bad = [
            n.module if isinstance(n, ast.ImportFrom) else n.names[0].name
            for n in ast.walk(tree)
            if isinstance(n, ast.Import | ast.ImportFrom)
            and ((n.module or "") if isinstance(n, ast.ImportFrom) else n.names[0].name).split(".")[
                0
            ]
            == "bytewax"
        ]
        assert not bad, f"{module} imports {bad}: stage logic must stay engine-free"


def test_every_package_says_what_it_holds():
    for module, path in MODULES.items():
        if path.name == "__init__.py":
            doc = ast.get_docstring(ast.parse(path.read_text(encoding="utf-8")))
            assert doc and len(doc) > 80, f"{module} has no docstring saying what it holds"


def test_the_dataflow_does_not_load_the_env_or_gymnasium():
    code = (
        "import sys, flows.vision\n"
        "loaded = [m for m in ('gymnasium', 'flows.rl', 'flows.runner') if m in sys.modules]\n"
        "print(','.join(loaded))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True
    )
    assert out.stdout.strip() == ""


def test_importing_flows_rl_registers_the_env_without_loading_it():
    code = (
        "import gymnasium as gym, flows.rl, sys\n"
        "spec = gym.spec(flows.rl.ENV_ID)\n"
        "print(spec.entry_point, 'flows.rl.env' in sys.modules)\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True
    )
    assert out.stdout.split() == ["flows.rl.env:VisionPipelineEnv", "False"]


def _defining(pattern: str) -> list[str]:
    return sorted(
        module for module, p in MODULES.items() if pattern in p.read_text(encoding="utf-8")
    )


def test_one_definition_of_rect_clock_and_the_image_check():
    assert _defining("\nRect = ") == ["operators.hud"]
    assert _defining("\nclass Clock") == ["operators.clock"]
    assert _defining("dtype != np.uint8") == ["operators.frame"]


def test_the_tests_mirror_the_package_tree():
    tests = ROOT / "tests"
    for d in sorted(p for pkg in PACKAGES for p in [tests / pkg, *(tests / pkg).rglob("*")]):
        if d.is_dir() and d.name != "__pycache__":
            package = ROOT / d.relative_to(tests)
            assert (package / "__init__.py").exists(), f"{d} mirrors no package ({package})"
