"""The env's spaces and the features that fill them cannot drift apart."""

import numpy as np
from hypothesis import given
from hypothesis import strategies as st

from flows.rl.spaces import (
    CATEGORICAL_FIELDS,
    NUMERICAL_FIELDS,
    categorical,
    features,
    numerical,
    observation_space,
)
from operators.observation import Observation
from operators.outcome import Status
from operators.reading import Detection, Scene, VisionResult

hud = st.one_of(st.none(), st.integers(0, 100_000))
boxes = st.tuples(*(st.floats(0, 1),) * 4).map(
    lambda b: Detection(min(b[0], b[2]), min(b[1], b[3]), max(b[0], b[2]), max(b[1], b[3]))
)
readings = st.builds(
    VisionResult,
    stream_id=st.just("s"),
    seq=st.integers(0, 10),
    health=hud,
    armor=hud,
    ammo=hud,
    ammo_reserve=hud,
    money=hud,
    scene=st.sampled_from(Scene),
    enemies=st.lists(boxes, max_size=12).map(tuple),
)


@given(readings)
def test_features_of_any_reading_are_in_the_observation_space(reading):
    obs = Observation(
        "s",
        reading.seq,
        0.0,
        Status.PROCESSED,
        reading.seq,
        reading,
        np.zeros((84, 84, 3), np.uint8),
        np.zeros(4, np.float32),
        emitted_at=0.0,
    )
    assert features(obs) in observation_space()


def test_feature_order_follows_the_field_lists():
    r = VisionResult("s", 0, health=87, armor=None, ammo=30, money=2500, scene=Scene.MENU)
    num = dict(zip(NUMERICAL_FIELDS, numerical(r).tolist(), strict=True))
    assert (num["health"], num["armor"], num["money_k"]) == (87, -1, 2.5)
    assert abs(num["hud_read"] - 0.6) < 1e-6  # 3 of 5 fields read
    cat = dict(zip(CATEGORICAL_FIELDS, categorical(r).tolist(), strict=True))
    assert cat["scene"] == list(Scene).index(Scene.MENU) and cat["health_bucket"] == 7
