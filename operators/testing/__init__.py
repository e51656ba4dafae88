"""Test doubles, for tests, benchmarks and notebooks: never used by a run itself.

:mod:`.fakes` has a clock that moves by hand and executors that run on demand
(stage timing tested without Bytewax or sleeping); :mod:`.ollama_server` is a
real HTTP server on loopback that speaks Ollama's and OpenAI's protocols,
with a model's timing, slots, queue and faults (``python -m flows.ollama_server``).
"""

from operators.testing.fakes import FakeClock, ManualExecutor

__all__ = ["FakeClock", "ManualExecutor"]
