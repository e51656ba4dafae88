"""The project's exception types, in one place.

Failures of single frames never raise out of an operator: they become
``failed(reason)`` ledger outcomes (see :mod:`operators.types`). The
exceptions here are for bad configuration (raised when a flow is built), for
a stage reporting a per-frame failure to the operator that wraps it, and for
programming errors in the contracts.
"""

from __future__ import annotations


class FramewaxError(Exception):
    """Base class of every framewax exception."""


class ConfigError(FramewaxError, ValueError):
    """A configuration key or value is wrong; the message names both."""


class StageError(FramewaxError):
    """A stage failed on one item; the operator turns it into ``failed(reason)``.

    ``reason`` is a short machine-readable tag (``"parse"``, ``"timeout"``,
    ``"http_503"``...), ``detail`` is for humans and debugging (raw model
    text, the exception message).
    """

    def __init__(self, reason: str, detail: str = "") -> None:
        self.reason = reason
        self.detail = detail
        super().__init__(f"{reason}: {detail}" if detail else reason)


class VisionError(StageError):
    """A vision backend could not produce a result for a frame."""


class EncodeError(StageError):
    """The batch encoder could not encode a frame."""


class RecordingError(FramewaxError):
    """A recorded stream is missing, corrupt or truncated; names file and position."""


class LedgerError(FramewaxError):
    """The ledger contract was broken (a seq resolved twice, or never captured)."""
