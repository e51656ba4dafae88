"""The real entry point: `python -m bytewax.run flows.vision`, in a subprocess."""

import json
import os
import subprocess
import sys

import pytest

from tests.conftest import ROOT


def _run(target, tmp_path, config_text):
    cfg = tmp_path / "small.toml"
    cfg.write_text(config_text)
    summary = tmp_path / "summary.json"
    env = dict(os.environ, FRAMEWAX_CONFIG=str(cfg), FRAMEWAX_SUMMARY=str(summary))
    proc = subprocess.run(
        [sys.executable, "-m", "bytewax.run", target.replace("CFG", str(cfg))],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads(summary.read_text()), proc.stderr


SMALL = """
[capture.options]
frames = 40
fps = 20.0
width = 320
height = 180
[batch.options]
device = "cpu"
threads = 1
[run]
status_interval_s = 0.5
"""


@pytest.mark.parametrize("target", ["flows.vision", "flows.vision:build_flow('CFG')"])
def test_main_job_ledger_balances(tmp_path, target):
    summary, stderr = _run(target, tmp_path, SMALL)
    led = summary["ledger"]
    resolved = sum(led[k] for k in ("processed", "duplicate", "cached", "dropped", "failed"))
    assert led["captured"] == 40 and led["captured"] == resolved + led["in_flight"]
    assert led["in_flight"] == 0 and led["balanced"] and led["processed"] > 0
    assert summary["fps"] > 0 and summary["latency_ms"]["p50"] > 0
    assert summary["hud_accuracy"]["frames"] == led["processed"]
    assert summary["hud_accuracy"]["exact"] >= 0.9
    assert "framewax run summary" in stderr and "HUD accuracy" in stderr
    assert "[framewax] in" in stderr  # the live status line


def test_main_job_rejects_a_bad_config(tmp_path):
    cfg = tmp_path / "bad.toml"
    cfg.write_text('[vision]\nbackend = "gpt-9"\n')
    proc = subprocess.run(
        [sys.executable, "-m", "bytewax.run", "flows.vision"],
        cwd=ROOT,
        env=dict(os.environ, FRAMEWAX_CONFIG=str(cfg)),
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert proc.returncode != 0
    assert "vision.backend = 'gpt-9' is not a known stage" in proc.stderr
