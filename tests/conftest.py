from __future__ import annotations

import os
import select
import shutil
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import bytewax.operators as op
import numpy as np
import pytest
from bytewax.dataflow import Dataflow
from bytewax.testing import TestingSink, TestingSource, cluster_main, run_main

from operators.capture.arena import Arena
from operators.frame import Frame
from operators.testing.xvfb import start_xvfb

ROOT = Path(__file__).resolve().parents[1]
W, H = 320, 240  # the virtual display's size
DATA = ROOT / "tests" / "data"
ARENA_SMALL = DATA / "arena_small"


def _xvfb(width: int, height: int) -> tuple[str, subprocess.Popen[bytes]]:
    """A virtual X display of its own, or the test is skipped (failed in CI) saying why."""
    if shutil.which("Xvfb") is None:
        if os.environ.get("FRAMEWAX_REQUIRE_XVFB"):
            pytest.fail("Xvfb is not installed (apt-get install xvfb); .ci/run installs it")
        pytest.skip("Xvfb is not installed (apt-get install xvfb)")
    try:
        return start_xvfb(width, height)
    except RuntimeError as ex:
        pytest.fail(str(ex))


@pytest.fixture(scope="session")
def display():
    name, proc = _xvfb(W, H)
    yield name
    proc.terminate()
    proc.wait(timeout=10)


@pytest.fixture(scope="module")
def doom(tmp_path_factory):
    """Freedoom through ViZDoom on a virtual display of its own (800x600), its window
    640x480, logging its variables every tic: ``(display, log path)``."""
    pytest.importorskip("vizdoom", reason="pip install vizdoom")
    name, xvfb = _xvfb(800, 600)
    log = tmp_path_factory.mktemp("doom") / "vars.jsonl"
    game = subprocess.Popen(
        [sys.executable, "-m", "flows.doom", "--display", name, "--log", str(log), "--seed", "1"],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    assert game.stdout is not None
    ready, _, _ = select.select([game.stdout], [], [], 60.0)  # never wait without a limit
    first = game.stdout.readline() if ready else "(nothing within 60 s)"
    if not first.startswith("ready"):
        game.kill()
        xvfb.terminate()
        pytest.fail(f"the game did not start: {first}{game.stdout.read()}")
    yield name, log
    game.terminate()
    game.wait(timeout=20)
    xvfb.terminate()
    xvfb.wait(timeout=10)


def replay_overrides(**extra: Any) -> dict[str, Any]:
    """A config that replays arena_small as fast as possible and processes every frame."""
    cfg: dict[str, Any] = {
        "capture": {"source": "replay", "options": {"paths": [str(ARENA_SMALL)], "pace": "fast"}},
        "vision": {"staleness_ms": 0.0, "order": "oldest", "max_pending": 10_000},
        "batch": {"max_pending_batches": 10_000, "options": {"device": "cpu", "threads": 1}},
        "run": {"status_interval_s": 0.0},
    }
    for section, values in extra.items():
        cfg.setdefault(section, {}).update(values)
    return cfg


def run_step(
    step: Callable[..., Any], items: list[Any], *args: Any, workers: int = 1, **kwargs: Any
) -> list[Any]:
    """Run one keyed step in a real Bytewax flow: ``items`` keyed by ``stream_id`` in, its
    output (values, without keys) out. ``workers > 1`` runs a cluster in this process."""
    flow = Dataflow("step_test")
    inp = op.key_on("key", op.input("in", flow, TestingSource(items)), lambda x: x.stream_id)
    out = step("step", inp, *args, **kwargs)
    got: list[Any] = []
    op.output("out", out, TestingSink(got))
    if workers == 1:
        run_main(flow)
    else:
        cluster_main(flow, [], 0, worker_count_per_proc=workers)
    return [x for _, x in got]


def arena_frame(seq: int = 0, seed: int = 0, stream: str = "s", **kw: Any) -> Frame:
    arena = Arena(width=320, height=180, seed=seed, **kw)
    return Frame(stream, seq, time.time(), arena.render(), arena.truth())


@pytest.fixture
def frames() -> list[Frame]:
    """Twelve arena frames, 320x180, with ground truth."""
    arena = Arena(width=320, height=180, seed=2)
    out = []
    for seq in range(12):
        arena.step((0, 2, 0, 0) if seq % 3 else None)
        out.append(Frame("s", seq, time.time(), arena.render(), arena.truth()))
    return out


def solid(
    seq: int,
    value: int = 0,
    stream: str = "s",
    shape: tuple[int, ...] = (90, 160, 3),
    at: float | None = None,
) -> Frame:
    return Frame(stream, seq, time.time() if at is None else at, np.full(shape, value, np.uint8))
