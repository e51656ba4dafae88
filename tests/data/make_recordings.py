"""Re-make the recorded streams under tests/data (run from the repo root).

    python tests/data/make_recordings.py

``arena_small``: 72 frames of the arena at 320x180 driven by a fixed action
script (idle stretches, turning, firing, reloading, buying armor, taking
fire), written with the project's own recorder; ground truth in the index.
"""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parents[1]))

from operators.arena import Arena  # noqa: E402
from operators.types import Frame  # noqa: E402
from sinks.recorder import RecordingWriter  # noqa: E402

SCRIPT = (
    [(0, 0, 0, 0)] * 10  # idle: duplicates
    + [(0, 2, 0, 0)] * 8  # turn right
    + [(0, 0, 0, 1)] * 14  # fire (held): ammo counts down
    + [(0, 0, 0, 2)] * 2  # reload
    + [(0, 0, 0, 0)] * 10  # idle
    + [(1, 0, 0, 0)] * 10  # walk
    + [(0, 0, 0, 5)] * 3  # buy armor
    + [(0, 1, 3, 0)] * 15  # turn left, look up
)


def make_arena_small(out: Path) -> None:
    shutil.rmtree(out, ignore_errors=True)
    arena = Arena(width=320, height=180, seed=2, enemy_fire_rate=0.06)
    with RecordingWriter(out) as writer:
        for seq, action in enumerate(SCRIPT):
            arena.step(action)
            writer.write(
                Frame("arena_small", seq, 1_700_000_000.0 + seq / 30, arena.render(), arena.truth())
            )


def make_expected(recording: Path) -> None:
    """Write ``expected.jsonl``: what the pipeline with the replay test config outputs per seq.

    Review a regenerated file before committing it: every processed seq's HUD
    must equal the ground truth in ``index.jsonl`` (a test checks this too).
    """
    import json

    from flows.runner import Pipeline
    from operators.types import Observation
    from tests.conftest import replay_overrides

    seen: list[object] = []
    p = Pipeline(overrides=replay_overrides())
    p.runtime.store.subscribe(seen.append)
    outcomes: dict[int, str] = {}
    original = p.runtime.ledger.record

    def record(outcome):  # type: ignore[no-untyped-def]
        outcomes[outcome.seq] = outcome.label
        original(outcome)

    p.runtime.ledger.record = record  # type: ignore[method-assign]
    p.wait(120)
    obs = {o.seq: o for o in seen if isinstance(o, Observation)}
    with (recording / "expected.jsonl").open("w", encoding="utf-8") as fh:
        for seq in sorted(outcomes):
            row: dict[str, object] = {"seq": seq, "outcome": outcomes[seq]}
            if seq in obs:
                row["hud"] = obs[seq].vision.hud()
                row["enemies"] = len(obs[seq].vision.enemies)
                row["scene"] = obs[seq].vision.scene.value
            fh.write(json.dumps(row) + "\n")


if __name__ == "__main__":
    make_arena_small(HERE / "arena_small")
    make_expected(HERE / "arena_small")
