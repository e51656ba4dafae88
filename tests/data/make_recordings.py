"""Re-make the recorded streams under tests/data (run from the repo root).

    python tests/data/make_recordings.py

``arena_small``: 72 frames of the arena at 320x180 driven by a fixed action
script (idle stretches, turning, firing, reloading, buying armor, taking
fire), written with the project's own recorder; ground truth in the index, which
the tests check the pipeline's outputs against.
"""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parents[1]))

from operators.capture.arena import Arena  # noqa: E402
from operators.frame import Frame  # noqa: E402
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


if __name__ == "__main__":
    make_arena_small(HERE / "arena_small")
