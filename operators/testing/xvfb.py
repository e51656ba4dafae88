"""A virtual X display for tests and benchmarks: Xvfb started, waited for, with a limit."""

from __future__ import annotations

import subprocess
import time
from pathlib import Path

__all__ = ["accepts", "start_xvfb"]


def accepts(name: str) -> bool:
    """Whether the X server ``name`` takes a client now."""
    from Xlib import display as xdisplay
    from Xlib.error import DisplayError

    try:
        xdisplay.Display(name).close()
    except (DisplayError, OSError):
        return False
    return True


def start_xvfb(
    width: int, height: int, first: int = 90, timeout_s: float = 10.0
) -> tuple[str, subprocess.Popen[bytes]]:
    """Xvfb on the first free display number from ``first``, ``width``×``height``, once it
    takes clients (its socket appears before it does); ``RuntimeError`` if it has not
    within ``timeout_s``. ``-noreset``: by default Xvfb resets itself when its last
    client disconnects, and a client connecting during that reset is refused."""
    n = next(
        i
        for i in range(first, first + 100)
        if not Path(f"/tmp/.X11-unix/X{i}").exists() and not Path(f"/tmp/.X{i}-lock").exists()
    )
    name = f":{n}"
    proc = subprocess.Popen(
        ["Xvfb", name, "-screen", "0", f"{width}x{height}x24", "-nolisten", "tcp", "-noreset"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + timeout_s
    while not accepts(name):
        if proc.poll() is not None or time.monotonic() > deadline:
            proc.kill()
            msg = f"Xvfb {name} did not start within {timeout_s} s"
            raise RuntimeError(msg)
        time.sleep(0.05)
    return name, proc
