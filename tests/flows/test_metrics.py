"""The Prometheus endpoint, scraped over HTTP during a real run and compared with the ledger."""

from __future__ import annotations

import time
import urllib.request
from collections import Counter

import pytest
from prometheus_client.parser import text_string_to_metric_families

from flows.metrics import parse_address
from flows.runner import Pipeline
from operators.errors import ConfigError

SMALL = {
    "capture": {"options": {"frames": 45, "fps": 30.0, "streams": 2, "width": 320, "height": 180}},
    "batch": {"options": {"device": "cpu", "threads": 1}},
    "run": {"status_interval_s": 0.0, "metrics": "127.0.0.1:0"},
}


def scrape(port: int) -> dict[str, list]:
    text = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10).read().decode()
    out: dict[str, list] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            out.setdefault(sample.name, []).append((sample.labels, sample.value))
    return out


def test_a_scraped_run_agrees_with_its_ledger():
    pipeline = Pipeline(overrides=SMALL).start()
    server = pipeline.runtime.metrics
    assert server is not None and server.host == "127.0.0.1"
    during = scrape(server.port)  # as the run starts
    assert {labels["stage"] for labels, _ in during["framewax_in_flight"]} == {
        "ledger",
        "vision",
        "batch",
    }
    deadline = time.monotonic() + 120
    while True:  # every frame captured and resolved: the counters must now be exact
        c = pipeline.ledger.counts()
        if c["captured"] == 90 and c["in_flight"] == 0:
            break
        assert time.monotonic() < deadline, c
        time.sleep(0.05)
    m = scrape(server.port)
    led = pipeline.ledger.summary()
    captured = {labels["stream"]: v for labels, v in m["framewax_frames_captured_total"]}
    assert captured == {"arena-0": 45, "arena-1": 45}
    by_outcome: Counter[str] = Counter()
    for labels, v in m["framewax_frames_resolved_total"]:
        by_outcome[labels["outcome"]] += v
        if labels["outcome"] in ("dropped", "failed"):
            assert led["reasons"][f"{labels['outcome']}({labels['reason']})"] >= v
    for outcome in ("processed", "duplicate", "cached", "dropped", "failed"):
        assert by_outcome[outcome] == led[outcome], outcome
    in_flight = {labels["stage"]: v for labels, v in m["framewax_in_flight"]}
    assert in_flight["ledger"] == 0
    stage_counts = {labels["stage"]: v for labels, v in m["framewax_stage_seconds_count"]}
    vision = pipeline.runtime.stages["vision"].metrics()
    assert stage_counts["vision"] == vision["completed"] > 0
    assert stage_counts["batch_compute"] == pipeline.runtime.stages["batch"].metrics()["batches"]
    delivered = led["processed"] + led["duplicate"] + led["cached"]
    assert m["framewax_observation_age_seconds_count"][0][1] == delivered
    pipeline.wait(60)
    with pytest.raises(OSError):  # the endpoint ends with the run
        scrape(server.port)


def test_endpoint_metrics_of_an_http_backend_match_the_server():
    from operators.testing.ollama_server import OllamaServer

    with OllamaServer(latency_ms=20, parallel=4) as srv:
        over = {
            **SMALL,
            "capture": {"options": {"frames": 20, "fps": 30.0, "width": 320, "height": 180}},
            "vision": {"backend": "ollama", "options": {"endpoints": [srv.url], "retries": 0}},
        }
        pipeline = Pipeline(overrides=over).start()
        port = pipeline.runtime.metrics.port
        deadline = time.monotonic() + 120
        while pipeline.ledger.counts()["captured"] < 20 or pipeline.ledger.in_flight():
            assert time.monotonic() < deadline
            time.sleep(0.05)
        m = scrape(port)
        submitted = pipeline.runtime.stages["vision"].metrics()["submitted"]
        seen = srv.stats.requests["POST /api/chat"]  # the calls, and the warm-up probe
        pipeline.wait(60)
    (requests,) = m["framewax_endpoint_requests_total"]
    assert requests[0]["url"] == srv.url and requests[1] == submitted > 0  # no retries
    assert seen >= submitted
    # every series the Grafana dashboard queries exists in a real run's metrics
    import json
    import re

    from tests.conftest import ROOT

    dash = json.loads((ROOT / "flows/configs/grafana-dashboard.json").read_text())
    queried = {
        name
        for panel in dash["panels"]
        for target in panel["targets"]
        for name in re.findall(r"framewax_\w+", target["expr"])
    }
    missing = {q for q in queried if q not in m and q != "framewax_endpoint_failures_total"}
    assert not missing, missing  # (failures appear once one happens: none did here)
    assert m["framewax_endpoint_breaker_open"][0][1] == 0
    assert m["framewax_endpoint_limit"][0][1] >= 1


def test_the_environment_variable_turns_it_on_and_loopback_is_the_default(monkeypatch):
    monkeypatch.setenv("FRAMEWAX_METRICS", ":0")
    over = {**SMALL, "run": {"status_interval_s": 0.0}}
    pipeline = Pipeline(overrides=over).start()
    try:
        assert pipeline.runtime.metrics is not None
        assert pipeline.runtime.metrics.host == "127.0.0.1"
        assert "framewax_in_flight" in scrape(pipeline.runtime.metrics.port)
    finally:
        pipeline.stop()


def test_off_by_default():
    pipeline = Pipeline(overrides={**SMALL, "run": {"status_interval_s": 0.0}})
    assert pipeline.runtime.serve_metrics() is None


@pytest.mark.parametrize("bad", ["9464", "host:port", "127.0.0.1:70000", ":"])
def test_a_bad_address_names_the_setting(bad):
    with pytest.raises(ConfigError, match=r"run.metrics = .*expected 'host:port'"):
        parse_address(bad)
    assert parse_address("0.0.0.0:9464") == ("0.0.0.0", 9464)
