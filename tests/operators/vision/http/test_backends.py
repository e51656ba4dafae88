"""The HTTP vision backends against a real Ollama-protocol server on loopback.

Every test sends real HTTP to :class:`operators.testing.ollama_server.OllamaServer` (a
threaded ``http.server``), through real Bytewax runs where the stage's
behaviour is the point.
"""

from __future__ import annotations

import json
import socket
import time

import cv2
import numpy as np
import ollama
import pytest
from ollama._client import _parse_host

from flows.config import load_config
from flows.registry import build
from operators.errors import ConfigError, VisionError
from operators.frame import Frame
from operators.outcome import Outcome
from operators.reading import VISION_JSON_SCHEMA, VisionResult
from operators.steps import call_vision
from operators.testing.ollama_server import FAULTS, OllamaServer
from operators.vision.http.backends import OllamaBackend, OpenAIBackend, encode_image
from operators.vision.http.client import DeadlineRetry, parse_ollama_host
from operators.vision.queue import ServeOrder, VisionPolicy, VisionStage
from tests.conftest import arena_frame, run_step, solid


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


_OPEN: list = []


@pytest.fixture(autouse=True)
def _close_backends():
    yield
    while _OPEN:
        _OPEN.pop().close()


def _backend(urls, **kw):
    kw.setdefault("deadline_ms", 3000.0)
    kw.setdefault("preload", False)
    kw.setdefault("backoff_s", 0.01)
    kw.setdefault("jitter_s", 0.01)
    backend = OllamaBackend(endpoints=list(urls), **kw)
    _OPEN.append(backend)
    return backend


def _run(frames, backend, policy):
    """The vision step alone in a real Bytewax run; returns items by seq and the metrics."""
    stage = VisionStage(backend, policy)
    got = run_step(call_vision, frames, stage)
    stage.pool.close()
    return {x.seq: x for x in got}, stage.stats


def _fifo(n, **kw):
    return VisionPolicy(
        max_in_flight=n, staleness_ms=0, order=ServeOrder.OLDEST, max_pending=10_000, **kw
    )


# -- protocol ----------------------------------------------------------------------


def test_ollama_request_is_what_ollama_expects():
    with OllamaServer(latency_ms=0) as srv:
        backend = _backend([srv.url], max_side=256, keep_alive="5m")
        frame = arena_frame(3)  # 320x180
        result = backend.infer(frame)
        body = srv.stats.bodies[-1]
        image = srv.stats.images[-1]
    assert isinstance(result, VisionResult) and result.seq == 3 and result.health == 100
    assert result.model_ms >= 0 and result.latency_ms > 0
    assert body["stream"] is False
    assert body["format"] == VISION_JSON_SCHEMA
    assert body["options"]["temperature"] == 0
    assert body["keep_alive"] == "5m"
    (msg,) = body["messages"]
    assert msg["role"] == "user" and "HUD" in msg["content"]
    # Raw base64 (no data: prefix) of a JPEG resized to the longest side asked for.
    decoded = cv2.imdecode(np.frombuffer(image, np.uint8), cv2.IMREAD_COLOR)
    assert image[:3] == b"\xff\xd8\xff" and decoded.shape == (144, 256, 3)


def test_openai_request_carries_data_uri_schema_and_key(monkeypatch):
    monkeypatch.setenv("FRAMEWAX_TEST_KEY", "sk-test-123")
    with OllamaServer(latency_ms=0) as srv:
        backend = OpenAIBackend(
            endpoints=[srv.url + "/v1"],
            model="m",
            api_key_env="FRAMEWAX_TEST_KEY",
            image_format="png",
            max_side=0,
            deadline_ms=3000,
        )
        result = backend.infer(solid(7, value=40))
        body, headers, png = srv.stats.bodies[-1], srv.stats.headers[-1], srv.stats.images[-1]
    assert isinstance(result, VisionResult) and result.seq == 7
    assert headers["Authorization"] == "Bearer sk-test-123"
    fmt = body["response_format"]
    assert fmt["type"] == "json_schema" and fmt["json_schema"]["schema"] == VISION_JSON_SCHEMA
    parts = body["messages"][0]["content"]
    url = next(p["image_url"]["url"] for p in parts if p["type"] == "image_url")
    assert url.startswith("data:image/png;base64,")
    assert cv2.imdecode(np.frombuffer(png, np.uint8), cv2.IMREAD_COLOR).shape == (90, 160, 3)
    assert body["temperature"] == 0


def test_openai_key_env_named_but_missing_is_a_config_error(monkeypatch):
    monkeypatch.delenv("NO_SUCH_KEY_VAR", raising=False)
    with pytest.raises(ConfigError, match="NO_SUCH_KEY_VAR"):
        build("vision.backend", "openai", {"model": "m", "api_key_env": "NO_SUCH_KEY_VAR"})


def test_unknown_backend_option_names_the_valid_ones():
    with pytest.raises(ConfigError, match=r"retrys.*expected one of.*retries"):
        build("vision.backend", "ollama", {"retrys": 2})


@pytest.mark.parametrize(
    "host",
    [
        "",
        "1.2.3.4",
        ":56789",
        "1.2.3.4:56789",
        "http://1.2.3.4",
        "https://1.2.3.4",
        "https://example.com:56789/path",
        "example.com:56789/path/",
        "[0001:002:003:0004::1]",
        "[0001:002:003:0004::1]:56789",
        "http://[0001:002:003:0004::1]",
        "0.0.0.0",
    ],
)
def test_ollama_host_is_read_as_the_official_client_reads_it(host):
    assert parse_ollama_host(host) == _parse_host(host)


def test_ollama_host_comes_from_the_environment(monkeypatch):
    with OllamaServer(latency_ms=0) as srv:
        monkeypatch.setenv("OLLAMA_HOST", srv.host)
        backend = OllamaBackend(preload=False)
        _OPEN.append(backend)
        assert backend.router.endpoints[0].url == srv.url
        assert isinstance(backend.infer(solid(0)), VisionResult)


def test_the_official_ollama_client_talks_to_the_server():
    with OllamaServer(latency_ms=0, models=["qwen2.5vl:3b"]) as srv:
        client = ollama.Client(host=srv.host)
        assert [m.model for m in client.list().models] == ["qwen2.5vl:3b"]
        png = encode_image(solid(0).image, fmt="png")
        reply = client.chat(
            model="qwen2.5vl:3b",
            messages=[{"role": "user", "content": "read the HUD", "images": [png]}],
            format=VISION_JSON_SCHEMA,
            options={"temperature": 0},
        )
        parsed = VisionResult.from_json(reply.message.content, stream_id="s", seq=0, backend="x")
        assert parsed.health == 100 and reply.done and reply.total_duration >= 0
        assert srv.stats.images[-1] == png  # the client's base64 decodes to what it sent
        gen = client.generate(model="qwen2.5vl:3b", prompt="hi", format="json")
        assert json.loads(gen.response)["scene"] == "gameplay"
        streamed = list(
            client.chat(
                model="qwen2.5vl:3b", messages=[{"role": "user", "content": "x"}], stream=True
            )
        )
        assert streamed[-1].done and "".join(c.message.content for c in streamed)


def test_a_strict_server_404s_an_unknown_model_and_it_is_not_retried():
    with OllamaServer(latency_ms=0, strict_models=True, models=["other:1b"]) as srv:
        backend = _backend([srv.url], model="missing:7b")
        with pytest.raises(VisionError) as ex:
            backend.infer(solid(0))
        assert ex.value.reason == "http_404" and "not found" in ex.value.detail
        assert srv.stats.requests["POST /api/chat"] == 1


def test_warm_up_names_the_server_that_does_not_answer():
    url = f"http://127.0.0.1:{_free_port()}"
    with pytest.raises(VisionError, match=url.replace(".", r"\.")):
        _backend([url], retries=0).warm_up()


# -- faults ------------------------------------------------------------------------

EXPECTED = {
    "500": "failed(http_500)",
    "503": "failed(http_503)",
    "timeout": "failed(timeout)",
    "reset": "failed(connection)",
    "drip": "failed(timeout)",
    "empty": "failed(parse)",
    "prose": "failed(parse)",
    "invalid_json": "failed(parse)",
}


@pytest.mark.parametrize("fault", FAULTS)
def test_every_fault_ends_in_its_outcome_and_the_flow_goes_on(fault):
    retries = 2
    with OllamaServer(latency_ms=5, parallel=2, hang_s=5.0, drip_interval_s=0.05) as srv:
        # A retried fault must outlast the retries to fail the frame; a hang
        # uses the whole deadline, so it is not retried.
        srv.inject(fault, retries + 1 if fault in ("500", "503", "reset") else 1)
        backend = _backend([srv.url], retries=retries, deadline_ms=600.0, breaker_failures=0)
        frames = [solid(i, value=i * 20) for i in range(5)]
        got, metrics = _run(frames, backend, _fifo(1))
    assert sorted(got) == list(range(5))
    first = got[0]
    assert isinstance(first, Outcome) and first.label == EXPECTED[fault], first
    assert all(isinstance(got[i], VisionResult) for i in range(1, 5))
    if fault == "prose":
        assert "first-person shooter" in first.detail  # the raw text is kept
    assert metrics.failures[first.reason] == 1


def test_drip_is_cut_at_the_total_deadline_not_the_read_timeout():
    with OllamaServer(latency_ms=0, drip_interval_s=0.05, hang_s=5) as srv:
        srv.inject("drip")
        backend = _backend([srv.url], retries=0, deadline_ms=400.0)
        t0 = time.monotonic()
        with pytest.raises(VisionError) as ex:
            backend.infer(solid(0))
        took = time.monotonic() - t0
    assert ex.value.reason == "timeout"
    assert took < 2.0  # each byte came within the read timeout; only the deadline stops it


def test_503s_are_retried_with_backoff_and_the_frame_is_processed():
    with OllamaServer(latency_ms=0) as srv:
        srv.inject("503", 2)
        backend = _backend([srv.url], retries=3)
        result = backend.infer(solid(0))
        assert srv.stats.requests["POST /api/chat"] == 3
    ep = backend.metrics()["endpoints"][0]
    assert isinstance(result, VisionResult) and ep["retries"] == 2 and ep["ok"] == 1


def test_backoff_doubles_with_jitter_and_stops_at_the_deadline():
    r = DeadlineRetry(
        total=5, backoff_factor=0.1, backoff_jitter=0.05, deadline=time.monotonic() + 60
    )
    waits = []
    for _ in range(3):
        r = r.increment(method="POST", url="/api/chat", error=ConnectionResetError())
        waits.append(r.get_backoff_time())
    for n, w in enumerate(waits):
        assert 0.1 * 2**n <= w < 0.1 * 2**n + 0.05
    late = DeadlineRetry(total=5, backoff_factor=10, deadline=time.monotonic() + 0.2)
    late = late.increment(method="POST", url="/", error=ConnectionResetError())
    assert late.get_backoff_time() <= 0.2
    gone = DeadlineRetry(total=5, deadline=time.monotonic() - 1)
    with pytest.raises(Exception, match="Max retries"):
        gone.increment(method="POST", url="/", error=ConnectionResetError())


# -- concurrency and routing ---------------------------------------------------------


def test_many_calls_really_in_flight_never_over_the_bound():
    with OllamaServer(latency_ms=150, parallel=16) as srv:
        backend = _backend([srv.url], max_in_flight=8)
        frames = [solid(i, value=i) for i in range(40)]
        got, metrics = _run(frames, backend, _fifo(8))
        peak = srv.stats.peak_active
    assert all(isinstance(got[i], VisionResult) for i in range(40))
    assert 2 <= peak <= 8 and metrics.completed == 40  # concurrent at the server, never over


def test_least_outstanding_routing_spreads_over_endpoints():
    with OllamaServer(latency_ms=60) as a, OllamaServer(latency_ms=60) as b:
        backend = _backend([{"url": a.url, "max_in_flight": 1}, {"url": b.url, "max_in_flight": 1}])
        frames = [solid(i, value=i) for i in range(20)]
        got, _ = _run(frames, backend, _fifo(4))
        served = a.stats.requests["POST /api/chat"], b.stats.requests["POST /api/chat"]
        peaks = a.stats.peak_open, b.stats.peak_open
    assert all(isinstance(got[i], VisionResult) for i in range(20))
    assert sum(served) == 20 and min(served) >= 1  # both served (the split: test_endpoints)
    assert peaks == (1, 1)  # a slot each, never queued behind it


def test_a_dead_endpoint_trips_its_breaker_and_the_other_takes_the_load():
    dead = f"http://127.0.0.1:{_free_port()}"
    with OllamaServer(latency_ms=20, parallel=4) as live:
        backend = _backend(
            [dead, live.url], max_in_flight=2, retries=0, breaker_failures=2, breaker_cooldown_s=60
        )
        frames = [solid(i, value=i) for i in range(30)]
        got, _ = _run(frames, backend, _fifo(2))
    eps = {e["url"]: e for e in backend.metrics()["endpoints"]}
    failed = [g for g in got.values() if isinstance(g, Outcome)]
    assert sorted(got) == list(range(30))
    # each call to the dead server failed its frame, until the breaker shut it out
    assert eps[dead]["breaker"] == "open" and 2 <= eps[dead]["requests"] <= 3
    assert [f.label for f in failed] == ["failed(connection)"] * eps[dead]["requests"]
    assert eps[live.url]["ok"] == 30 - len(failed)


def test_with_every_breaker_open_frames_fail_fast_as_unavailable():
    dead = f"http://127.0.0.1:{_free_port()}"
    backend = _backend([dead], retries=0, breaker_failures=1, breaker_cooldown_s=60)
    t0 = time.monotonic()
    got, _ = _run([solid(i, value=i) for i in range(10)], backend, _fifo(1))
    assert time.monotonic() - t0 < 10
    labels = [got[i].label for i in range(10)]
    assert labels[0] == "failed(connection)" and set(labels[1:]) == {"failed(unavailable)"}


def test_the_breaker_lets_a_probe_through_after_cooldown_and_closes():
    with OllamaServer(latency_ms=0) as srv:
        srv.inject("500", 2)
        backend = _backend([srv.url], retries=0, breaker_failures=2, breaker_cooldown_s=0.2)
        for _ in range(2):
            with pytest.raises(VisionError):
                backend.infer(solid(0))
        with pytest.raises(VisionError, match="breaker"):
            backend.infer(solid(0))
        time.sleep(0.25)
        assert isinstance(backend.infer(solid(0)), VisionResult)
    assert backend.metrics()["endpoints"][0]["breaker"] == "closed"


def test_adaptive_limits_run_against_a_real_server_within_their_bounds():
    # How the limit moves is tested on a fake clock (test_endpoints); here, that the
    # adaptive backend reads every frame through a server that answers 503 past 2 slots.
    with OllamaServer(latency_ms=30, parallel=2, max_queue=0) as srv:
        backend = _backend(
            [srv.url], max_in_flight=8, adaptive=True, adaptive_min_in_flight=1, retries=5
        )
        got, _ = _run([solid(i, value=i % 250) for i in range(40)], backend, _fifo(8))
        peak = srv.stats.peak_active
    assert sorted(got) == list(range(40))
    assert all(isinstance(g, VisionResult) for g in got.values())
    ep = backend.metrics()["endpoints"][0]
    assert 1 <= ep["limit"] <= 8 and ep["peak_in_flight"] <= 8 and peak <= 2


def test_a_stale_frame_waiting_for_a_slot_is_dropped_not_sent():
    with OllamaServer(latency_ms=300) as srv:
        backend = _backend([srv.url], max_in_flight=1)
        frames = [solid(i, value=i) for i in range(4)]
        got, _ = _run(
            frames,
            backend,
            VisionPolicy(max_in_flight=1, staleness_ms=200, order=ServeOrder.OLDEST),
        )
        sent = srv.stats.requests["POST /api/chat"]
    assert isinstance(got[0], VisionResult)
    assert [got[i].label for i in (1, 2, 3)] == ["dropped(stale)"] * 3 and sent == 1


def test_bad_frames_fail_alone():
    with OllamaServer(latency_ms=0) as srv:
        backend = _backend([srv.url])
        bad = Frame("s", 1, time.time(), np.zeros((10, 10), np.uint8))
        got, _ = _run([solid(0), bad, solid(2, value=9)], backend, _fifo(2))
    assert got[1].label == "failed(image)"
    assert isinstance(got[0], VisionResult) and isinstance(got[2], VisionResult)


def test_ollama_preset_config_builds_against_ollama_host(monkeypatch):
    monkeypatch.setenv("OLLAMA_HOST", "10.1.2.3:4567")
    cfg = load_config("flows/configs/ollama.toml")
    backend = build("vision.backend", cfg.vision.backend, cfg.vision.options, max_in_flight=8)
    _OPEN.append(backend)
    assert isinstance(backend, OllamaBackend)
    assert backend.router.endpoints[0].url == "http://10.1.2.3:4567"
    assert backend.router.endpoints[0].max_in_flight == 8
