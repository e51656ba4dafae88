"""``python -m flows.ollama_server``: the emulated Ollama / OpenAI-compatible server.

The server itself is :mod:`operators.testing.ollama_server` (a test double, with
the fake clocks); this module is where users type its command.
"""

from operators.testing.ollama_server import main

if __name__ == "__main__":
    main()
