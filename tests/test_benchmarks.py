"""The benchmarks report the capture side, not only the model side (no timing asserted)."""

from __future__ import annotations

import json
import subprocess
import sys

from tests.conftest import ROOT


def test_the_overhead_benchmark_reports_capture_rate_and_per_stage_cost(tmp_path):
    out = tmp_path / "overhead.json"
    subprocess.run(
        [
            sys.executable,
            "benchmarks/overhead.py",
            "--out",
            str(out),
            "--frames",
            "200",
            "--resolutions",
            "360p",
            "--streams",
            "1,2",
            "--distinct",
            "4",
        ],
        cwd=ROOT,
        check=True,
        timeout=300,
        capture_output=True,
    )
    result = json.loads(out.read_text())
    assert result["benchmark"] == "overhead" and result["machine"]["cpus"] >= 1
    assert [(r["resolution"], r["streams"]) for r in result["rows"]] == [("360p", 1), ("360p", 2)]
    for row in result["rows"]:
        fw, bare = row["framewax"], row["bytewax_identity"]
        assert fw["balanced"] and fw["frames"] == bare["frames"] == 200 * row["streams"]
        assert fw["capture_fps"] > 0 and fw["fps_per_core"] > 0 and bare["fps_per_core"] > 0
        assert set(fw["steps_us_per_frame"]) == {
            "capture",
            "dedup",
            "vision",
            "batch",
            "order",
            "sink",
        }
    assert result["checks"]["min_capture_fps"] > 0


def test_the_vision_benchmark_reports_the_capture_side_of_each_row():
    sys.path.insert(0, str(ROOT))
    from benchmarks.vision import run_framewax
    from operators.testing.ollama_server import spawn_server

    proc, host = spawn_server(["--latency-ms", "50", "--parallel", "8"])
    try:
        row = run_framewax(
            [{"url": f"http://{host}", "max_in_flight": 4}], 4, 30.0, 2.0, 0.05, 200.0
        )
    finally:
        proc.terminate()
        proc.wait(timeout=10)
    assert row["balanced"] and row["ledger"]["captured"] == 60
    assert row["captured_fps_achieved"] > 0
    assert row["capture_of_target"] == row["captured_fps_achieved"] / 30.0
    assert row["missed_ticks"] >= 0
    assert {"capture", "vision", "batch", "order", "sink"} <= set(row["dataflow_us_per_frame"])
