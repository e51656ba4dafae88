"""Several streams through the whole pipeline, to the end, with one and two workers.

Every run must end by itself (a watchdog fails the test instead of hanging) with
every captured frame of every stream resolved: end-of-stream drains are bounded
by each item's own deadline, and one stream's finished work never holds a pool
slot another stream waits for.
"""

import pytest

from flows.cluster import loopback_addresses
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


def run_processes(tmp_path, config_text, *, processes=2, workers=1, env=None, timeout=180):
    """Run the main job as ``processes`` Bytewax processes on loopback (``-i/-a``, ``-w``);
    returns each process's JSON summary."""
    import json
    import os
    import subprocess
    import sys

    from tests.conftest import ROOT

    cfg = tmp_path / "cluster.toml"
    cfg.write_text(config_text)
    addresses = loopback_addresses(processes)
    env = dict(
        os.environ,
        **(env or {}),
        FRAMEWAX_CONFIG=str(cfg),
        FRAMEWAX_SUMMARY=str(tmp_path / "run.json"),
    )
    procs = [
        subprocess.Popen(
            [
                sys.executable,
                "-m",
                "bytewax.run",
                "flows.vision",
                "-i",
                str(i),
                "-a",
                addresses,
                "-w",
                str(workers),
            ],
            cwd=ROOT,
            env=env,
            stderr=subprocess.PIPE,
            text=True,
        )
        for i in range(processes)
    ]
    try:
        errs = [p.communicate(timeout=timeout)[1] for p in procs]
    finally:
        for p in procs:
            p.kill()
    assert [p.returncode for p in procs] == [0] * processes, "\n".join(e[-1500:] for e in errs)
    return [json.loads((tmp_path / f"run.{i}.json").read_text()) for i in range(processes)]


@pytest.mark.parametrize("workers", [1, 2])
def test_two_processes_on_loopback_each_ledger_their_streams_and_the_merge_balances(
    tmp_path, workers
):
    import json

    from flows.summary import main as merge_main

    parts = run_processes(
        tmp_path,
        "[capture.options]\nframes = 20\nfps = 20.0\nstreams = 4\nwidth = 320\nheight = 180\n"
        '[batch.options]\ndevice = "cpu"\nthreads = 1\n[run]\nstatus_interval_s = 0.0\n',
        workers=workers,
    )
    for i, s in enumerate(parts):
        led = s["ledger"]
        assert s["process"] == {"index": i, "count": 2}
        assert led["balanced"] and led["ended"] and led["violation_count"] == 0, led
        # Each process captures two of the four streams, and every step of a stream runs
        # where it was captured: no frame reached a process it was not captured in.
        place = s["placement"]
        assert place["worker_count"] == 2 * workers
        assert len(place["streams"]) == 2 and place["frames"] == led["captured"] == 40, place
        assert place["crossed_frames"] == 0 and place["crossed_bytes"] == 0, place
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
    assert len(merged["placement"]["streams"]) == 4 and merged["placement"]["crossed_frames"] == 0


def test_with_bytewax_placement_frames_cross_and_are_counted(tmp_path):
    """The crossing counter is real: keyed by name (``placement = "hash"``), both streams'
    steps land on worker 0 (their names hash there), so process 1's frames all cross."""
    from operators.placement import worker_of_key

    assert [worker_of_key(f"arena-{i}", 2) for i in range(2)] == [0, 0]
    parts = run_processes(
        tmp_path,
        "[capture.options]\nframes = 20\nfps = 20.0\nstreams = 2\nwidth = 320\nheight = 180\n"
        '[batch.options]\ndevice = "cpu"\nthreads = 1\n[run]\nstatus_interval_s = 0.0\n'
        'placement = "hash"\n',
    )
    p0, p1 = (s["placement"] for s in parts)
    assert p0["frames"] == 40 and p0["crossed_frames"] == 20, p0  # arena-1, from process 1
    assert p0["crossed_bytes"] == 20 * 320 * 180 * 3
    assert p1["frames"] == 0 and parts[1]["ledger"]["captured"] == 0
    assert all(s["ledger"]["balanced"] for s in parts)


def test_max_in_flight_holds_for_the_whole_cluster(tmp_path):
    """Two processes against one server with ``max_in_flight = 4``: each takes its share
    (2), so the server never has more than 4 of the cluster's calls at once."""
    from operators.testing.ollama_server import OllamaServer

    config = (
        "[capture.options]\nframes = 40\nfps = 40.0\nstreams = 2\nwidth = 320\nheight = 180\n"
        "[dedup]\nenabled = false\n"
        '[vision]\nbackend = "ollama"\nmax_in_flight = 4\nmax_pending = 64\nstaleness_ms = 60000.0\norder = "oldest"\n'
        '[batch.options]\ndevice = "cpu"\nthreads = 1\n[run]\nstatus_interval_s = 0.0\n'
    )
    with OllamaServer(latency_ms=150, parallel=16) as srv:
        parts = run_processes(tmp_path, config, env={"OLLAMA_HOST": srv.host})
        peak = srv.stats.peak_open
        served = sum(srv.stats.requests.values())
    for s in parts:
        assert s["ledger"]["balanced"] and s["ledger"]["processed"] == 40, s["ledger"]["reasons"]
        assert s["vision"]["limit"] == 2 and s["vision"]["peak_in_flight"] <= 2
        (ep,) = s["vision"]["endpoints"]
        assert ep["limit"] == 2 and ep["share"] == 0.5
    assert served >= 80 and 1 <= peak <= 4, (served, peak)


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


@pytest.mark.parametrize("workers", [2, 3, 4])
def test_bytewax_routes_each_routing_key_to_the_worker_it_was_made_for(workers):
    """The placement's hash is Bytewax's own: a real multi-worker run puts every key's
    stateful step on the worker ``routing_key`` chose (and names alone would not)."""
    import threading

    import bytewax.operators as op
    from bytewax.dataflow import Dataflow
    from bytewax.outputs import DynamicSink, StatelessSinkPartition
    from bytewax.testing import TestingSource, cluster_main

    from operators.placement import place, routing_key, worker_of_key

    streams = [f"arena-{i}" for i in range(8)] + ["cam/left", "日本"]
    where = place(streams, workers)
    keys = [routing_key(s, where[s], workers) for s in streams]
    seen: dict[str, set[int]] = {}
    lock = threading.Lock()

    class Part(StatelessSinkPartition):
        def __init__(self, worker):
            self.worker = worker

        def write_batch(self, items):
            with lock:
                for key, _ in items:
                    seen.setdefault(key, set()).add(self.worker)

    class Sink(DynamicSink):
        def build(self, step_id, worker_index, worker_count):
            return Part(worker_index)

    flow = Dataflow("routing")
    keyed = op.key_on("key", op.input("in", flow, TestingSource(keys + streams)), lambda k: k)
    op.output("out", op.stateful_map("state", keyed, lambda st, v: (st, v)), Sink())
    cluster_main(flow, [], 0, worker_count_per_proc=workers)
    assert {k: seen[k] for k in keys} == {k: {where[s]} for k, s in zip(keys, streams, strict=True)}
    # The bare names do land by the same hash, and (for this list) not all where placed.
    assert {s: seen[s] for s in streams} == {s: {worker_of_key(s, workers)} for s in streams}
    assert any(worker_of_key(s, workers) != where[s] for s in streams)


@pytest.mark.parametrize("signalled", [0, 1])
def test_a_signal_to_one_process_stops_the_whole_cluster(tmp_path, signalled):
    """Ctrl-C in one terminal: that process's sources stop and tell every worker of the
    cluster, so both processes drain, write balanced summaries and exit 0."""
    import json
    import os
    import signal
    import subprocess
    import sys
    import threading
    import time

    from flows.summary import merge
    from tests.conftest import ROOT

    cfg = tmp_path / "forever.toml"
    cfg.write_text(
        "[capture.options]\nframes = 0\nfps = 20.0\nstreams = 2\nwidth = 320\nheight = 180\n"
        '[batch.options]\ndevice = "cpu"\nthreads = 1\n[run]\nstatus_interval_s = 0.2\n'
        "shutdown_ms = 1000.0\n"
    )
    addresses = loopback_addresses(2)
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
    lines: list[list[str]] = [[], []]
    readers = [
        threading.Thread(target=lambda p=p, out=out: out.extend(p.stderr), daemon=True)
        for p, out in zip(procs, lines, strict=True)
    ]
    for r in readers:
        r.start()
    try:
        # both processes capturing: each has printed a status line
        deadline = time.monotonic() + 90
        while not all(any("[framewax] in" in x for x in out) for out in lines):
            assert time.monotonic() < deadline, lines
            assert all(p.poll() is None for p in procs), lines
            time.sleep(0.1)
        procs[signalled].send_signal(signal.SIGTERM)
        for p in procs:
            p.wait(timeout=60)  # a hang fails here
        for r in readers:
            r.join(timeout=10)
    finally:
        for p in procs:
            p.kill()
    errs = ["".join(out) for out in lines]
    assert [p.returncode for p in procs] == [0, 0], "\n".join(e[-1500:] for e in errs)
    parts = [json.loads((tmp_path / f"run.{i}.json").read_text()) for i in range(2)]
    merged = merge(parts)
    assert merged["ledger"]["balanced"] and merged["ledger"]["captured"] > 0, merged["ledger"]
    assert all(s["ledger"]["captured"] > 0 for s in parts)
    assert "SIGTERM: stopping" in errs[signalled]
