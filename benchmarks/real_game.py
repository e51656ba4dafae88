"""Freedoom through framewax, scored against the game's own variables.

    python benchmarks/real_game.py --out benchmarks/results/real_game.json

For each window size (640x480 and 1280x720 by default), on a virtual display of
its own and as a user does it with the README's commands:

1. **Record and calibrate**: the game (``python -m flows.doom``, seed A) is played
   by a random key-presser for ``--record-s`` while ``flows.record`` records its
   window; ``python -m flows.calibrate`` finds the HUD regions on that recording.
2. **Play**: the game restarts with another seed (B, frames the calibration never
   saw); the env (the doom preset, the calibrated regions, capture at ``--fps``, the
   local model) is stepped by a random agent at ``--fps`` for ``--play-s``.

Scored against the game's log (written by the game's process every tic):

- HUD fields per observation the model read: exact (against the tic logged at
  the frame's capture) and within one tic (the tic before or after too); a read that
  lies between the values either side of a tic the log skipped is counted apart
  (``fields_in_skipped_tics``), neither right nor wrong; with ``--matrix``, the fields
  the game showed in the recording are the ones calibration must name;
- change → agent latency: for each change of a HUD number in the game, from the tic
  that changed it (its log line, or an earlier grab already showing the new value:
  the game can draw a tic before it logs it) to the first observation in the agent's
  hands that reads the new value; its p50 / p99 against the bound (frame interval +
  model p50 + 5 ms), also per field, with the share of changes the first grab after
  them already showed;
- ``step()`` p99; actions sent (``acted``) and, for shots, seen by the game (the
  ammo dropped within 0.5 s); keys left down after close; frames lost (capture
  ticks missed); CPU used (this process and the game's).
"""

from __future__ import annotations

import argparse
import bisect
import itertools
import json
import os
import random
import resource
import select
import shutil
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.header import run_header
from flows.calibrate import calibrate
from flows.rl.env import VisionPipelineEnv
from operators.capture.doom import GameVarsLog, doom_truth
from operators.hud import HUD_RANGES, check_reading
from operators.observation import Observation
from operators.outcome import Status
from operators.testing.xvfb import start_xvfb
from operators.x11 import keys_down

ROOT = Path(__file__).resolve().parents[1]
FIELDS = ("health", "armor", "ammo")


def pct(values: list[float], q: float) -> float:
    return float(np.percentile(values, q)) if values else float("nan")


@dataclass(frozen=True)
class Cell:
    """One case of the matrix: a window size, a WAD, a scenario and a HUD mode."""

    resolution: str
    wad: str = "freedoom2"
    scenario: str = "deathmatch"
    hud: str = "statusbar"

    @property
    def name(self) -> str:
        return f"{self.resolution} {self.wad} {self.scenario} {self.hud}"

    @classmethod
    def parse(cls, text: str) -> Cell:
        """``RES[:WAD[:SCENARIO[:HUD]]]``, e.g. ``800x600:freedoom1:defend_the_center:fullscreen``."""
        return cls(*text.split(":"))


MATRIX: tuple[Cell, ...] = (
    # 4:3, 16:10 and 16:9 from 320x240 to 1920x1080; both WADs; scenarios with damage,
    # armor and pickups; the status bar and the full-screen HUD
    Cell("320x240", "freedoom2", "deathmatch"),
    Cell("400x300", "freedoom1", "deadly_corridor"),
    Cell("800x600", "freedoom2", "deathmatch"),
    Cell("1024x768", "freedoom2", "deathmatch"),
    Cell("1280x800", "freedoom1", "health_gathering"),
    Cell("1400x787", "freedoom2", "defend_the_center"),
    Cell("1600x1200", "freedoom1", "deathmatch"),
    Cell("1920x1080", "freedoom2", "deadly_corridor"),
    Cell("800x600", "freedoom2", "deathmatch", "fullscreen"),
    Cell("1280x720", "freedoom1", "defend_the_center", "fullscreen"),
)
"""The cells of ``--matrix`` (none of them the 640x480 / 1280x720 status bar of the
default run, which calibration was developed on)."""


def start_game(display: str, log: Path, cell: Cell, seed: int) -> subprocess.Popen[str]:
    game = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "flows.doom",
            "--display",
            display,
            "--log",
            str(log),
            "--resolution",
            cell.resolution,
            "--wad",
            cell.wad,
            "--scenario",
            cell.scenario,
            "--hud",
            cell.hud,
            "--seed",
            str(seed),
        ],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    assert game.stdout is not None
    ready, _, _ = select.select([game.stdout], [], [], 60.0)
    line = game.stdout.readline() if ready else ""
    if not line.startswith("ready"):
        game.kill()
        msg = f"the game did not start: {line!r}"
        raise RuntimeError(msg)
    return game


def stop(proc: subprocess.Popen[Any]) -> None:
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(timeout=20)
    except subprocess.TimeoutExpired:
        proc.kill()


def presser(display: str, seconds: float, seed: int) -> None:
    """Random Doom keys, held and released, for the recording (a person playing badly)."""
    from operators.actions.xinput import XTestDevice

    dev = XTestDevice(display)
    rnd = random.Random(seed)
    keys = ["Up", "Up", "Left", "Right", "Control_L", "Control_L", "comma", "period", "Down"]
    for k in keys:
        dev.check(k)
    held: set[str] = set()
    t_end = time.time() + seconds
    try:
        while time.time() < t_end:
            k = rnd.choice(keys)
            if k in held:
                dev.release(k)
                held.discard(k)
            else:
                dev.press(k)
                held.add(k)
            dev.flush()
            time.sleep(rnd.uniform(0.05, 0.4))
    finally:
        for k in held:
            dev.release(k)
        dev.close()


def record_and_calibrate(display: str, work: Path, cell: Cell, seconds: float) -> dict[str, Any]:
    log = work / "record-vars.jsonl"
    game = start_game(display, log, cell, seed=11)
    cfg = work / "record.toml"
    cfg.write_text(
        (ROOT / "flows/configs/doom.toml")
        .read_text()
        .replace('truth_log = "doom-vars.jsonl"', f'truth_log = "{log}"')
    )
    player = threading.Thread(target=presser, args=(display, seconds + 3, 5))
    player.start()
    env = {**os.environ, "DISPLAY": display, "FRAMEWAX_CONFIG": str(cfg)}
    env["FRAMEWAX_RECORD_OUT"] = str(work / "recording")
    rec = subprocess.Popen(
        [sys.executable, "-m", "bytewax.run", "flows.record"],
        cwd=ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    time.sleep(seconds)
    rec.send_signal(signal.SIGINT)
    rec.wait(timeout=60)
    player.join()
    stop(game)
    regions = work / "regions.toml"
    fields = calibrate(work / "recording" / "screen", regions, ranges="doom")
    return {"regions": {f.name: list(f.padded()) for f in fields}, "file": regions}


def play(
    display: str, work: Path, cell: Cell, regions: Path, fps: float, seconds: float
) -> dict[str, Any]:
    log = work / "play-vars.jsonl"
    game = start_game(display, log, cell, seed=23)
    cpu_game0 = _proc_cpu(game.pid)
    cfg = work / "play.toml"
    base = (ROOT / "flows/configs/doom.toml").read_text()
    cfg.write_text(f'include = ["{regions}"]\n' + base)
    over = {
        "capture": {"options": {"display": display, "truth_log": str(log), "fps": fps}},
        "actions": {"options": {"display": display}, "max_hz": fps},
        "batch": {"options": {"device": "cpu"}},
        "run": {"status_interval_s": 0.0, "summary": False},
    }
    env = VisionPipelineEnv(cfg, overrides=over)  # step() itself never waits: the agent paces
    seen: list[tuple[float, Observation]] = []
    rnd = np.random.default_rng(7)
    steps: list[float] = []
    acted = 0
    shots: list[float] = []
    keys_left = None
    try:
        env.reset(seed=0)
        env.pipeline.store.subscribe(lambda obs: seen.append((time.time(), obs)))
        cpu0, t0 = _cpu(), time.time()
        last_cmd = 0
        while time.time() - t0 < seconds:
            action = np.array(
                [rnd.choice([0, 1, 1, 2]), rnd.choice([0, 0, 1, 2]), 0, rnd.choice([0, 0, 0, 1])]
            )
            s = time.perf_counter()
            _obs, _r, term, trunc, info = env.step(action)
            steps.append((time.perf_counter() - s) * 1000.0)
            time.sleep(max(0.0, 1.0 / fps - (time.perf_counter() - s)))  # the agent's own rate
            acted += bool(info["acted"])
            if action[3] == 1 and last_cmd != 1 and info["acted"]:
                shots.append(info["action_at"])
            last_cmd = int(action[3])
            if term or trunc:
                env.reset()
        cpu = _cpu() - cpu0
        wall = time.time() - t0
        summary = env.pipeline.runtime.reporter.summary()
    finally:
        env.close()

        keys_left = keys_down(display)
        cpu_game = _proc_cpu(game.pid) - cpu_game0
        stop(game)
    return score(log, seen, steps, acted, shots, summary, fps, cpu, cpu_game, wall, keys_left)


def _cpu() -> float:
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def _proc_cpu(pid: int) -> float:
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    except (OSError, IndexError, ValueError):
        return 0.0


def score(
    log_path: Path,
    seen: list[tuple[float, Observation]],
    steps: list[float],
    acted: int,
    shots: list[float],
    summary: dict[str, Any],
    fps: float,
    cpu: float,
    cpu_game: float,
    wall: float,
    keys_left: Any,
) -> dict[str, Any]:
    log = GameVarsLog(log_path, keep=10_000_000)
    rows = [json.loads(x) for x in log_path.read_text().splitlines() if x.strip()]
    exact = dict.fromkeys(FIELDS, 0)
    near = dict.fromkeys(FIELDS, 0)
    known = dict.fromkeys(FIELDS, 0)
    unread = dict.fromkeys(FIELDS, 0)
    plausible_wrong = dict.fromkeys(FIELDS, 0)
    two = dict.fromkeys(FIELDS, 0)  # within two tics: a late screen, not a misread
    skipped = dict.fromkeys(FIELDS, 0)
    wrong_seen: list[dict[str, Any]] = []
    implausible = 0
    for _t, obs in seen:
        if obs.status is not Status.PROCESSED:
            continue
        lines = log.around(obs.captured_at, 1)
        around = [doom_truth(v) for v in lines]
        said = log.at(obs.captured_at)
        if said is None or not around:
            continue
        truth = doom_truth(said)
        for f in FIELDS:
            want = getattr(truth, f)
            got = getattr(obs.vision, f)
            if want is None:
                continue
            known[f] += 1
            exact[f] += got == want
            close = got in {getattr(t, f) for t in around}
            near[f] += close
            two[f] += got in {getattr(doom_truth(t), f) for t in log.around(obs.captured_at, 2)}
            unread[f] += got is None
            if check_reading(f, got, HUD_RANGES["doom"]) is not None:
                implausible += 1  # a number the field cannot show, handed over as a reading
            elif got is not None and not close and _in_skipped_tic(lines, f, got):
                skipped[f] += 1  # a tic the log skipped could have shown it: unscored
            elif got is not None and not close:
                plausible_wrong[f] += 1  # the worst case: a wrong number that passes every check
                if len(wrong_seen) < 20:
                    truths = sorted({getattr(t, f) for t in around}, key=str)
                    conf = dict(obs.vision.confidence).get(f)
                    wrong_seen.append(
                        {"field": f, "read": got, "truth": truths, "confidence": conf}
                    )
    # change -> agent: each change of a field in the game, to the first observation in
    # the agent's hands (delivered) reading the new value
    delays: list[float] = []
    on_screen: list[float] = []
    ours: list[float] = []
    by_field: dict[str, list[float]] = {"health": [], "ammo": []}
    first_grab: dict[str, list[bool]] = {"health": [], "ammo": []}
    drawn_early: dict[str, list[bool]] = {"health": [], "ammo": []}
    missed = 0
    delivered = [(t, o) for t, o in seen if o.status is Status.PROCESSED]
    grabs = sorted(o.captured_at for _t, o in seen)
    for prev, row in itertools.pairwise(rows):
        a, b = doom_truth(prev), doom_truth(row)
        for f in ("health", "ammo"):
            new = getattr(b, f)
            if new is None or getattr(a, f) == new:
                continue
            # The change happened after the previous tic was logged. The game logs a tic
            # when its engine hands it over, which can be a little after it drew it: a
            # grab between the two that already shows the new value starts the clock.
            t_prev, t_logged = prev["t"], row["t"]
            later = [
                (t, o)
                for t, o in delivered
                if o.captured_at > t_prev and getattr(o.vision, f) == new
            ]
            if later:
                t, o = min(later, key=lambda x: x[0])
                t_change = min(t_logged, o.captured_at)
                d = (t - t_change) * 1000.0
                if d < 2000:
                    delays.append(d)
                    by_field[f].append(d)
                    drawn_early[f].append(o.captured_at < t_logged)
                    # the first grab after the change showed it (else the game drew it
                    # later than its variable changed, or the grab missed it)
                    k = bisect.bisect_left(grabs, t_change)
                    first_grab[f].append(k < len(grabs) and grabs[k] == o.captured_at)
                    # where the time went: the game and the screen (the change, to the
                    # grab that first showed it), and framewax (that grab, to the agent)
                    on_screen.append((o.captured_at - t_change) * 1000.0)
                    ours.append((t - o.captured_at) * 1000.0)
                    continue
            missed += 1
    model_p50 = (summary.get("vision") or {}).get("call_ms", {}).get("p50", 0.0)
    bound = 1000.0 / fps + model_p50 + 5.0
    # shots the game could take (a weapon with ammo, ready to fire) and took: the ammo
    # fell within 0.5 s of the press
    shots_ready = shots_seen = 0
    for at in shots:
        before = log.at(at)
        if before is None or not (
            before.get("ATTACK_READY", 1) > 0
            and before["SELECTED_WEAPON"] >= 2
            and before["SELECTED_WEAPON_AMMO"] > 0
        ):
            continue
        shots_ready += 1
        after = [r["SELECTED_WEAPON_AMMO"] for r in rows if at < r["t"] <= at + 0.5]
        if after and min(after) < before["SELECTED_WEAPON_AMMO"]:
            shots_seen += 1
    lag = summary.get("lag", {})
    return {
        "observations_read": sum(1 for _t, o in seen if o.status is Status.PROCESSED),
        "fields_exact": {f: exact[f] / known[f] if known[f] else None for f in FIELDS},
        "fields_within_one_tic": {f: near[f] / known[f] if known[f] else None for f in FIELDS},
        "fields_known": known,
        "fields_within_two_tics": {f: two[f] / known[f] if known[f] else None for f in FIELDS},
        "fields_unread": {f: unread[f] / known[f] if known[f] else None for f in FIELDS},
        "fields_in_skipped_tics": {f: skipped[f] / known[f] if known[f] else None for f in FIELDS},
        "fields_wrong_plausible": {
            f: plausible_wrong[f] / known[f] if known[f] else None for f in FIELDS
        },
        "confidence_min": _min_confidence(seen),
        "wrong_examples": wrong_seen,
        "recalibrate": (summary.get("vision") or {}).get("recalibrate", []),
        "dropped_stale": _stale(summary),
        "rejected": (summary.get("vision") or {}).get("rejected", {}),
        "implausible_delivered": implausible,
        "change_to_agent_ms": {"p50": pct(delays, 50), "p99": pct(delays, 99), "n": len(delays)},
        "changes_not_delivered": missed,
        "change_to_grab_ms": {"p50": pct(on_screen, 50), "p99": pct(on_screen, 99)},
        "change_to_agent_ms_by_field": {
            f: {"p50": pct(v, 50), "p99": pct(v, 99), "n": len(v)} for f, v in by_field.items()
        },
        "change_grabbed_before_logged": {
            f: (sum(v) / len(v) if v else None) for f, v in drawn_early.items()
        },
        "change_in_first_grab": {
            f: (sum(v) / len(v) if v else None) for f, v in first_grab.items()
        },
        "grab_to_agent_ms": {"p50": pct(ours, 50), "p99": pct(ours, 99)},
        "bound_ms": bound,
        "p50_within_bound": pct(delays, 50) <= bound if delays else False,
        "model_p50_ms": model_p50,
        "step_ms": {"p50": pct(steps, 50), "p99": pct(steps, 99), "n": len(steps)},
        "acted": acted / max(len(steps), 1),
        "shots": len(shots),
        "shots_ready": shots_ready,
        "shots_seen_by_game": shots_seen,
        "lag": lag,
        "frames_lost": sum((summary.get("capture") or {}).get("missed_ticks", {}).values()),
        "capture_rate": summary.get("capture_rate"),
        "ledger_balanced": summary["ledger"]["balanced"],
        "cpu_cores_framewax": cpu / wall,
        "cpu_cores_game": cpu_game / wall,
        "keys_down_after_close": keys_left,
    }


def _in_skipped_tic(lines: list[dict[str, Any]], field: str, got: int) -> bool:
    """Whether ``got`` could be a tic the log skipped: two neighbouring lines of one
    episode are more than a tic apart, and ``got`` lies between their values (a game
    that falls behind its 35 tics a second logs, and may draw, only some of them)."""
    for a, b in itertools.pairwise(lines):
        if a.get("episode") != b.get("episode") or a.get("tic") is None or b.get("tic") is None:
            continue
        if b["tic"] - a["tic"] > 1:
            lo, hi = getattr(doom_truth(a), field), getattr(doom_truth(b), field)
            if lo is not None and hi is not None and min(lo, hi) <= got <= max(lo, hi):
                return True
    return False


def _stale(summary: dict[str, Any]) -> float:
    """The share of captured frames dropped because the reader could not keep up: too old
    to be worth a call (``stale``) or passed over for a newer frame (``superseded``)."""
    ledger = summary["ledger"]
    late = ("stale", "superseded")
    dropped = sum(v for k, v in (ledger.get("reasons") or {}).items() if any(w in k for w in late))
    return dropped / max(ledger["captured"], 1)


def _min_confidence(seen: list[tuple[float, Observation]]) -> float | None:
    scores = [c for _t, o in seen for _f, c in o.vision.confidence]
    return min(scores) if scores else None


def shown_fields(log_path: Path) -> set[str]:
    """The HUD fields the game showed at least once in a log: the ones calibration must
    name (``health_gathering`` gives no weapon, so no AMMO; the full-screen HUD hides
    armor at 0)."""
    shown: set[str] = set()
    for line in log_path.read_text().splitlines():
        if line.strip():
            truth = doom_truth(json.loads(line))
            shown |= {f for f in FIELDS if getattr(truth, f) is not None}
    return shown


def heat_map(rows: list[dict[str, Any]], path: Path) -> None:
    """Within one tic, per cell and field, as a picture (red under 99 %)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    grid = np.array(
        [
            [np.nan if (v := r["fields_within_one_tic"][f]) is None else 100 * v for f in FIELDS]
            for r in rows
        ]
    )
    fig, ax = plt.subplots(figsize=(5.5, 0.45 * len(rows) + 1.2))
    ax.imshow(grid, cmap="RdYlGn", vmin=90, vmax=100, aspect="auto")
    ax.set_xticks(range(len(FIELDS)), FIELDS)
    ax.set_yticks(range(len(rows)), [r["cell"] for r in rows])
    for (i, j), v in np.ndenumerate(grid):
        ax.text(j, i, "-" if np.isnan(v) else f"{v:.1f}", ha="center", va="center", fontsize=8)
    ax.set_title("within one tic (%)")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def checks_of(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """The matrix's targets, over every cell."""
    played = [r for r in rows if "observations_read" in r]
    return {
        "every_field_named": all("missing_fields" not in r for r in rows),
        # a field the game never showed in the cell (no weapon in health_gathering; armor
        # at 0 on the full-screen HUD, which hides it) has no score: None, left out here
        "min_field_within_one_tic": min(
            (v for r in played for v in r["fields_within_one_tic"].values() if v is not None),
            default=0.0,
        )
        if len(played) == len(rows)
        else 0.0,
        "max_wrong_plausible": max(
            (v or 0.0 for r in played for v in r["fields_wrong_plausible"].values()), default=None
        ),
        "all_p50_within_bound": all(r["p50_within_bound"] for r in played),
        "max_dropped_stale": max((r["dropped_stale"] for r in played), default=None),
        "no_key_down": all(list(r["keys_down_after_close"]) == [[], 0] for r in played),
        "implausible_delivered": sum(r["implausible_delivered"] for r in played),
    }


def main() -> None:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--resolutions", default="640x480,1280x720")
    ap.add_argument(
        "--matrix",
        action="store_true",
        help="the matrix of sizes, WADs, scenarios and HUD modes (MATRIX, or --cells)",
    )
    ap.add_argument("--cells", help="RES:WAD:SCENARIO:HUD,... instead of the built-in matrix")
    ap.add_argument("--png", type=Path, help="the heat map (default: next to --out)")
    ap.add_argument("--fps", type=float, default=30.0)
    ap.add_argument("--record-s", type=float, default=30.0)
    ap.add_argument("--play-s", type=float, default=40.0)
    ap.add_argument("--work", type=Path, default=Path("/tmp/framewax-real-game"))
    args = ap.parse_args()
    if shutil.which("Xvfb") is None:
        sys.exit("Xvfb is not installed (apt-get install xvfb)")
    if args.matrix:
        cells = [Cell.parse(c) for c in args.cells.split(",")] if args.cells else list(MATRIX)
    else:
        cells = [Cell(r) for r in args.resolutions.split(",")]
    rows = []
    for cell in cells:
        w, h = (int(v) for v in cell.resolution.split("x"))
        work = args.work / cell.name.replace(" ", "-")
        shutil.rmtree(work, ignore_errors=True)
        work.mkdir(parents=True)
        display, server = start_xvfb(w + 64, h + 64, first=140)
        try:
            cal = record_and_calibrate(display, work, cell, args.record_s)
            print(f"{cell.name}: calibrated {sorted(cal['regions'])}", flush=True)
            row = {"cell": cell.name, "resolution": cell.resolution, "calibrated": cal["regions"]}
            row |= {"wad": cell.wad, "scenario": cell.scenario, "hud": cell.hud}
            shown = shown_fields(work / "record-vars.jsonl")
            missing = sorted(shown - set(cal["regions"]))
            if set(FIELDS) & set(cal["regions"]):
                # a field shown but not named is played all the same: unread, 0 % right
                row |= play(display, work, cell, cal["file"], args.fps, args.play_s)
            else:
                row |= {f"fields_{k}": dict.fromkeys(FIELDS) for k in ("within_one_tic", "exact")}
            if missing:
                row["missing_fields"] = missing
        finally:
            server.terminate()
            server.wait(timeout=10)
        rows.append(row)
        if "missing_fields" in row:
            print(f"{cell.name}: calibration named no {row['missing_fields']}", flush=True)
        if "observations_read" not in row:
            continue
        print(
            f"{cell.name}: within one tic {row['fields_within_one_tic']}, exact {row['fields_exact']}, "
            f"unread {row['fields_unread']}, wrong but plausible {row['fields_wrong_plausible']}; "
            f"change->agent p50 {row['change_to_agent_ms']['p50']:.0f} / p99 "
            f"{row['change_to_agent_ms']['p99']:.0f} ms (bound {row['bound_ms']:.0f}; per field "
            f"{ {k: v['p50'] for k, v in row['change_to_agent_ms_by_field'].items()} }, in the "
            f"first grab {row['change_in_first_grab']}); dropped stale "
            f"{row['dropped_stale']:.1%}; step p99 {row['step_ms']['p99']:.2f} ms; acted {row['acted']:.3f}; "
            f"keys down {row['keys_down_after_close']}",
            flush=True,
        )
    checks = checks_of(rows)
    result = {**run_header("real_game"), "fps": args.fps, "rows": rows, "checks": checks}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2, default=str) + "\n")
    if args.matrix:
        heat_map(rows, args.png or args.out.with_suffix(".png"))
    print(json.dumps(checks, indent=2))


if __name__ == "__main__":
    main()
