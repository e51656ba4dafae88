"""The recorded arena stream, replayed through the whole flow, against expected outputs."""

import json

import numpy as np
import pytest

from flows.runner import Pipeline
from operators.types import GroundTruth, Observation, Status
from tests.conftest import ARENA_SMALL, replay_overrides


def _expected():
    return [json.loads(line) for line in (ARENA_SMALL / "expected.jsonl").read_text().splitlines()]


def _truth():
    lines = (ARENA_SMALL / "index.jsonl").read_text().splitlines()
    return [GroundTruth.from_dict(json.loads(line)["truth"]) for line in lines]


def test_expected_outputs_agree_with_ground_truth():
    truth = _truth()
    expected = _expected()
    assert len(expected) == len(truth)
    for row in expected:
        t = truth[row["seq"]]
        assert row["hud"] == {f: getattr(t, f) for f in GroundTruth.HUD_FIELDS}, row["seq"]
        assert row["enemies"] == len(t.enemies)


@pytest.mark.parametrize("workers", [1, 2])
def test_replay_matches_expected_outputs(workers):
    seen: list[Observation] = []
    pipeline = Pipeline(overrides=replay_overrides())
    pipeline.store.subscribe(seen.append)
    if workers == 1:
        summary = pipeline.wait(180)
    else:
        from bytewax.testing import cluster_main

        cluster_main(pipeline.flow, [], 0, worker_count_per_proc=2)
        pipeline.runtime.close()
        summary = pipeline.runtime.reporter.summary()
    expected = _expected()
    led = summary["ledger"]
    assert led["balanced"] and led["captured"] == len(expected) and led["in_flight"] == 0
    assert led["processed"] == sum(r["outcome"] == "processed" for r in expected)
    assert led["duplicate"] == sum(r["outcome"].startswith("duplicate") for r in expected)
    by_seq = {o.seq: o for o in seen}
    assert sorted(by_seq) == [r["seq"] for r in expected]
    for row in expected:
        obs = by_seq[row["seq"]]
        assert obs.outcome.label == row["outcome"]
        assert obs.vision.hud() == row["hud"]
        assert len(obs.vision.enemies) == row["enemies"]
        assert obs.visual.shape == (84, 84, 3) and obs.visual.dtype == np.uint8
        assert obs.embedding.ndim == 1 and np.isfinite(obs.embedding).all()
        if obs.status is Status.DUPLICATE:
            assert np.array_equal(obs.visual, by_seq[obs.source_seq].visual)
    # the observations are in seq order per stream, and age is measured from capture
    assert [o.seq for o in seen] == sorted(o.seq for o in seen)
    assert all(o.emitted_at >= o.captured_at for o in seen)
    assert summary["hud_accuracy"]["exact"] == 1.0


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


def test_recorder_chunks_frames_and_keeps_failed_captures(tmp_path):
    import numpy as np

    from operators.types import Frame
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
