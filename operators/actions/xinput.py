"""Keyboard and mouse input on X11 through the XTEST extension (python-xlib, pure Python).

:class:`XTestDevice` is the :class:`~operators.actions.InputDevice` behind
``[actions] executor = "xtest"``: key names are X keysym names (``"w"``,
``"space"``, ``"Shift_L"``, ``"Control_L"``), mouse buttons ``"Button1"``
(left) to ``"Button5"``; motion is relative. With ``window`` set, input goes
out only while a window whose title contains it has the input focus. The
events go to the X server as if typed: whatever window has the focus gets
them.
"""

from __future__ import annotations

import os

from operators.errors import ConfigError
from operators.x11 import title_has_focus

__all__ = ["XTestDevice"]

_BUTTONS = {f"Button{i}": i for i in range(1, 6)}


class XTestDevice:
    """XTEST input on ``display`` (default ``$DISPLAY``); ``window``: a title to require focus."""

    def __init__(self, display: str | None = None, window: str | None = None) -> None:
        try:
            from Xlib import XK, X
            from Xlib import display as xdisplay
            from Xlib.ext import xtest
        except ImportError as ex:
            msg = "actions.executor = 'xtest' needs python-xlib: pip install python-xlib"
            raise ConfigError(msg) from ex
        self._X, self._XK, self._xtest = X, XK, xtest
        name = display or os.environ.get("DISPLAY")
        if not name:
            msg = "actions.executor = 'xtest': no display (set actions.options.display or $DISPLAY)"
            raise ConfigError(msg)
        try:
            self._d = xdisplay.Display(name)
        except Exception as ex:  # Xlib raises several kinds for a display that is not there
            msg = f"actions.executor = 'xtest': cannot open display {name}: {ex}"
            raise ConfigError(msg) from ex
        if self._d.query_extension("XTEST") is None:
            self._d.close()
            msg = f"actions.executor = 'xtest': display {name} has no XTEST extension"
            raise ConfigError(msg)
        self.display_name = name
        self.window = window
        self._codes: dict[str, int] = {}

    def check(self, key: str) -> str | None:
        if key in _BUTTONS:
            return None
        sym = self._XK.string_to_keysym(key)
        code = self._d.keysym_to_keycode(sym) if sym else 0
        if not code:
            return "not an X key name (examples: 'w', 'space', 'Shift_L', 'Control_L', 'Button1')"
        self._codes[key] = code
        return None

    def _send(self, event: int, key: str) -> None:
        if key in _BUTTONS:
            down = event == self._X.KeyPress
            kind = self._X.ButtonPress if down else self._X.ButtonRelease
            self._xtest.fake_input(self._d, kind, _BUTTONS[key])
        else:
            code = self._codes.get(key)
            if code is None:
                if self.check(key) is not None:
                    return
                code = self._codes[key]
            self._xtest.fake_input(self._d, event, code)

    def press(self, key: str) -> None:
        self._send(self._X.KeyPress, key)

    def release(self, key: str) -> None:
        self._send(self._X.KeyRelease, key)

    def move(self, dx: int, dy: int) -> None:
        self._xtest.fake_input(self._d, self._X.MotionNotify, detail=1, x=int(dx), y=int(dy))

    def focused(self) -> bool:
        if not self.window:
            return True
        return title_has_focus(self._d, self.window)

    def flush(self, wait: bool = False) -> None:
        # An action is sent without waiting for a round trip (XTEST input has no reply and
        # step() must not wait on the X server). Releases wait: the server drops requests it
        # has not read yet when a client's connection closes, e.g. a process ending on a
        # signal right after releasing.
        if wait:
            self._d.sync()
        else:
            self._d.flush()

    def close(self) -> None:
        self._d.sync()  # everything sent has landed before the connection goes
        self._d.close()
