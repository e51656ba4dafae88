"""Actions: an agent's action turned into input for a real game, released on every path out.

:mod:`.executor` maps ``(move, turn, pitch, command)`` onto keys, buttons and
mouse motion through a :class:`~operators.actions.executor.Keymap`, sends only
what changed, rate-limits, and releases everything it holds on reset, close,
errors and signals; :mod:`.xinput` is the X11 XTEST input device. A new
input device (a gamepad, Windows) implements
:class:`~operators.actions.executor.InputDevice`.
"""

from operators.actions.executor import ActionExecutor, ActResult, InputDevice, Keymap, ObserveOnly

__all__ = ["ActResult", "ActionExecutor", "InputDevice", "Keymap", "ObserveOnly"]
