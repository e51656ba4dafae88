import json

import numpy as np
import pytest

from operators.errors import ConfigError, VisionError
from operators.frame import Frame
from operators.ledger import Ledger
from operators.options import choice
from operators.outcome import Outcome, Status
from operators.reading import Scene, VisionResult


def test_outcome_requires_of_and_reason():
    with pytest.raises(ValueError, match="needs `of`"):
        Outcome("s", 1, Status.DUPLICATE)
    with pytest.raises(ValueError, match="needs a `reason`"):
        Outcome("s", 1, Status.FAILED)
    assert Outcome("s", 1, Status.DROPPED, reason="stale").label == "dropped(stale)"
    assert Outcome("s", 1, Status.DUPLICATE, of=0).label == "duplicate(of=0)"


def test_frame_validation_and_image_errors():
    with pytest.raises(ValueError, match="seq"):
        Frame("s", -1, 0.0, np.zeros((8, 8, 3), np.uint8))
    assert Frame("s", 0, 0.0, np.zeros((8, 8, 3), np.uint8)).image_error() is None
    assert "dtype" in Frame("s", 0, 0.0, np.zeros((8, 8, 3), np.float32)).image_error()
    assert "shape" in Frame("s", 0, 0.0, np.zeros((8, 8), np.uint8)).image_error()
    assert (
        Frame("s", 0, 0.0, np.zeros((0, 0, 3), np.uint8), error="bad file").image_error()
        == "bad file"
    )


def test_ledger_balances_and_catches_double_resolution():
    ledger = Ledger()
    for seq in range(4):
        ledger.captured("s", seq)
    ledger.record(Outcome("s", 0, Status.PROCESSED))
    ledger.record(Outcome("s", 1, Status.DUPLICATE, of=0))
    ledger.record(Outcome("s", 2, Status.DROPPED, reason="stale"))
    c = ledger.counts()
    assert (c["captured"], c["processed"], c["duplicate"], c["dropped"], c["in_flight"]) == (
        4,
        1,
        1,
        1,
        1,
    )
    assert ledger.balanced()
    ledger.record(Outcome("s", 2, Status.FAILED, reason="late"))  # second outcome for seq 2
    ledger.record(Outcome("s", 9, Status.PROCESSED))  # never captured
    assert not ledger.balanced()
    assert len(ledger.violations) == 2
    assert ledger.reasons() == {"dropped(stale)": 1}


def test_vision_result_parses_structured_output():
    text = json.dumps(
        {
            "health": 87,
            "armor": 0,
            "ammo": 27,
            "ammo_reserve": 90,
            "money": 800,
            "scene": "gameplay",
            "enemies": [{"x0": 0.1, "y0": 0.2, "x1": 0.3, "y1": 0.5}],
        }
    )
    r = VisionResult.from_json(text, stream_id="s", seq=3, backend="t")
    assert (r.health, r.ammo, r.scene, len(r.enemies)) == (87, 27, Scene.GAMEPLAY, 1)


@pytest.mark.parametrize(
    "text",
    [
        "The player has 87 health.",
        "",
        "{not json",
        "[1, 2]",
        '{"health": "lots"}',
        '{"scene": "beach"}',
    ],
)
def test_vision_result_rejects_bad_output_keeping_raw_text(text):
    with pytest.raises(VisionError) as info:
        VisionResult.from_json(text, stream_id="s", seq=0, backend="t")
    assert info.value.reason == "parse"
    assert text[:10] in info.value.detail


def test_choice_names_key_and_valid_values():
    with pytest.raises(ConfigError, match=r"vision.order = 'sideways'.*'newest', 'oldest'"):
        from operators.vision.queue import ServeOrder

        choice(ServeOrder, "sideways", "vision.order")


def test_types_facade_reexports_the_concern_modules():
    import operators.types as t
    from operators.frame import Frame as F
    from operators.reading import VisionResult as V

    assert t.Frame is F and t.VisionResult is V


def test_one_image_check_serves_frames_and_the_encoder():
    from operators.frame import image_problem

    assert image_problem(np.zeros((8, 8, 3), np.uint8)) is None
    assert "smaller than 8x8" in image_problem(np.zeros((4, 8, 3), np.uint8))
    assert "expected numpy.ndarray" in image_problem([[0]])
