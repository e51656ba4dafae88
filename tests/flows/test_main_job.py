"""The real entry point: `python -m bytewax.run flows.vision`, in a subprocess."""

import json
import os
import re
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


def _ollama_preset(frames: int, fps: float, **vision_options) -> str:
    """flows/configs/ollama.toml, shortened for a test run."""
    text = (ROOT / "flows" / "configs" / "ollama.toml").read_text()
    text = text.replace("frames = 240", f"frames = {frames}").replace("fps = 15.0", f"fps = {fps}")
    text = text.replace("width = 640", "width = 320").replace("height = 360", "height = 180")
    text = text.replace('device = "auto"', 'device = "cpu"')
    for key, value in vision_options.items():
        line = f"{key} = {json.dumps(value)}"
        text, n = re.subn(rf"(?m)^{key} = .*$", line, text)
        if not n:
            text = text.replace("[vision.options]\n", f"[vision.options]\n{line}\n")
    return text


def _run_with_server(tmp_path, monkeypatch, server, config_text):
    monkeypatch.setenv("OLLAMA_HOST", server.host)
    return _run("flows.vision", tmp_path, config_text)


def test_ollama_preset_keeps_many_calls_in_flight_through_503s(tmp_path, monkeypatch):
    from operators.testing.ollama_server import OllamaServer

    with OllamaServer(latency_ms=200, parallel=8, faults={"503": 0.2}, seed=1) as srv:
        summary, stderr = _run_with_server(tmp_path, monkeypatch, srv, _ollama_preset(60, 30.0))
        peak, faults = srv.stats.peak_active, srv.stats.faults["503"]
    led, vis = summary["ledger"], summary["vision"]
    assert led["captured"] == 60 and led["balanced"] and led["in_flight"] == 0
    assert led["processed"] > 0 and peak >= 4  # really concurrent at the server
    assert faults > 0 and vis["retries"] >= faults - led["failed"] * 4
    (ep,) = vis["endpoints"]
    assert ep["url"] == f"http://{srv.host}" and ep["peak_in_flight"] <= 8
    assert set(led["reasons"]) <= {"failed(http_503)", "duplicate"} | {
        r for r in led["reasons"] if r.startswith("dropped")
    }
    assert "retries" in stderr and srv.host in stderr


def test_ollama_preset_reads_the_hud_through_http(tmp_path, monkeypatch):
    from operators.testing.ollama_server import OllamaServer

    # The server runs the local model on the JPEG it is sent: real readings over HTTP.
    with OllamaServer(model="local", parallel=1) as srv:
        summary, _ = _run_with_server(
            tmp_path, monkeypatch, srv, _ollama_preset(30, 5.0, max_side=0, jpeg_quality=95)
        )
    led, acc = summary["ledger"], summary["hud_accuracy"]
    assert led["balanced"] and led["processed"] >= 10
    assert acc["exact"] >= 0.9, acc
