"""Actions to a real game: the agent's action becomes keyboard and mouse input.

The env's action ``MultiDiscrete([3, 5, 10, 8])`` is ``(move, turn, pitch,
command)``, as the arena reads it:

- ``move``: 0 none, 1 forward, 2 back (keys, held while the action says so);
- ``turn``: 0 none, 1 / 2 a small step left / right, 3 / 4 a big one
  (relative mouse motion, ``turn_px`` pixels per step; or, for a game that turns
  by keys, such as Doom, the ``turn_left`` / ``turn_right`` keys held while the
  action turns, with ``turn_fast`` for a big one);
- ``pitch``: an absolute level 0..9 (relative mouse motion of ``pitch_px``
  pixels per level changed);
- ``command``: 0 none, then ``fire``, ``reload``, ``strafe_left``,
  ``strafe_right``, ``buy``, ``crouch``, ``walk``, each sent as its
  :class:`Kind` says: ``hold`` (down while the command is chosen), ``tap``
  (pressed and released once when it is chosen) or ``click`` (pressed and
  released on every step it is chosen).

An :class:`ActionExecutor` turns each action into the presses, releases and
motion that take the input from what the last action held to what this one
holds, on an :class:`InputDevice` (:class:`~operators.actions.xinput.XTestDevice` on
X11; anything with the protocol elsewhere). It never leaves a key down by
itself: :meth:`ActionExecutor.release_all` runs on reset, close, errors and
signals (the env calls it), and it releases nothing it did not press. Plain
logic with an injected clock: no Bytewax, no display needed to test it.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from enum import Enum
from typing import Any, Protocol, runtime_checkable

from operators.clock import SYSTEM_CLOCK, Clock
from operators.errors import ConfigError
from operators.options import at_least, choice

__all__ = [
    "COMMANDS",
    "MOVES",
    "TURNS",
    "TURN_FAST",
    "ActResult",
    "ActionExecutor",
    "InputDevice",
    "Keymap",
    "Kind",
    "ObserveOnly",
    "RecordingDevice",
]

COMMANDS: tuple[str, ...] = (
    "fire",
    "reload",
    "strafe_left",
    "strafe_right",
    "buy",
    "crouch",
    "walk",
)
"""Command ``i`` (1-based in the action) is ``COMMANDS[i - 1]``."""
MOVES: tuple[str, ...] = ("forward", "back")
"""Move ``i`` (1-based) is ``MOVES[i - 1]``."""

TURNS: tuple[str, ...] = ("turn_left", "turn_right")
"""Keys a game may turn by instead of the mouse: turn 1 and 3 hold ``turn_left``, 2 and 4
``turn_right`` (where the keymap names them; else the mouse moves by ``turn_px``)."""
TURN_FAST = "turn_fast"
"""A key held with the turn key for a big turn (3, 4) in a game that turns by keys
(Doom's run key: the turn is twice as fast), as :func:`operators.capture.doom.doom_buttons`
holds ``SPEED`` in lockstep."""


class Kind(str, Enum):
    """How a command's key or button is sent."""

    HOLD = "hold"
    """Down while the command is chosen, released when it is not."""
    TAP = "tap"
    """Pressed and released once, when the command is chosen after another."""
    CLICK = "click"
    """Pressed and released on every step the command is chosen."""


@runtime_checkable
class InputDevice(Protocol):
    """Sends input to the game. Key names are the device's (X11 keysym names such as
    ``"w"``, ``"Shift_L"``; mouse buttons ``"Button1"``..``"Button5"``)."""

    def check(self, key: str) -> str | None:
        """Why ``key`` cannot be sent, or ``None`` (checked when the executor is built)."""

    def press(self, key: str) -> None: ...

    def release(self, key: str) -> None: ...

    def move(self, dx: int, dy: int) -> None:
        """Relative mouse motion, pixels."""

    def focused(self) -> bool:
        """Whether the game has the input focus (input is sent only then)."""

    def flush(self, wait: bool = False) -> None:
        """Send what is queued; ``wait``: until the game's side has taken it (releases must
        land even if the process ends right after)."""

    def close(self) -> None:
        """Close the device once everything sent has landed."""


@dataclass(frozen=True)
class Keymap:
    """What each part of an action sends. These are the ``[actions]`` config keys.

    The default is Counter-Strike 2's: WASD, mouse 1 fires, R reloads, B buys,
    Ctrl crouches, Shift walks.
    """

    keys: Mapping[str, str] = field(
        default_factory=lambda: {
            "forward": "w",
            "back": "s",
            "fire": "Button1",
            "reload": "r",
            "strafe_left": "a",
            "strafe_right": "d",
            "buy": "b",
            "crouch": "Control_L",
            "walk": "Shift_L",
        }
    )
    """Key or button per move, turn and command; a command left out (or set to ``""`` in a
    config, over the defaults) is not sent."""
    kinds: Mapping[str, Kind] = field(
        default_factory=lambda: {
            "fire": Kind.HOLD,
            "reload": Kind.TAP,
            "strafe_left": Kind.HOLD,
            "strafe_right": Kind.HOLD,
            "buy": Kind.TAP,
            "crouch": Kind.HOLD,
            "walk": Kind.HOLD,
        }
    )
    """``hold``, ``tap`` or ``click`` per command (default ``hold``)."""
    turn_px: Sequence[int] = (0, -40, 40, -160, 160)
    """Horizontal mouse motion for turn 0..4, pixels."""
    pitch_px: int = 30
    """Vertical mouse motion per pitch level changed, pixels (positive: down)."""

    def __post_init__(self) -> None:
        names = (*MOVES, *TURNS, TURN_FAST, *COMMANDS)
        # "" unsets a default: that move or command sends nothing
        object.__setattr__(self, "keys", {k: v for k, v in self.keys.items() if v != ""})
        for name, key in self.keys.items():
            if name not in names:
                msg = f"actions.keys.{name}: not a move or command; expected one of {list(names)}"
                raise ConfigError(msg)
            if not isinstance(key, str) or not key:
                msg = f"actions.keys.{name} = {key!r}: expected a key name such as 'w'"
                raise ConfigError(msg)
        kinds = {}
        for name, kind in self.kinds.items():
            if name not in COMMANDS:
                msg = f"actions.kinds.{name}: not a command; expected one of {list(COMMANDS)}"
                raise ConfigError(msg)
            kinds[name] = choice(Kind, kind, f"actions.kinds.{name}")
        object.__setattr__(self, "kinds", kinds)
        turn = list(self.turn_px)
        if len(turn) != 5 or not all(isinstance(v, int) and not isinstance(v, bool) for v in turn):
            msg = f"actions.turn_px = {turn!r}: expected 5 integers (pixels for turn 0..4)"
            raise ConfigError(msg)
        object.__setattr__(self, "turn_px", tuple(turn))
        if isinstance(self.pitch_px, bool) or not isinstance(self.pitch_px, int):
            msg = f"actions.pitch_px = {self.pitch_px!r}: expected an integer (pixels per level)"
            raise ConfigError(msg)

    def kind(self, command: str) -> Kind:
        return self.kinds.get(command, Kind.HOLD)


@dataclass(frozen=True)
class ActResult:
    """What :meth:`ActionExecutor.act` did: ``acted`` (input sent), when, and if not, why."""

    acted: bool
    at: float
    """When the input was sent (or skipped), on the executor's clock."""
    reason: str = ""
    """Why nothing was sent: ``not focused``, ``rate``, ``observe only``."""


class ActionExecutor:
    """Applies actions to an :class:`InputDevice`, holding exactly what the last action holds.

    ``max_hz`` bounds how often input is sent, by a token bucket: ``max_hz`` a second
    in the long run, bursts of ``BURST`` (a control loop's jitter is no reason to skip a
    step); an action beyond it is skipped (``acted`` false, reason ``rate``). 0: no bound.
    Every key named in ``keymap`` is checked against the device when the executor is
    built, so a bad key name fails then, naming it.

    >>> from operators.testing import FakeClock
    >>> dev = RecordingDevice()
    >>> ex = ActionExecutor(dev, Keymap(), clock=FakeClock())
    >>> ex.act((1, 2, 0, 4)).acted, dev.events
    (True, [('press', 'd'), ('press', 'w'), ('move', 40, 0)])
    >>> dev.events.clear(); ex.act((0, 0, 0, 0)).acted, sorted(dev.events)
    (True, [('release', 'd'), ('release', 'w')])
    """

    BURST = 2.0

    def __init__(
        self,
        device: InputDevice,
        keymap: Keymap | None = None,
        *,
        max_hz: float = 0.0,
        repeat_held: bool = False,
        clock: Clock = SYSTEM_CLOCK,
    ) -> None:
        at_least("actions.max_hz", max_hz, 0)
        self.repeat_held = bool(repeat_held)
        self.device = device
        self.keymap = keymap or Keymap()
        for name, key in self.keymap.keys.items():
            problem = device.check(key)
            if problem is not None:
                msg = f"actions.keys.{name} = {key!r}: {problem}"
                raise ConfigError(msg)
        self.max_hz = float(max_hz)
        self.clock = clock
        self.held: set[str] = set()
        self.pitch = 0
        self.command = 0
        self.tokens = self.BURST
        self.last_at: float | None = None
        self._lock = threading.Lock()  # the agent's thread acts; a signal may release

    def act(self, action: Sequence[int]) -> ActResult:
        """Send what takes the input from the last action to ``action``."""
        move, turn, pitch, command = (int(a) for a in action)
        now = self.clock.now()
        with self._lock:
            if not self.device.focused():
                self._release_all()
                self.command = 0
                return ActResult(False, now, "not focused")
            if self.max_hz > 0:
                if self.last_at is not None:
                    refill = (now - self.last_at) * self.max_hz
                    self.tokens = min(self.BURST, self.tokens + refill)
                self.last_at = now
                if self.tokens < 1.0:
                    return ActResult(False, now, "rate")
                self.tokens -= 1.0
            km = self.keymap
            want: set[str] = set()
            if 1 <= move <= len(MOVES) and MOVES[move - 1] in km.keys:
                want.add(km.keys[MOVES[move - 1]])
            turn_key = TURNS[(turn - 1) % 2] if turn in (1, 2, 3, 4) else None
            turn_by_key = turn_key in km.keys
            if turn_by_key:
                want.add(km.keys[turn_key])
                if turn in (3, 4) and TURN_FAST in km.keys:
                    want.add(km.keys[TURN_FAST])
            name = COMMANDS[command - 1] if 1 <= command <= len(COMMANDS) else None
            key = km.keys.get(name) if name else None
            kind = km.kind(name) if name else None
            if key is not None and kind is Kind.HOLD:
                want.add(key)
            for k in sorted(self.held - want):
                self.device.release(k)
                self.held.discard(k)
            pressed = want - self.held
            for k in sorted(want - self.held):
                self.device.press(k)
                self.held.add(k)
            if self.repeat_held:
                # let go and pressed again at once (one flush: the game reads both between
                # two of its frames, and sees the key down throughout): a game that dropped
                # its key state (Doom, at a new episode) has it down again now. A second
                # press alone does not do it: X and SDL take it for auto-repeat.
                for k in sorted(want & self.held - pressed):
                    self.device.release(k)
                    self.device.press(k)
            once = kind is Kind.CLICK or (kind is Kind.TAP and command != self.command)
            if key is not None and once and key not in self.held:
                self.device.press(key)
                self.device.release(key)
            self.command = command
            dx = km.turn_px[turn] if 0 <= turn < len(km.turn_px) and not turn_by_key else 0
            level = min(max(pitch, 0), 9)
            dy = (level - self.pitch) * km.pitch_px
            self.pitch = level
            if dx or dy:
                self.device.move(dx, dy)
            self.device.flush()
            return ActResult(True, now)

    def release_all(self) -> None:
        """Release every key and button this executor holds (safe to call any time, twice)."""
        with self._lock:
            self._release_all()
            self.command = 0

    def _release_all(self) -> None:
        for k in sorted(self.held):
            self.device.release(k)
        self.held.clear()
        self.device.flush(wait=True)

    def reset(self) -> None:
        """A new episode: release everything; pitch counts from level 0 again."""
        self.release_all()
        with self._lock:
            self.pitch = 0

    def close(self) -> None:
        self.release_all()
        self.device.close()


class ObserveOnly:
    """``[actions] executor = "none"``: the env observes and sends no input."""

    def __init__(self, *, clock: Clock = SYSTEM_CLOCK) -> None:
        self.clock = clock

    def act(self, action: Sequence[int]) -> ActResult:
        return ActResult(False, self.clock.now(), "observe only")

    def release_all(self) -> None:
        return None

    def reset(self) -> None:
        return None

    def close(self) -> None:
        return None


class RecordingDevice:
    """An :class:`InputDevice` that records what it is told (tests, dry runs); its
    ``down`` is the set of keys pressed and not released."""

    def __init__(self, focused: bool = True, known: Sequence[str] | None = None) -> None:
        self.events: list[tuple[Any, ...]] = []
        self.down: set[str] = set()
        self.is_focused = focused
        self.known = set(known) if known is not None else None

    def check(self, key: str) -> str | None:
        if self.known is not None and key not in self.known:
            return f"not a key this device knows; expected one of {sorted(self.known)}"
        return None

    def press(self, key: str) -> None:
        self.events.append(("press", key))
        self.down.add(key)

    def release(self, key: str) -> None:
        self.events.append(("release", key))
        self.down.discard(key)

    def move(self, dx: int, dy: int) -> None:
        self.events.append(("move", dx, dy))

    def focused(self) -> bool:
        return self.is_focused

    def flush(self, wait: bool = False) -> None:
        return None

    def close(self) -> None:
        return None
