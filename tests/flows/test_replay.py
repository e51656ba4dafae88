"""The recorded arena stream, replayed through the whole flow, checked against its ground truth.

Nothing here compares with an earlier run's output: what the agent receives
for every frame is checked against what ``index.jsonl`` says that frame shows.
"""

import itertools
import json

import cv2
import numpy as np
import pytest

from flows.runner import Pipeline
from operators.observation import Observation
from operators.outcome import Status
from operators.truth import GroundTruth
from tests.conftest import ARENA_SMALL, replay_overrides


def _recording():
    rows = [json.loads(line) for line in (ARENA_SMALL / "index.jsonl").read_text().splitlines()]
    truth = [GroundTruth.from_dict(r["truth"]) for r in rows]
    images = [cv2.imread(str(ARENA_SMALL / r["file"]), cv2.IMREAD_COLOR) for r in rows]
    return truth, images


def test_the_recording_has_what_these_tests_need():
    truth, images = _recording()
    assert len(truth) == 72 and all(img is not None for img in images)
    repeats = sum(np.array_equal(a, b) for a, b in itertools.pairwise(images))
    hud_changes = sum(a.hud() != b.hud() for a, b in itertools.pairwise(truth))
    assert repeats >= 10 and hud_changes >= 10  # idle stretches to skip, changes to see


@pytest.mark.parametrize("workers", [1, 2])
def test_replay_hands_the_agent_the_truth_of_every_frame(workers):
    truth, images = _recording()
    seen: list[Observation] = []
    pipeline = Pipeline(overrides=replay_overrides())
    pipeline.store.subscribe(seen.append)
    if workers == 1:
        summary = pipeline.wait(180)
    else:
        from bytewax.testing import cluster_main

        pipeline.runtime.warm_up()
        cluster_main(pipeline.flow, [], 0, worker_count_per_proc=2)
        pipeline.runtime.close()
        summary = pipeline.runtime.reporter.summary()
    led = summary["ledger"]
    assert led["balanced"] and led["captured"] == len(truth) and led["in_flight"] == 0
    # every frame was delivered, once, in order (nothing is dropped or failed in this config)
    assert [o.seq for o in seen] == list(range(len(truth)))
    for obs in seen:
        want = truth[obs.seq]
        # what the agent gets is right for the frame it stands for, whether it was read
        # or reused from an earlier frame
        assert obs.vision.hud() == want.hud(), (obs.seq, obs.outcome.label)
        assert len(obs.vision.enemies) == len(want.enemies), obs.seq
        assert obs.visual.shape == (84, 84, 3) and obs.visual.dtype == np.uint8
        assert obs.embedding.ndim == 1 and np.isfinite(obs.embedding).all()
        assert obs.emitted_at >= obs.captured_at
        if obs.status is Status.DUPLICATE:
            assert obs.source_seq < obs.seq
            assert np.array_equal(obs.visual, seen[obs.source_seq].visual)
        if obs.seq and np.array_equal(images[obs.seq], images[obs.seq - 1]):
            # a frame identical to the one before it is never worth a model call
            assert obs.status is Status.DUPLICATE, obs.seq
    assert led["duplicate"] >= 10 and led["processed"] + led["duplicate"] == len(truth)
    acc = summary["hud_accuracy"]
    assert acc["exact"] == 1.0 and acc["read"]["frames"] == led["processed"]
    # scored over what the agent received, each against its own frame
    assert acc["delivered"] == {**acc["delivered"], "frames": len(truth), "exact": 1.0}
    assert acc["stale_frames"] == 0


def test_the_summary_scores_a_duplicate_against_its_own_frame(tmp_path):
    """A HUD change the pixels do not show (the truth of one repeated frame edited): the
    model's reads stay exact, but the agent got a stale HUD once, and the summary says so."""
    import shutil

    rows = [json.loads(line) for line in (ARENA_SMALL / "index.jsonl").read_text().splitlines()]
    _, images = _recording()
    edited = next(i for i in range(1, len(images)) if np.array_equal(images[i], images[i - 1]))
    rows[edited]["truth"]["health"] = (rows[edited]["truth"]["health"] + 37) % 100
    rec = tmp_path / "edited"
    shutil.copytree(ARENA_SMALL, rec)
    (rec / "index.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    over = replay_overrides()
    over["capture"]["options"]["paths"] = [str(rec)]
    summary = Pipeline(overrides=over).wait(180)
    acc = summary["hud_accuracy"]
    assert acc["read"]["exact"] == 1.0
    assert acc["stale_frames"] == 1
    assert acc["delivered"]["frames"] == 72
    assert acc["delivered"]["exact"] == pytest.approx(71 / 72)
    assert acc["delivered"]["fields"]["health"] == pytest.approx(71 / 72)


def test_replay_without_dedup_processes_every_frame():
    pipeline = Pipeline(overrides=replay_overrides(dedup={"enabled": False}))
    led = pipeline.wait(180)["ledger"]
    assert led["processed"] == led["captured"] == 72 and led["duplicate"] == 0


def test_damaged_recording_delivers_frames_before_the_damage(tmp_path):
    rec = tmp_path / "damaged"
    rec.mkdir()
    lines = (ARENA_SMALL / "index.jsonl").read_text().splitlines()[:6]
    for line in lines:
        name = json.loads(line)["file"]
        (rec / name).write_bytes((ARENA_SMALL / name).read_bytes())
    (rec / json.loads(lines[2])["file"]).write_bytes(b"not a png")  # undecodable frame
    (rec / "index.jsonl").write_text(
        "\n".join(lines[:5]) + '\n{"seq": 5, "file": "000'
    )  # truncated
    over = replay_overrides()
    over["capture"]["options"]["paths"] = [str(rec)]
    pipeline = Pipeline(overrides=over)
    summary = pipeline.wait(120)
    led = summary["ledger"]
    assert led["captured"] == 5 and led["balanced"]
    assert led["reasons"] == {"failed(capture)": 1}
    assert any("index.jsonl:6" in e for e in summary["capture"]["errors"])


def _copy_recording(tmp_path, n, edit_line=None):
    """The first ``n`` frames of arena_small in a folder of their own; ``edit_line(i, entry)``
    may rewrite an index entry (a dict) or return a raw line."""
    rec = tmp_path / "rec"
    rec.mkdir()
    out = []
    for i, line in enumerate((ARENA_SMALL / "index.jsonl").read_text().splitlines()[:n]):
        entry = json.loads(line)
        (rec / entry["file"]).parent.mkdir(parents=True, exist_ok=True)
        (rec / entry["file"]).write_bytes((ARENA_SMALL / entry["file"]).read_bytes())
        new = edit_line(i, entry) if edit_line else entry
        out.append(new if isinstance(new, str) else json.dumps(new))
    (rec / "index.jsonl").write_text("\n".join(out) + "\n")
    return rec


def _replay(rec):
    over = replay_overrides()
    over["capture"]["options"]["paths"] = [str(rec)]
    return Pipeline(overrides=over).wait(120)


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("truth.health", "abc", "truth.health = 'abc': expected an integer >= 0"),
        ("truth.money", -5, "truth.money = -5: expected an integer >= 0"),
        ("truth.scene", "beach", "truth: 'beach' is not a valid Scene"),
        ("captured_at", "noon", "captured_at = 'noon': expected a number"),
        ("file", 7, "file = 7: expected a path relative to the recording"),
        ("file", "../../etc/passwd", "must stay inside the recording's folder"),
    ],
)
def test_a_bad_index_field_ends_the_stream_there_naming_file_line_and_field(
    tmp_path, field, value, message
):
    def edit(i, entry):
        if i == 3:
            if field.startswith("truth."):
                entry["truth"][field.split(".")[1]] = value
            else:
                entry[field] = value
        return entry

    rec = _copy_recording(tmp_path, 6, edit)
    summary = _replay(rec)
    led = summary["ledger"]
    # the three frames before the damage are delivered and read; no crash, no panic
    assert led["captured"] == 3 and led["processed"] + led["duplicate"] == 3 and led["balanced"]
    (error,) = summary["capture"]["errors"]
    assert f"{rec / 'index.jsonl'}:4: " in error and message in error


@pytest.mark.parametrize("damage", ["empty", "truncated", "missing"])
def test_an_unreadable_frame_fails_alone_naming_its_file(tmp_path, damage):
    rec = _copy_recording(tmp_path, 6)
    name = json.loads((rec / "index.jsonl").read_text().splitlines()[2])["file"]
    png = rec / name
    if damage == "empty":
        png.write_bytes(b"")
    elif damage == "truncated":
        png.write_bytes(png.read_bytes()[: png.stat().st_size // 3])
    else:
        png.unlink()
    summary = _replay(rec)
    led = summary["ledger"]
    assert led["captured"] == 6 and led["balanced"] and led["in_flight"] == 0
    assert led["reasons"] == {"failed(capture)": 1}
    (error,) = summary["capture"]["errors"]
    assert str(png) in error and "(index line 3)" in error


def test_recorder_chunks_frames_and_keeps_failed_captures(tmp_path):
    import numpy as np

    from operators.frame import Frame
    from sinks.recorder import RecordingWriter

    img = np.full((36, 64, 3), 90, np.uint8)
    with RecordingWriter(tmp_path / "rec", chunk_frames=4) as writer:
        for seq in range(10):
            if seq == 6:
                writer.write(
                    Frame("s", seq, float(seq), np.zeros((0, 0, 3), np.uint8), error="grab failed")
                )
            else:
                writer.write(Frame("s", seq, float(seq), img + seq))
    entries = [json.loads(x) for x in (tmp_path / "rec" / "index.jsonl").read_text().splitlines()]
    assert [e.get("file") for e in entries[:5]] == [
        "chunk-00000/00000000.png",
        "chunk-00000/00000001.png",
        "chunk-00000/00000002.png",
        "chunk-00000/00000003.png",
        "chunk-00001/00000004.png",
    ]
    assert entries[6] == {"seq": 6, "captured_at": 6.0, "error": "grab failed"}
    assert sorted(p.name for p in (tmp_path / "rec").iterdir()) == [
        "chunk-00000",
        "chunk-00001",
        "chunk-00002",
        "index.jsonl",
    ]
    over = replay_overrides()
    over["capture"]["options"]["paths"] = [str(tmp_path / "rec")]
    summary = Pipeline(overrides=over).wait(120)
    led = summary["ledger"]
    assert led["captured"] == 10 and led["balanced"]
    assert led["reasons"] == {"failed(capture)": 1}


def test_two_recordings_with_one_name_are_refused_not_merged(tmp_path):
    from operators.capture.replay import ReplaySource
    from operators.errors import ConfigError

    for side in ("a", "b"):
        (tmp_path / side / "screen").mkdir(parents=True)
        (tmp_path / side / "screen" / "index.jsonl").write_text("")
    with pytest.raises(ConfigError, match=r"two recordings are named \['screen'\]"):
        ReplaySource(paths=[tmp_path / "a" / "screen", tmp_path / "b" / "screen"])
