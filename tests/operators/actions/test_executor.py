"""The action executor on a recording device and a fake clock: exactly the input each action
implies, nothing left held."""

import pytest

from operators.actions.executor import ActionExecutor, Keymap, Kind, ObserveOnly, RecordingDevice
from operators.errors import ConfigError
from operators.testing.fakes import FakeClock


def _executor(**kw):
    dev = RecordingDevice(**kw.pop("device", {}))
    clock = FakeClock()
    return ActionExecutor(dev, kw.pop("keymap", Keymap()), clock=clock, **kw), dev, clock


def _run(ex, dev, actions):
    out = []
    for a in actions:
        dev.events.clear()
        ex.act(a)
        out.append(list(dev.events))
    return out


def test_held_keys_follow_the_action_and_change_only_what_changed():
    ex, dev, _ = _executor()
    steps = _run(ex, dev, [(1, 0, 0, 0), (1, 0, 0, 0), (2, 0, 0, 3), (0, 0, 0, 3), (0, 0, 0, 0)])
    assert steps == [
        [("press", "w")],
        [],  # the same action again: nothing to send
        [("release", "w"), ("press", "a"), ("press", "s")],
        [("release", "s")],
        [("release", "a")],
    ]
    assert dev.down == set()


def test_repeat_held_lets_go_of_a_kept_key_and_presses_it_again_at_once():
    """``repeat_held``: each action releases and presses again the keys it keeps down.
    Doom drops its keys when a new episode starts, and a key the executor thought down
    was never seen again (the live timeline: a whole episode of "turn left" the game did
    not see, the policy stuck on the picture that did not change)."""
    ex, dev, _ = _executor(repeat_held=True)
    steps = _run(ex, dev, [(1, 0, 0, 0), (1, 0, 0, 0), (1, 0, 0, 3), (0, 0, 0, 0)])
    assert steps == [
        [("press", "w")],
        [("release", "w"), ("press", "w")],  # let go and down again, in one flush
        [("press", "a"), ("release", "w"), ("press", "w")],  # the new key pressed once
        [("release", "a"), ("release", "w")],
    ]
    assert dev.down == set()


def test_fire_holds_the_button_reload_taps_once_click_kind_clicks_every_step():
    keymap = Keymap(kinds={"fire": Kind.HOLD, "reload": Kind.TAP, "buy": Kind.CLICK})
    ex, dev, _ = _executor(keymap=keymap)
    steps = _run(
        ex,
        dev,
        [(0, 0, 0, 1), (0, 0, 0, 1), (0, 0, 0, 2), (0, 0, 0, 2), (0, 0, 0, 5), (0, 0, 0, 5)],
    )
    assert steps == [
        [("press", "Button1")],
        [],
        [("release", "Button1"), ("press", "r"), ("release", "r")],
        [],  # a tap is sent when the command is chosen, not while it stays chosen
        [("press", "b"), ("release", "b")],
        [("press", "b"), ("release", "b")],
    ]


def test_turn_is_relative_motion_and_pitch_an_absolute_level():
    ex, dev, _ = _executor(keymap=Keymap(turn_px=(0, -10, 10, -50, 50), pitch_px=7))
    steps = _run(ex, dev, [(0, 2, 0, 0), (0, 3, 4, 0), (0, 0, 4, 0), (0, 0, 1, 0)])
    assert steps == [[("move", 10, 0)], [("move", -50, 28)], [], [("move", 0, -21)]]
    ex.reset()  # a new episode counts pitch from level 0 again
    assert _run(ex, dev, [(0, 0, 2, 0)]) == [[("move", 0, 14)]]


def test_release_all_reset_and_close_leave_nothing_down_and_are_safe_twice():
    ex, dev, _ = _executor()
    ex.act((1, 0, 0, 6))  # forward + crouch held
    assert dev.down == {"w", "Control_L"}
    ex.release_all()
    ex.release_all()
    assert dev.down == set() and ex.held == set()
    ex.act((2, 0, 0, 1))
    ex.close()
    assert dev.down == set()


def test_losing_the_focus_releases_everything_and_sends_nothing():
    ex, dev, _ = _executor()
    ex.act((1, 0, 0, 1))
    dev.is_focused = False
    dev.events.clear()
    result = ex.act((1, 2, 3, 1))
    assert not result.acted and result.reason == "not focused"
    assert sorted(dev.events) == [("release", "Button1"), ("release", "w")]
    dev.is_focused = True
    assert ex.act((1, 0, 0, 0)).acted and dev.down == {"w"}


def test_input_rate_is_bounded_in_the_long_run_and_jitter_is_tolerated():
    ex, _dev, clock = _executor(max_hz=10)
    results = []
    for i in range(300):  # an agent stepping at 100 Hz for 3 s
        results.append(ex.act((i % 3, 0, 0, 0)))
        clock.advance(0.01)
    sent = sum(r.acted for r in results)
    assert 30 <= sent <= 32  # 10 a second, plus the burst
    assert {r.reason for r in results if not r.acted} == {"rate"}
    # at the control rate, a step a little early (jitter) is still sent
    ex2, _dev, clock2 = _executor(max_hz=10)
    for dt in (0.1, 0.095, 0.105, 0.09, 0.11) * 6:
        assert ex2.act((1, 0, 0, 0)).acted
        clock2.advance(dt)


def test_a_bad_key_name_fails_when_the_executor_is_built_naming_it():
    with pytest.raises(ConfigError, match=r"actions.keys.fire = 'Buton1': not a key"):
        ActionExecutor(
            RecordingDevice(known=["w", "s"]),
            Keymap(keys={"forward": "w", "back": "s", "fire": "Buton1"}),
        )


@pytest.mark.parametrize(
    ("keymap", "match"),
    [
        ({"keys": {"jump": "space"}}, r"actions.keys.jump: not a move or command"),
        ({"kinds": {"fire": "mash"}}, r"actions.kinds.fire = 'mash'.*'hold', 'tap', 'click'"),
        ({"turn_px": (0, 1, 2)}, r"actions.turn_px = \[0, 1, 2\]: expected 5 integers"),
        ({"pitch_px": 1.5}, r"actions.pitch_px = 1.5"),
    ],
)
def test_bad_keymaps_name_the_key(keymap, match):
    with pytest.raises(ConfigError, match=match):
        Keymap(**keymap)


def test_observe_only_sends_nothing():
    ex = ObserveOnly(clock=FakeClock())
    result = ex.act((1, 4, 9, 1))
    assert not result.acted and result.reason == "observe only"


def test_a_game_that_turns_by_keys_holds_them_and_moves_no_mouse():
    from operators.actions.executor import ActionExecutor, Keymap, RecordingDevice
    from operators.testing import FakeClock

    keys = {"forward": "Up", "turn_left": "Left", "turn_right": "Right", "buy": ""}
    dev = RecordingDevice()
    ex = ActionExecutor(dev, Keymap(keys={**Keymap().keys, **keys}), clock=FakeClock())
    ex.act((1, 1, 0, 0))
    assert sorted(dev.events) == [("press", "Left"), ("press", "Up")]  # no ("move", ...)
    dev.events.clear()
    ex.act((0, 4, 0, 5))  # a big right turn; buy is unset: nothing sent for it
    assert sorted(dev.events) == [("press", "Right"), ("release", "Left"), ("release", "Up")]
    dev.events.clear()
    ex.release_all()
    assert dev.events == [("release", "Right")]
    assert "buy" not in ex.keymap.keys


def test_a_big_turn_by_keys_holds_the_turn_fast_key_with_the_turn_key():
    from operators.actions.executor import ActionExecutor, Keymap, RecordingDevice
    from operators.testing import FakeClock

    keys = {"turn_left": "Left", "turn_right": "Right", "turn_fast": "Shift_L"}
    dev = RecordingDevice()
    ex = ActionExecutor(dev, Keymap(keys={**Keymap().keys, **keys}), clock=FakeClock())
    ex.act((0, 3, 0, 0))  # big left: as Doom in lockstep holds SPEED with TURN_LEFT
    assert sorted(dev.events) == [("press", "Left"), ("press", "Shift_L")]
    dev.events.clear()
    ex.act((0, 1, 0, 0))  # small left: the run key comes up, the turn key stays down
    assert dev.events == [("release", "Shift_L")]
    dev.events.clear()
    ex.release_all()
    assert dev.events == [("release", "Left")]
