"""The arena as a capture source: paced in real time, or in lockstep with its agent."""

import numpy as np
import pytest

from operators.capture.arena import ArenaSource
from operators.capture.base import AgentControl
from operators.errors import ConfigError


def _stream(**options):
    controls: dict[str, AgentControl] = {}
    src = ArenaSource(width=320, height=180, controls=controls, **options)
    return src.open("arena-0"), controls["arena-0"]


def test_lockstep_draws_one_frame_per_request_frame_skip_ticks_later():
    stream, control = _stream(lockstep=True, frame_skip=4, fps=30.0)
    assert stream.next_frames() == []  # nothing asked: the game waits
    ticket = control.act([0, 2, 0, 0])
    (frame,) = stream.next_frames()
    assert stream.arena.frame_no == 4 and frame.seq == 0
    assert control.wait_applied(ticket, 0.0) == 0
    assert stream.next_frames() == []  # the same request is not applied twice
    control.act([0, 2, 0, 0])
    control.act([1, 0, 0, 0])  # two requests before the source looks: the newest wins, once
    (frame,) = stream.next_frames()
    assert stream.arena.frame_no == 8 and frame.seq == 1
    assert stream.next_frames() == []
    reset = control.reset(5)
    (frame,) = stream.next_frames()
    assert stream.arena.frame_no == 0 and control.wait_applied(reset, 0.0) == 2


def test_lockstep_polls_fast_while_the_agent_steps_and_slowly_when_it_is_away():
    stream, control = _stream(lockstep=True)
    control.act([0, 0, 0, 0])
    stream.next_frames()
    now = stream.src.clock.now()
    busy = stream.next_wake() - now
    control.asked_at -= 10.0  # the agent went away (a PPO update) ten seconds ago
    idle = stream.next_wake() - now
    assert 0 < busy < idle <= 0.01


def test_real_time_ignores_frame_skip_and_holds_the_last_action():
    stream, control = _stream(lockstep=False, frame_skip=4, fps=0.0)
    control.act([0, 2, 0, 0])
    a = stream.next_frames()[0].image
    b = stream.next_frames()[0].image  # no new request: the action is held, the view turns on
    assert stream.arena.frame_no == 2 and not np.array_equal(a, b)


@pytest.mark.parametrize(
    ("options", "key"), [({"frame_skip": 0}, "frame_skip"), ({"lockstep": 1}, "lockstep")]
)
def test_bad_lockstep_options_name_their_key(options, key):
    with pytest.raises(ConfigError, match=key):
        ArenaSource(**options)
