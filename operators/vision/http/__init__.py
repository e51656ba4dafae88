"""Vision models behind HTTP: Ollama's ``/api/chat`` and OpenAI-compatible chat completions.

:mod:`.client` is the JSON client (urllib3 pools, total deadlines, retries);
:mod:`.endpoints` routes calls over endpoints with per-endpoint limits,
circuit breakers and adaptive concurrency; :mod:`.backends` turns a frame into
a request and a response into a :class:`~operators.reading.VisionResult`.
"""
