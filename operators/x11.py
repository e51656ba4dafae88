"""X11 windows by title (python-xlib): where a game's window is, and whether it has the focus.

Used by the screen source (capture a window, not the whole screen) and the
XTEST input device (send input only while the game has the focus). Pure
Python; nothing here sends input.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from typing import Any

from operators.errors import ConfigError

__all__ = [
    "WindowBox",
    "find_window",
    "focus_window",
    "keys_down",
    "open_display",
    "title_has_focus",
]


@dataclass(frozen=True)
class WindowBox:
    """A window's title and its place on the screen, in root-window pixels."""

    title: str
    left: int
    top: int
    width: int
    height: int

    def area(self) -> dict[str, int]:
        """As an mss monitor dict."""
        return {"left": self.left, "top": self.top, "width": self.width, "height": self.height}


def open_display(name: str | None, what: str) -> Any:
    """An Xlib display connection to ``name`` (default ``$DISPLAY``); errors name ``what``."""
    try:
        from Xlib import display as xdisplay
    except ImportError as ex:
        msg = f"{what} needs python-xlib: pip install python-xlib"
        raise ConfigError(msg) from ex
    target = name or os.environ.get("DISPLAY")
    if not target:
        msg = f"{what}: no display (set its display option or $DISPLAY)"
        raise ConfigError(msg)
    try:
        return xdisplay.Display(target)
    except Exception as ex:  # Xlib raises several kinds for a display that is not there
        msg = f"{what}: cannot open display {target}: {ex}"
        raise ConfigError(msg) from ex


def _title(win: Any) -> str:
    try:
        name = win.get_wm_name()
    except Exception:  # the window went away
        return ""
    if isinstance(name, bytes):
        return name.decode("latin-1", "replace")
    return name if isinstance(name, str) else ""


def _find(d: Any, title: str) -> Any:
    """The first viewable window whose title contains ``title`` (``None`` if none is)."""
    stack = [d.screen().root]
    while stack:
        win = stack.pop()
        try:
            children = win.query_tree().children
        except Exception:  # gone between the calls
            continue
        for child in children:
            if title in _title(child):
                try:
                    if child.get_attributes().map_state == 2:  # IsViewable
                        return child
                except Exception:
                    pass
                continue
            stack.append(child)
    return None


def _walk(d: Any, title: str) -> WindowBox | None:
    win = _find(d, title)
    if win is None:
        return None
    try:
        geo = win.get_geometry()
        pos = win.translate_coords(d.screen().root, 0, 0)
    except Exception:  # gone between the calls
        return None
    return WindowBox(_title(win), -pos.x, -pos.y, geo.width, geo.height)


def find_window(display: str | None, title: str, timeout_s: float = 0.0) -> WindowBox:
    """The first viewable window whose title contains ``title``; waits up to ``timeout_s``
    for it to appear (a game that is still starting). A :class:`ConfigError` names the
    title and the display when there is none."""
    d = open_display(display, f"window {title!r}")
    try:
        deadline = time.monotonic() + max(timeout_s, 0.0)
        while True:
            box = _walk(d, title)
            if box is not None:
                return box
            if time.monotonic() >= deadline:
                name = display or os.environ.get("DISPLAY")
                msg = f"no window whose title contains {title!r} on display {name}"
                raise ConfigError(msg)
            time.sleep(0.2)
    finally:
        d.close()


def focus_window(display: str | None, title: str) -> bool:
    """Give the keyboard to the window whose title contains ``title`` (no window manager
    on a virtual display does it); ``False`` if there is none."""
    from Xlib import X

    d = open_display(display, f"window {title!r}")
    try:
        win = _find(d, title)
        if win is None:
            return False
        win.set_input_focus(X.RevertToParent, X.CurrentTime)
        d.sync()
        return True
    finally:
        d.close()


def title_has_focus(d: Any, title: str) -> bool:
    """Whether keyboard input goes to a window whose title (or an ancestor's) contains
    ``title``: the focus window, or, with no window manager (focus ``PointerRoot``), the
    window under the pointer."""
    from Xlib import X

    root = d.screen().root
    win: Any = d.get_input_focus().focus
    if win == X.PointerRoot or win is None or isinstance(win, int):
        try:
            win = root.query_pointer().child
        except Exception:
            return False
        if not win or isinstance(win, int):
            return False
    while win and not isinstance(win, int):
        if title in _title(win):
            return True
        try:
            parent = win.query_tree().parent
        except Exception:  # the window went away between the calls
            return False
        if not parent or parent == root:
            return False
        win = parent
    return False


def keys_down(display: str | None) -> tuple[list[int], int]:
    """The keycodes the X server holds down, and the pointer's button mask (0: none):
    ``([], 0)`` when nothing is held, as it must be after an env closes."""
    from Xlib import X

    d = open_display(display, "keys_down")
    try:
        keymap = d.query_keymap()
        down = [i * 8 + b for i, byte in enumerate(keymap) for b in range(8) if byte & (1 << b)]
        buttons = d.screen().root.query_pointer().mask & (
            X.Button1Mask | X.Button2Mask | X.Button3Mask
        )
        return down, buttons
    finally:
        d.close()
