"""Stopping cleanly: signals to the real entry point, ``Pipeline.stop()``, and the ledger's truth.

A model server that takes far longer than the shutdown budget keeps calls in
flight when the stop comes: they must end as ``failed(timeout)`` within
``[run] shutdown_ms``, every other frame resolved, the summary written, and
the process must exit 0 (a second signal: at once).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time

import pytest

from flows.config import load_config
from flows.report import format_summary
from flows.runner import Pipeline
from flows.runtime import Runtime
from operators.outcome import Outcome, Status
from operators.testing.ollama_server import OllamaServer
from tests.conftest import ROOT

SLOW = """
[capture.options]
frames = 0
fps = 20.0
width = 320
height = 180
[vision]
backend = "ollama"
max_in_flight = 4
staleness_ms = 0.0
deadline_ms = {deadline_ms}
[vision.options]
endpoints = ["{url}"]
retries = 0
[batch.options]
device = "cpu"
threads = 1
[run]
status_interval_s = 0.2
shutdown_ms = {shutdown_ms}
"""


def _start(tmp_path, srv, shutdown_ms, deadline_ms=60_000):
    """The main job against ``srv``, returned once calls are in flight at the server (its
    signal handlers are installed before the flow runs)."""
    cfg = tmp_path / "slow.toml"
    cfg.write_text(SLOW.format(url=srv.url, shutdown_ms=shutdown_ms, deadline_ms=deadline_ms))
    summary = tmp_path / "summary.json"
    env = dict(os.environ, FRAMEWAX_CONFIG=str(cfg), FRAMEWAX_SUMMARY=str(summary))
    proc = subprocess.Popen(
        [sys.executable, "-m", "bytewax.run", "flows.vision"],
        cwd=ROOT,
        env=env,
        stderr=subprocess.PIPE,
        text=True,
    )
    lines: list[str] = []

    def read() -> None:
        assert proc.stderr is not None
        lines.extend(proc.stderr)

    threading.Thread(target=read, daemon=True).start()
    deadline = time.monotonic() + 120
    while srv.stats.active == 0:
        if proc.poll() is not None or time.monotonic() > deadline:
            proc.kill()
            pytest.fail("the main job did not start: " + "".join(lines[-30:]))
        time.sleep(0.05)
    return proc, summary, lines


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_a_signal_drains_resolves_everything_and_exits_0(tmp_path, sig):
    with OllamaServer(latency_ms=30_000, parallel=8, hang_s=60) as srv:
        proc, summary_path, lines = _start(tmp_path, srv, shutdown_ms=500)
        time.sleep(0.5)  # more frames captured, still none answered: calls are in flight
        proc.send_signal(sig)
        rc = proc.wait(timeout=60)
    text = "".join(lines)
    assert rc == 0, text[-3000:]
    assert f"[framewax] {sig.name}: stopping" in text and "Traceback" not in text
    assert "framewax run summary" in text
    s = json.loads(summary_path.read_text())
    led = s["ledger"]
    assert led["ended"] and led["balanced"] and led["in_flight"] == 0 and led["unresolved"] == 0
    assert led["captured"] > 0 and led["violation_count"] == 0
    # the calls the server never answered ended as timeouts at the shutdown deadline
    assert led["reasons"].get("failed(timeout)", 0) >= 1
    assert led["processed"] == 0  # nothing could have been read in time: no result was made up


def test_a_second_signal_exits_at_once(tmp_path):
    with OllamaServer(latency_ms=30_000, parallel=8, hang_s=60) as srv:
        # Drains would wait up to a minute for the calls in flight; the second signal won't.
        proc, _summary, lines = _start(tmp_path, srv, shutdown_ms=60_000)
        proc.send_signal(signal.SIGINT)
        deadline = time.monotonic() + 30
        while "SIGINT: stopping" not in "".join(lines) and time.monotonic() < deadline:
            time.sleep(0.05)
        proc.send_signal(signal.SIGINT)
        rc = proc.wait(timeout=20)
    assert rc == 128 + signal.SIGINT, "".join(lines)[-2000:]
    assert "SIGINT again: exiting now" in "".join(lines)


def test_pipeline_stop_is_bounded_by_shutdown_ms_with_calls_hanging(tmp_path):
    with OllamaServer(latency_ms=30_000, parallel=8, hang_s=60) as srv:
        over = {
            "capture": {"options": {"frames": 0, "fps": 20.0, "width": 320, "height": 180}},
            "vision": {
                "backend": "ollama",
                "max_in_flight": 4,
                "staleness_ms": 0.0,
                "deadline_ms": 60_000.0,
                "options": {"endpoints": [srv.url], "retries": 0},
            },
            "batch": {"options": {"device": "cpu", "threads": 1}},
            "run": {"status_interval_s": 0.0, "shutdown_ms": 300.0},
        }
        pipeline = Pipeline(overrides=over).start()
        deadline = time.monotonic() + 60
        while srv.stats.active == 0 and time.monotonic() < deadline:
            time.sleep(0.05)
        summary = pipeline.stop(timeout=30)  # the calls would take 30 s; stop() won't wait
    led = summary["ledger"]
    assert led["ended"] and led["balanced"] and led["in_flight"] == 0
    assert led["reasons"].get("failed(timeout)", 0) >= 1
    assert not pipeline.running


def test_a_run_that_ends_with_frames_unresolved_is_not_balanced_and_says_so():
    rt = Runtime(load_config(None), report=False)
    for seq in range(3):
        rt.ledger.captured("s", seq)
    rt.ledger.record(Outcome("s", 0, Status.PROCESSED))
    assert rt.ledger.balanced()  # while it runs, in flight is fine
    summary = rt.finish()
    led = summary["ledger"]
    assert not led["balanced"] and led["unresolved"] == 2 and rt.exit_code == 1
    assert "INCOMPLETE: 2 frames were still unresolved" in format_summary(summary)


def test_violations_are_all_counted_though_only_the_first_are_kept():
    rt = Runtime(load_config(None), report=False)
    for seq in range(50):
        rt.ledger.record(Outcome("s", seq, Status.PROCESSED))  # never captured
    led = rt.ledger.summary()
    assert led["violation_count"] == 50 and len(led["violations"]) == 20
    assert not led["balanced"]


def test_a_server_that_goes_away_and_comes_back_mid_run():
    """Server gone: frames fail (connection, then unavailable while the breaker is open);
    server back on the same address: the breaker's probe closes it and frames are read again."""
    first = OllamaServer(latency_ms=20, parallel=4).start()
    port = int(first.url.rsplit(":", 1)[1])
    over = {
        "capture": {"options": {"frames": 0, "fps": 30.0, "width": 320, "height": 180}},
        "vision": {
            "backend": "ollama",
            "max_in_flight": 2,
            "staleness_ms": 0.0,
            "deadline_ms": 2000.0,
            "options": {
                "endpoints": [first.url],
                "retries": 0,
                "breaker_failures": 2,
                "breaker_cooldown_s": 0.3,
            },
        },
        "batch": {"options": {"device": "cpu", "threads": 1}},
        "run": {"status_interval_s": 0.0, "shutdown_ms": 2000.0},
    }
    pipeline = Pipeline(overrides=over).start()
    second = None
    try:

        def wait_for(what, cond, timeout=60):
            deadline = time.monotonic() + timeout
            while not cond():
                assert time.monotonic() < deadline, f"{what}: {pipeline.ledger.reasons()}"
                time.sleep(0.05)

        wait_for("read while up", lambda: pipeline.ledger.counts()["processed"] >= 3)
        first.stop()
        wait_for("fail while gone", lambda: pipeline.ledger.reasons().get("failed(unavailable)"))
        processed_while_gone = pipeline.ledger.counts()["processed"]
        second = OllamaServer(port=port, latency_ms=20, parallel=4).start()
        wait_for(
            "read again", lambda: pipeline.ledger.counts()["processed"] > processed_while_gone + 3
        )
    finally:
        summary = pipeline.stop(timeout=60)
        if second is not None:
            second.stop()
    led = summary["ledger"]
    assert led["balanced"] and led["in_flight"] == 0
    assert led["reasons"].get("failed(connection)", 0) >= 1
    assert summary["vision"]["endpoints"][0]["breaker"] == "closed"


class TwiceSource:
    """A broken capture source (named by a test config): it stamps two frames with seq 0."""

    name = "capture"

    def stream_ids(self):
        return ["twice"]

    def open(self, stream_id):
        from operators.capture.base import FrameStream  # noqa: F401  (the protocol it meets)

        return _Twice()


class _Twice:
    stream_id = "twice"

    def __init__(self):
        self.sent = 0

    def next_frames(self):
        import numpy as np

        from operators.frame import Frame

        if self.sent >= 3:
            raise StopIteration
        seq = [0, 0, 1][self.sent]
        self.sent += 1
        return [Frame("twice", seq, time.time(), np.full((90, 160, 3), self.sent * 60, np.uint8))]

    def next_wake(self):
        return None

    def close(self):
        return None


def test_the_main_job_exits_1_when_its_ledger_does_not_balance(tmp_path):
    cfg = tmp_path / "twice.toml"
    cfg.write_text(
        '[capture]\nsource = "tests.flows.test_shutdown:TwiceSource"\n'
        '[batch.options]\ndevice = "cpu"\nthreads = 1\n'
    )
    summary = tmp_path / "summary.json"
    proc = subprocess.run(
        [sys.executable, "-m", "bytewax.run", "flows.vision"],
        cwd=ROOT,
        env=dict(os.environ, FRAMEWAX_CONFIG=str(cfg), FRAMEWAX_SUMMARY=str(summary)),
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert proc.returncode == 1, proc.stderr[-2000:]
    led = json.loads(summary.read_text())["ledger"]
    assert not led["balanced"] and led["violation_count"] >= 1
    assert "twice#0 captured twice" in led["violations"][0]
    assert "NOT BALANCED" in proc.stderr and "Traceback" not in proc.stderr


def test_a_signal_ends_a_recording_with_every_captured_frame_written(tmp_path):
    cfg = tmp_path / "rec.toml"
    cfg.write_text("[capture.options]\nframes = 0\nfps = 30.0\nwidth = 160\nheight = 90\n")
    out = tmp_path / "recordings"
    proc = subprocess.Popen(
        [sys.executable, "-m", "bytewax.run", "flows.record"],
        cwd=ROOT,
        env=dict(os.environ, FRAMEWAX_CONFIG=str(cfg), FRAMEWAX_RECORD_OUT=str(out)),
        stderr=subprocess.PIPE,
        text=True,
    )
    index = out / "arena-0" / "index.jsonl"
    deadline = time.monotonic() + 60
    while not (index.is_file() and index.read_text().count("\n") >= 10):
        assert proc.poll() is None and time.monotonic() < deadline, "recording did not start"
        time.sleep(0.05)
    proc.send_signal(signal.SIGINT)
    _out, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err[-2000:]
    assert "SIGINT: stopping" in err and "Traceback" not in err
    lines = index.read_text().splitlines()
    entries = [json.loads(line) for line in lines]  # every line complete
    assert [e["seq"] for e in entries] == list(range(len(entries)))
    assert all((out / "arena-0" / e["file"]).is_file() for e in entries)
