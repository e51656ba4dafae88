"""Every notebook under notebooks/ runs top to bottom."""

from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

from tests.conftest import ROOT

NOTEBOOKS = sorted((ROOT / "notebooks").glob("*.ipynb"))
# What each notebook must print, so a silently empty run does not pass.
MARKERS = {"replay.ipynb": "model calls saved", "training.ipynb": "episodes"}


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
