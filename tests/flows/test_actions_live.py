"""Actions reaching a real X display: a window logs every input event it receives while the
executor (and the env on a live screen) sends actions; no key or button is ever left down."""

from __future__ import annotations

import signal
import subprocess
import sys
import threading
import time

import numpy as np
import pytest

from flows.config import ActionsConfig
from flows.rl.env import VisionPipelineEnv
from flows.rl.session import build_executor
from operators.errors import ConfigError
from operators.x11 import keys_down
from tests.conftest import ROOT, H, W


class EventLog:
    """A full-screen window that has the input focus and logs the input events it gets:
    ``("KeyPress", "w")``, ``("ButtonPress", 1)``, ``("Motion", dx, dy)``..."""

    def __init__(self, display: str, title: str = "framewax-test-game") -> None:
        from Xlib import XK, X
        from Xlib import display as xdisplay

        self.X, self.XK = X, XK
        self.name = display
        self.d = xdisplay.Display(display)
        screen = self.d.screen()
        mask = (
            X.KeyPressMask
            | X.KeyReleaseMask
            | X.ButtonPressMask
            | X.ButtonReleaseMask
            | X.PointerMotionMask
        )
        self.win = screen.root.create_window(
            0, 0, W, H, 0, screen.root_depth, X.InputOutput, X.CopyFromParent,
            background_pixel=screen.white_pixel, event_mask=mask, override_redirect=True,
        )  # fmt: skip
        self.win.set_wm_name(title)
        self.win.map()
        self.d.sync()
        self.events: list[tuple] = []
        self._pos: tuple[int, int] | None = None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._read, daemon=True)
        self._thread.start()
        self.focus()

    def focus(self) -> None:
        """Give this window the input focus (from another connection: the reader owns ours)."""
        from Xlib import display as xdisplay

        d = xdisplay.Display(self.name)
        d.set_input_focus(self.win.id, self.X.RevertToParent, self.X.CurrentTime)
        d.sync()
        d.close()

    def _read(self) -> None:
        X = self.X
        while not self._stop.is_set():
            while self.d.pending_events():
                e = self.d.next_event()
                if e.type in (X.KeyPress, X.KeyRelease):
                    sym = self.d.keycode_to_keysym(e.detail, 0)
                    name = "KeyPress" if e.type == X.KeyPress else "KeyRelease"
                    self.events.append((name, self.XK.keysym_to_string(sym)))
                elif e.type in (X.ButtonPress, X.ButtonRelease):
                    name = "ButtonPress" if e.type == X.ButtonPress else "ButtonRelease"
                    self.events.append((name, e.detail))
                elif e.type == X.MotionNotify:
                    pos = (e.root_x, e.root_y)
                    if self._pos is not None:
                        self.events.append(("Motion", pos[0] - self._pos[0], pos[1] - self._pos[1]))
                    self._pos = pos
            time.sleep(0.005)

    def settle(self) -> list[tuple]:
        """The events so far, once the server has delivered what was sent (only the reader
        thread touches this window's connection: python-xlib is not for two threads)."""
        time.sleep(0.3)
        return list(self.events)

    def close(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)
        self.win.destroy()
        self.d.close()


@pytest.fixture
def game(display):
    log = EventLog(display)
    yield log
    log.close()


def _center(display):
    """Put the pointer in the middle, where relative motion has room both ways."""
    from Xlib import X
    from Xlib import display as xdisplay
    from Xlib.ext import xtest

    d = xdisplay.Display(display)
    xtest.fake_input(d, X.MotionNotify, x=W // 2, y=H // 2)
    d.sync()
    d.close()


def test_the_window_receives_exactly_the_events_the_actions_map_to(display, game):
    _center(display)
    ex = build_executor(ActionsConfig(executor="xtest", options={"display": display}))
    game.settle()
    game.events.clear()
    for action in [(1, 0, 0, 0), (1, 2, 0, 0), (0, 0, 0, 1), (0, 0, 2, 2), (0, 0, 0, 0)]:
        assert ex.act(action).acted
    ex.close()
    assert game.settle() == [
        ("KeyPress", "w"),  # forward, held
        ("Motion", 40, 0),  # a small turn right
        ("KeyRelease", "w"),
        ("ButtonPress", 1),  # fire, held
        ("ButtonRelease", 1),
        ("KeyPress", "r"),  # reload: a tap
        ("KeyRelease", "r"),
        ("Motion", 0, 60),  # pitch level 0 -> 2, 30 px a level
        ("Motion", 0, -60),  # and back to level 0
    ]
    assert keys_down(display) == ([], 0)


def test_acting_only_while_the_game_window_has_the_focus(display, game):
    ex = build_executor(
        ActionsConfig(
            executor="xtest", options={"display": display, "window": "framewax-test-game"}
        )
    )
    assert ex.act((1, 0, 0, 0)).acted
    other = EventLog(display, title="some other window")
    try:
        result = ex.act((1, 0, 0, 1))
        assert not result.acted and result.reason == "not focused"
        assert keys_down(display) == ([], 0)  # losing the focus released what was held
        # the other window gets that release (key state is the server's), never a press
        assert [e for e in other.settle() if e[0] in ("KeyPress", "ButtonPress")] == []
    finally:
        other.close()
    game.focus()
    assert ex.act((1, 0, 0, 0)).acted
    ex.close()


def _live(display, **actions):
    if actions.get("executor") == "xtest":
        actions = {"options": {"display": display}, **actions}
    return {
        "capture": {"source": "screen", "options": {"display": display, "fps": 20.0}},
        "hud": {"regions": "cs2"},
        "batch": {"options": {"device": "cpu", "threads": 1}},
        "actions": actions,
        "run": {"status_interval_s": 0.0, "shutdown_ms": 500.0},
    }


def boom(prev, obs):
    raise RuntimeError("the reward function blew up")


def test_the_env_on_a_live_screen_acts_and_no_key_stays_down(display, game):
    env = VisionPipelineEnv(overrides=_live(display, executor="xtest"), max_wait_ms=2000)
    try:
        env.reset(seed=0)
        game.events.clear()
        _obs, _r, _t, _tr, info = env.step(np.array([1, 0, 0, 1]))
        assert info["acted"] and info["action_at"] > 0
        # with max_wait_ms, the observation was captured after the input was sent
        assert not info["stale"] and info["captured_at"] > info["action_at"]
        assert ("KeyPress", "w") in game.settle() and ("ButtonPress", 1) in game.events
        down, buttons = keys_down(display)
        assert down and buttons  # held while the action says so
    finally:
        env.close()
    assert keys_down(display) == ([], 0)


def test_an_exception_inside_step_releases_every_key(display, game):
    over = _live(display, executor="xtest")
    over["env"] = {"reward": "tests.flows.test_actions_live:boom"}
    env = VisionPipelineEnv(overrides=over, max_wait_ms=2000)
    try:
        env.reset(seed=0)
        with pytest.raises(RuntimeError, match="blew up"):
            for _ in range(50):  # the reward runs once a newer observation arrives
                env.step(np.array([1, 0, 0, 6]))
        assert keys_down(display) == ([], 0)
    finally:
        env.close()


def test_executor_none_sends_nothing(display, game):
    env = VisionPipelineEnv(overrides=_live(display, executor="none"))
    try:
        env.reset(seed=0)
        game.events.clear()
        for _ in range(5):
            _obs, _r, _t, _tr, info = env.step(np.array([1, 4, 5, 1]))
            assert not info["acted"] and info["not_acted"] == "observe only"
    finally:
        env.close()
    assert game.settle() == []


def test_a_bad_key_name_fails_at_build_time_naming_it(display):
    with pytest.raises(ConfigError, match=r"actions.keys.fire = 'Buton1': not an X key name"):
        VisionPipelineEnv(overrides=_live(display, executor="xtest", keys={"fire": "Buton1"}))


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_a_signal_releases_held_keys(display, game, sig):
    script = (
        "import sys, time\n"
        "from flows.config import ActionsConfig\n"
        "from flows.rl.session import build_executor\n"
        "from flows.runtime import InputGuard\n"
        f"ex = build_executor(ActionsConfig(executor='xtest', options={{'display': '{display}'}}))\n"
        "guard = InputGuard()\n"
        "guard.add(ex)\n"
        "ex.act((1, 0, 0, 1))\n"
        "print('held', flush=True)\n"
        "time.sleep(60)\n"
    )
    proc = subprocess.Popen(
        [sys.executable, "-c", script], cwd=ROOT, stdout=subprocess.PIPE, text=True
    )
    assert proc.stdout is not None and proc.stdout.readline().strip() == "held"
    down, buttons = keys_down(display)
    assert down and buttons
    proc.send_signal(sig)
    proc.wait(timeout=30)
    assert keys_down(display) == ([], 0)


def test_the_live_preset_sends_the_agents_input_and_releases_it_on_close(display, game):
    over = {
        "capture": {"options": {"display": display}},
        "actions": {"options": {"display": display}},
        "batch": {"options": {"device": "cpu"}},
        "run": {"status_interval_s": 0.0},
    }
    env = VisionPipelineEnv("flows/configs/live.toml", overrides=over)
    try:
        env.reset()
        game.events.clear()
        acted = []
        for action in ([1, 0, 0, 0], [1, 2, 0, 3], [0, 0, 0, 2], [0, 0, 0, 0]):
            acted.append(env.step(np.array(action))[4]["acted"])
            time.sleep(0.05)  # within the preset's 30 inputs a second
        assert acted == [True] * 4
        assert [e for e in game.settle() if e[0] != "Motion"] == [
            ("KeyPress", "w"),
            ("KeyPress", "a"),  # strafe left, held
            ("KeyRelease", "a"),
            ("KeyRelease", "w"),
            ("KeyPress", "r"),  # reload, a tap
            ("KeyRelease", "r"),
        ]
        env.step(np.array([1, 0, 0, 1]))  # hold forward and fire, then close
    finally:
        env.close()
    assert keys_down(display) == ([], 0)
