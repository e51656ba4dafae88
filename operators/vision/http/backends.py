"""Vision backends behind HTTP: Ollama's native API and OpenAI-compatible chat completions.

Both share :class:`HttpVisionBackend`: frames are resized (``max_side``) and
encoded (JPEG or PNG) before sending; calls are routed over one or more
endpoints by a :class:`~operators.vision.http.endpoints.Router` (per-endpoint limits,
least outstanding, circuit breakers, optional adaptive concurrency); each call
has a total deadline and retries with backoff and jitter
(:mod:`operators.vision.http.client`). Structured output is asked for with the
vision result's JSON schema and validated; anything else is
``failed(parse)`` with the raw text kept.

Failure reasons a call can end with: ``timeout`` (no complete reply within
the deadline, slow drip included), ``connection`` (refused, reset),
``http_<status>`` (e.g. ``http_503`` after the retries), ``parse`` (prose,
empty content, invalid JSON, schema violation), ``server`` (an ``error`` in a
200 reply), ``unavailable`` (every endpoint's breaker open).
"""

from __future__ import annotations

import base64
import dataclasses
import json
import logging
import os
import time
from abc import ABC, abstractmethod
from collections import Counter
from collections.abc import Mapping, Sequence
from typing import Any

import cv2
import numpy as np

from operators.errors import VisionError
from operators.frame import Frame, image_problem
from operators.reading import VISION_JSON_SCHEMA, VisionResult, parse_reading
from operators.vision.http.client import JsonClient, RetryPolicy, parse_ollama_host
from operators.vision.http.endpoints import (
    AdaptivePolicy,
    BreakerPolicy,
    EndpointState,
    Lease,
    Router,
)

__all__ = [
    "DEFAULT_PROMPT",
    "HttpVisionBackend",
    "OllamaBackend",
    "OpenAIBackend",
    "encode_image",
]

logger = logging.getLogger(__name__)

DEFAULT_PROMPT = (
    "You see one frame of a first-person shooter (Counter-Strike 2 or similar). "
    "Read the HUD: health, armor, ammo in the magazine, reserve ammo, money. "
    "Classify the scene as gameplay, death, menu, loading or unknown. "
    "List every visible enemy player as a box in relative coordinates (0..1, x0 y0 top-left, "
    "x1 y1 bottom-right). Use null for any HUD number you cannot read. "
    "Answer with JSON only, following the given schema."
)


def encode_image(
    image: np.ndarray, max_side: int = 768, fmt: str = "jpeg", quality: int = 85
) -> bytes:
    """An RGB frame resized so its longest side is at most ``max_side`` (0: as is), as JPEG/PNG bytes."""
    problem = image_problem(image)
    if problem is not None:
        raise VisionError("image", problem)
    h, w = image.shape[:2]
    if max_side and max(h, w) > max_side:
        scale = max_side / max(h, w)
        image = cv2.resize(
            image,
            (max(1, round(w * scale)), max(1, round(h * scale))),
            interpolation=cv2.INTER_AREA,
        )
    bgr = cv2.cvtColor(image, cv2.COLOR_RGB2BGR)
    if fmt == "jpeg":
        ok, buf = cv2.imencode(".jpg", bgr, [cv2.IMWRITE_JPEG_QUALITY, int(quality)])
    elif fmt == "png":
        ok, buf = cv2.imencode(".png", bgr, [cv2.IMWRITE_PNG_COMPRESSION, 1])
    else:
        msg = f"image_format must be 'jpeg' or 'png'; got {fmt!r}"
        raise ValueError(msg)
    if not ok:
        raise VisionError("image", f"could not encode a {w}x{h} frame as {fmt}")
    return buf.tobytes()


def _endpoint_specs(
    endpoints: Sequence[str | Mapping[str, Any]], default_limit: int
) -> list[tuple[str, int]]:
    specs = []
    for i, ep in enumerate(endpoints):
        if isinstance(ep, str):
            specs.append((ep, default_limit))
        elif isinstance(ep, Mapping):
            unknown = set(ep) - {"url", "max_in_flight"}
            if unknown or "url" not in ep:
                msg = (
                    f"endpoints[{i}] = {dict(ep)!r}: expected a URL or a table with 'url' and "
                    f"optional 'max_in_flight'"
                )
                raise ValueError(msg)
            specs.append((str(ep["url"]), int(ep.get("max_in_flight", default_limit))))
        else:
            msg = f"endpoints[{i}] = {ep!r}: expected a URL string or a table"
            raise ValueError(msg)
    if not specs:
        msg = "endpoints is empty"
        raise ValueError(msg)
    return specs


class HttpVisionBackend(ABC):
    """A vision-language model behind HTTP, on one or several endpoints.

    The vision operator calls :meth:`reserve` (non-blocking) when it has a
    frame to send and a slot in its pool, then :meth:`infer_on` on a pool
    thread. :meth:`infer` does both, for use outside a flow.
    """

    name = "http"
    enforces_deadline = True
    path = ""

    def __init__(
        self,
        *,
        endpoints: Sequence[str | Mapping[str, Any]],
        model: str,
        prompt: str = DEFAULT_PROMPT,
        max_side: int = 768,
        image_format: str = "jpeg",
        jpeg_quality: int = 85,
        max_in_flight: int = 4,
        endpoint_max_in_flight: int | None = None,
        deadline_ms: float = 10_000.0,
        connect_timeout_s: float = 3.0,
        retries: int = 3,
        backoff_s: float = 0.1,
        backoff_max_s: float = 2.0,
        jitter_s: float = 0.1,
        retry_statuses: Sequence[int] = (500, 502, 503, 504),
        breaker_failures: int = 5,
        breaker_cooldown_s: float = 5.0,
        adaptive: bool = False,
        adaptive_min_in_flight: int = 1,
        adaptive_tolerance: float = 1.5,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        if image_format not in ("jpeg", "png"):
            msg = f"image_format must be 'jpeg' or 'png'; got {image_format!r}"
            raise ValueError(msg)
        if not 1 <= jpeg_quality <= 100:
            msg = f"jpeg_quality must be in 1..100; got {jpeg_quality}"
            raise ValueError(msg)
        if max_side < 0:
            msg = f"max_side must be >= 0 (0: send frames at full size); got {max_side}"
            raise ValueError(msg)
        if deadline_ms <= 0:
            msg = f"deadline_ms must be > 0; got {deadline_ms}"
            raise ValueError(msg)
        self.model = model
        self.prompt = prompt
        self.max_side, self.image_format, self.jpeg_quality = max_side, image_format, jpeg_quality
        self.deadline_s = deadline_ms / 1000.0
        self.retry = RetryPolicy(retries, backoff_s, backoff_max_s, jitter_s, tuple(retry_statuses))
        breaker = BreakerPolicy(breaker_failures, breaker_cooldown_s)
        adapt = AdaptivePolicy(adaptive, adaptive_min_in_flight, adaptive_tolerance)
        states: list[EndpointState] = []
        try:
            for url, limit in _endpoint_specs(endpoints, endpoint_max_in_flight or max_in_flight):
                client = JsonClient(
                    url,
                    maxsize=limit,
                    connect_timeout_s=connect_timeout_s,
                    read_timeout_s=self.deadline_s,
                    retry=self.retry,
                    headers=headers,
                )
                states.append(EndpointState(client.base_url, limit, adapt, breaker, client=client))
        except Exception:
            for st in states:
                st.client.close()
            raise
        self.router = Router(states)
        self.failures: Counter[str] = Counter()

    # -- protocol-specific parts -------------------------------------------------
    @abstractmethod
    def payload(self, image_b64: str) -> dict[str, Any]:
        """The request body for one frame."""

    @abstractmethod
    def content(self, body: Any) -> tuple[str, float]:
        """The model's text and the server's model time (ms, 0 if unknown) from a 200 reply."""

    @abstractmethod
    def probe(self, ep: EndpointState) -> None:
        """Check that ``ep`` answers (raises ``VisionError``); log what is worth knowing."""

    # -- calls -------------------------------------------------------------------
    def reserve(self) -> Lease | None:
        return self.router.reserve()

    def infer(self, frame: Frame) -> VisionResult:
        """Reserve a slot (waiting at most the deadline) and call the model."""
        give_up = time.monotonic() + self.deadline_s
        while (lease := self.reserve()) is None:
            if time.monotonic() > give_up:
                raise VisionError("timeout", "no endpoint had a free slot within the deadline")
            time.sleep(0.002)
        return self.infer_on(lease, frame)

    def infer_on(self, lease: Lease, frame: Frame) -> VisionResult:
        t0 = time.monotonic()
        ep = lease.endpoint
        if ep is None:
            self.failures["unavailable"] += 1
            raise VisionError("unavailable", "every endpoint's circuit breaker is open")
        try:
            image = base64.b64encode(
                encode_image(frame.image, self.max_side, self.image_format, self.jpeg_quality)
            ).decode("ascii")
            reply = ep.client.post(
                self.path,
                self.payload(image),
                deadline_s=max(0.001, self.deadline_s - (time.monotonic() - t0)),
                on_retry=lambda cause: self.router.retried(ep, cause),
            )
            if reply.status != 200:
                text = reply.body[:300].decode("utf-8", "replace")
                raise VisionError(f"http_{reply.status}", f"{ep.url}{self.path}: {text}")
            try:
                body = json.loads(reply.body)
            except (ValueError, UnicodeDecodeError) as ex:
                raise VisionError(
                    "parse", f"reply is not JSON: {reply.body[:300].decode('utf-8', 'replace')!r}"
                ) from ex
            if isinstance(body, dict) and body.get("error"):
                raise VisionError("server", f"{ep.url}: {body['error']}")
            text, model_ms = self.content(body)
            if not text.strip():
                raise VisionError("parse", f"empty content from {ep.url}: {json.dumps(body)[:300]}")
            latency = (time.monotonic() - t0) * 1000.0
            result = parse_reading(
                text,
                stream_id=frame.stream_id,
                seq=frame.seq,
                backend=self.name,
                latency_ms=latency,
            )
        except VisionError as ex:
            self.failures[ex.reason] += 1
            transport = ex.reason in ("timeout", "connection") or (ex.reason.startswith("http_5"))
            self.router.failed(lease, ex.reason, transport=transport)
            raise
        except Exception as ex:
            self.failures["error"] += 1
            self.router.failed(lease, "error", transport=False)
            raise VisionError("error", f"{type(ex).__name__}: {ex}") from ex
        self.router.succeeded(lease, latency)
        return dataclasses.replace(result, model_ms=model_ms)

    # -- lifecycle and numbers -----------------------------------------------------
    def warm_up(self) -> None:
        """Check the endpoints answer; fails (naming them) only if none does."""
        errors = []
        for ep in self.router.endpoints:
            try:
                self.probe(ep)
            except VisionError as ex:
                logger.warning("vision endpoint %s does not answer: %s", ep.url, ex.detail)
                errors.append(f"{ep.url}: {ex.detail}")
        if len(errors) == len(self.router.endpoints):
            raise VisionError(
                "connection",
                f"no {self.name} server answers ({'; '.join(errors)}); start one or point the "
                "config (or OLLAMA_HOST) at it",
            )

    def set_share(self, share: float) -> None:
        """Each endpoint's ``max_in_flight`` is for the whole cluster; this process takes
        ``share`` of it (see :meth:`~operators.vision.http.endpoints.Router.set_share`)."""
        self.router.set_share(share)

    def metrics(self) -> dict[str, Any]:
        """Per-endpoint numbers (requests, retries, failures by reason, latency, limit, breaker)."""
        return {"failures": dict(self.failures), "endpoints": self.router.snapshot()}

    def close(self) -> None:
        for ep in self.router.endpoints:
            ep.client.close()


class OllamaBackend(HttpVisionBackend):
    """Ollama's ``POST /api/chat`` (non-streaming, JSON-schema ``format``, temperature 0).

    The server is ``$OLLAMA_HOST`` (read as the official client reads it;
    default ``127.0.0.1:11434``) unless ``endpoints`` names servers, e.g. one
    Ollama per GPU: ``endpoints = [{url = "http://gpu0:11434", max_in_flight = 2}, ...]``.
    ``keep_alive`` keeps the model loaded; ``options`` are Ollama model options
    (``num_ctx``...). ``preload`` loads the model at start so the first frames
    do not pay for it.
    """

    name = "ollama"
    path = "/api/chat"

    def __init__(
        self,
        *,
        model: str = "qwen2.5vl:3b",
        endpoints: Sequence[str | Mapping[str, Any]] | None = None,
        keep_alive: str | int = "30m",
        options: Mapping[str, Any] | None = None,
        preload: bool = True,
        load_timeout_s: float = 120.0,
        **kwargs: Any,
    ) -> None:
        super().__init__(endpoints=endpoints or [parse_ollama_host()], model=model, **kwargs)
        self.keep_alive = keep_alive
        self.options = {"temperature": 0, **(options or {})}
        self.preload = preload
        self.load_timeout_s = load_timeout_s

    def payload(self, image_b64: str) -> dict[str, Any]:
        return {
            "model": self.model,
            "messages": [{"role": "user", "content": self.prompt, "images": [image_b64]}],
            "stream": False,
            "format": VISION_JSON_SCHEMA,
            "options": self.options,
            "keep_alive": self.keep_alive,
        }

    def content(self, body: Any) -> tuple[str, float]:
        try:
            text = body["message"]["content"]
        except (KeyError, TypeError) as ex:
            raise VisionError(
                "parse", f"no message.content in reply: {json.dumps(body)[:300]}"
            ) from ex
        if not isinstance(text, str):
            raise VisionError("parse", f"message.content is not text: {text!r}"[:300])
        total = body.get("total_duration")
        return text, float(total) / 1e6 if isinstance(total, int | float) else 0.0

    def probe(self, ep: EndpointState) -> None:
        # Only a server that does not answer at all fails the probe: any status
        # means something is listening, and its calls will say the rest.
        reply = ep.client.get("/api/version", deadline_s=5.0)
        if reply.status != 200:
            logger.warning("%s: GET /api/version answered %s", ep.url, reply.status)
        try:
            tags = ep.client.get("/api/tags", deadline_s=5.0).json()
            names = {m.get("name") for m in tags.get("models", [])} | {
                m.get("model") for m in tags.get("models", [])
            }
            wanted = {self.model, f"{self.model}:latest"}
            if names and not names & wanted:
                logger.warning(
                    "%s does not list model %r (it has %s); `ollama pull %s` there",
                    ep.url,
                    self.model,
                    sorted(n for n in names if n),
                    self.model,
                )
        except (VisionError, ValueError, AttributeError) as ex:
            logger.warning("%s: could not list models: %s", ep.url, ex)
        if self.preload:
            try:
                pre = ep.client.post(
                    "/api/chat",
                    {"model": self.model, "messages": [], "keep_alive": self.keep_alive},
                    deadline_s=self.load_timeout_s,
                )
                if pre.status != 200:
                    logger.warning("%s: preloading %r answered %s", ep.url, self.model, pre.status)
            except VisionError as ex:
                logger.warning("%s: preloading %r failed: %s", ep.url, self.model, ex.detail)


class OpenAIBackend(HttpVisionBackend):
    """OpenAI-compatible ``POST {base}/chat/completions`` (vLLM, llama.cpp server, LM Studio, Ollama's /v1).

    ``endpoints`` are base URLs ending in ``/v1`` (default ``$OPENAI_BASE_URL``
    or ``http://127.0.0.1:8000/v1``, vLLM's). The image goes as a data URI;
    ``response_format`` carries the JSON schema (``strict``). The API key is
    read from the environment variable ``api_key_env`` names (default
    ``OPENAI_API_KEY`` if set; local servers need none).
    """

    name = "openai"
    path = "/chat/completions"

    def __init__(
        self,
        *,
        model: str,
        endpoints: Sequence[str | Mapping[str, Any]] | None = None,
        api_key_env: str | None = None,
        max_tokens: int = 512,
        headers: Mapping[str, str] | None = None,
        **kwargs: Any,
    ) -> None:
        key_name = api_key_env or "OPENAI_API_KEY"
        key = os.environ.get(key_name)
        if api_key_env and not key:
            msg = f"api_key_env = {api_key_env!r} but that environment variable is not set"
            raise ValueError(msg)
        hdrs = dict(headers or {})
        if key:
            hdrs["Authorization"] = f"Bearer {key}"
        base = endpoints or [os.environ.get("OPENAI_BASE_URL") or "http://127.0.0.1:8000/v1"]
        super().__init__(endpoints=base, model=model, headers=hdrs, **kwargs)
        self.max_tokens = max_tokens

    def payload(self, image_b64: str) -> dict[str, Any]:
        mime = "image/jpeg" if self.image_format == "jpeg" else "image/png"
        return {
            "model": self.model,
            "messages": [
                {
                    "role": "user",
                    "content": [
                        {"type": "text", "text": self.prompt},
                        {
                            "type": "image_url",
                            "image_url": {"url": f"data:{mime};base64,{image_b64}"},
                        },
                    ],
                }
            ],
            "temperature": 0,
            "max_tokens": self.max_tokens,
            "stream": False,
            "response_format": {
                "type": "json_schema",
                "json_schema": {
                    "name": "vision_result",
                    "schema": VISION_JSON_SCHEMA,
                    "strict": True,
                },
            },
        }

    def content(self, body: Any) -> tuple[str, float]:
        try:
            msg = body["choices"][0]["message"]
        except (KeyError, IndexError, TypeError) as ex:
            raise VisionError(
                "parse", f"no choices[0].message in reply: {json.dumps(body)[:300]}"
            ) from ex
        if msg.get("refusal"):
            raise VisionError("parse", f"the model refused: {msg['refusal']}"[:500])
        text = msg.get("content") or ""
        if not isinstance(text, str):
            raise VisionError("parse", f"message.content is not text: {text!r}"[:300])
        return text, 0.0

    def probe(self, ep: EndpointState) -> None:
        reply = ep.client.get("/models", deadline_s=5.0)
        if reply.status != 200:
            logger.warning("%s: GET /models answered %s", ep.url, reply.status)
