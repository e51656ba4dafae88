"""Every notebook under notebooks/ runs top to bottom and shows its figures inline."""

from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

from tests.conftest import ROOT

NOTEBOOKS = sorted((ROOT / "notebooks").glob("*.ipynb"))
# What each notebook must print, so a silently empty run does not pass.
MARKERS = {
    "quickstart.ipynb": "model calls saved",
    "performance.ipynb": "of the Little's-law bound",
    "training.ipynb": "episodes",
}
FIGURES = {"quickstart.ipynb": 2, "performance.ipynb": 3, "training.ipynb": 1}
"""How many inline images each notebook must produce (matplotlib's inline backend: a
notebook that falls back to Agg, or whose plotting cell fails silently, shows none)."""


def test_every_notebook_is_checked():
    assert sorted(MARKERS) == sorted(FIGURES) == sorted(p.name for p in NOTEBOOKS)


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: Path(p).name)
def test_notebook_executes(path):
    nb = nbformat.read(path, as_version=4)
    NotebookClient(
        nb, timeout=300, kernel_name="python3", resources={"metadata": {"path": str(ROOT)}}
    ).execute()
    outputs = [o for c in nb.cells if c.cell_type == "code" for o in c.get("outputs", [])]
    assert not [o for o in outputs if o.get("output_type") == "error"]
    marker = MARKERS[Path(path).name]
    assert any(marker in o.get("text", "") for o in outputs)
    images = [o for o in outputs if "image/png" in o.get("data", {})]
    assert len(images) >= FIGURES[Path(path).name], [o.get("output_type") for o in outputs]
    assert not any("Agg" in "".join(c.source) for c in nb.cells if c.cell_type == "code")
