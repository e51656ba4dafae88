"""Several streams through the whole pipeline, to the end, with one and two workers.

Every run must end by itself (a watchdog fails the test instead of hanging) with
every captured frame of every stream resolved: end-of-stream drains are bounded
by each item's own deadline, and one stream's finished work never holds a pool
slot another stream waits for.
"""

import pytest

from flows.runner import Pipeline

FRAMES = 24


def _overrides(streams, backend="local"):
    return {
        "capture": {
            "options": {"streams": streams, "frames": FRAMES, "fps": 0, "width": 320, "height": 180}
        },
        "vision": {"backend": backend, "max_in_flight": 2},
        "batch": {
            "max_size": 4,
            "max_pending_batches": 2,
            "options": {"device": "cpu", "threads": 1},
        },
        "run": {"status_interval_s": 0.0},
    }


@pytest.mark.parametrize("workers", [1, 2])
@pytest.mark.parametrize("streams", [2, 4])
def test_every_stream_ends_and_every_frame_is_resolved(streams, workers):
    for _ in range(3):
        pipeline = Pipeline(overrides=_overrides(streams), workers=workers)
        summary = pipeline.wait(timeout=120)  # a hang fails here, naming the ledger
        led = summary["ledger"]
        assert led["captured"] == streams * FRAMES, led
        assert led["in_flight"] == 0 and led["balanced"] and not led["violations"], led
        assert led["processed"] > 0
        assert sorted(pipeline.store.streams()) == [f"arena-{i}" for i in range(streams)]


def _free_ports(n):
    import socket

    socks = [socket.socket() for _ in range(n)]
    for s in socks:
        s.bind(("127.0.0.1", 0))
    ports = [s.getsockname()[1] for s in socks]
    for s in socks:
        s.close()
    return ports


def test_two_processes_on_loopback_each_ledger_their_streams_and_the_merge_balances(tmp_path):
    import json
    import os
    import subprocess
    import sys

    from flows.summary import main as merge_main
    from tests.conftest import ROOT

    cfg = tmp_path / "two.toml"
    cfg.write_text(
        "[capture.options]\nframes = 20\nfps = 20.0\nstreams = 4\nwidth = 320\nheight = 180\n"
        '[batch.options]\ndevice = "cpu"\nthreads = 1\n[run]\nstatus_interval_s = 0.0\n'
    )
    addresses = ";".join(f"127.0.0.1:{p}" for p in _free_ports(2))
    env = dict(os.environ, FRAMEWAX_CONFIG=str(cfg), FRAMEWAX_SUMMARY=str(tmp_path / "run.json"))
    procs = [
        subprocess.Popen(
            [sys.executable, "-m", "bytewax.run", "flows.vision", "-i", str(i), "-a", addresses],
            cwd=ROOT,
            env=env,
            stderr=subprocess.PIPE,
            text=True,
        )
        for i in range(2)
    ]
    errs = [p.communicate(timeout=180)[1] for p in procs]
    assert [p.returncode for p in procs] == [0, 0], errs[0][-1500:] + errs[1][-1500:]
    parts = [json.loads((tmp_path / f"run.{i}.json").read_text()) for i in range(2)]
    for i, s in enumerate(parts):
        led = s["ledger"]
        assert s["process"] == {"index": i, "count": 2}
        assert led["balanced"] and led["ended"] and led["violation_count"] == 0, led
    assert sum(s["ledger"]["captured"] for s in parts) == 4 * 20
    assert sorted(parts[0]["ledger"]["streams"] + parts[1]["ledger"]["streams"]) == [
        f"arena-{i}" for i in range(4)
    ]
    assert (
        merge_main(
            [str(tmp_path / f"run.{i}.json") for i in range(2)]
            + ["--out", str(tmp_path / "run.json")]
        )
        == 0
    )
    merged = json.loads((tmp_path / "run.json").read_text())
    assert merged["ledger"]["captured"] == 80 and merged["ledger"]["balanced"]


def test_the_merge_refuses_a_missing_process_or_a_stream_counted_twice(tmp_path):
    import json

    from flows.summary import merge

    def part(index, streams, captured, processed):
        return {
            "process": {"index": index, "count": 2},
            "duration_s": 1.0,
            "fps": 1.0,
            "captured_fps": 1.0,
            "processed_fps": 1.0,
            "latency_ms": {"p50": 1.0, "p99": 2.0},
            "hud_accuracy": {"frames": 0, "exact": None, "fields": {}, "enemy_count": None},
            "ledger": {
                "captured": captured,
                "in_flight": 0,
                "processed": processed,
                "duplicate": 0,
                "cached": 0,
                "dropped": 0,
                "failed": 0,
                "balanced": True,
                "ended": True,
                "streams": streams,
            },
        }

    assert merge([part(0, ["a"], 5, 5), part(1, ["b"], 3, 3)])["ledger"]["balanced"]
    lonely = merge([part(0, ["a"], 5, 5)])
    assert (
        not lonely["ledger"]["balanced"]
        and "one summary from each process" in lonely["problems"][0]
    )
    twice = merge([part(0, ["a"], 5, 5), part(1, ["a"], 3, 3)])
    assert (
        not twice["ledger"]["balanced"] and "more than one process: ['a']" in twice["problems"][0]
    )
    json.dumps(twice)  # the merged summary is JSON
