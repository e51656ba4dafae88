"""Find a game's HUD fields on a recording: ``python -m flows.calibrate RECORDING``.

    python -m flows.calibrate recordings/screen-0 --out regions.toml [--png regions.png]

Reads frames sampled over the recording (a folder with ``index.jsonl``, as
``flows.record`` writes it) with the OCR model in the ``rapidocr-onnxruntime``
wheel (text detection and recognition on the whole frame), and keeps the text
boxes that **stay put while their text changes**, with digits in them: a HUD's
numbers, not the scenery's. Each is named by what it reads where it can
(``$`` → money, ``12/90`` → ammo, ``HP``/``+`` → health, ``AR``/shield → armor,
then by its values and place: two numbers up to 100 on the left are health
and armor, a larger one is money) or ``text_<n>``, each with room for its widest
value (:func:`_fit`), and written as TOML a config includes::

    include = ["regions.toml"]      # in your config; its regions replace the presets

plus a PNG with the regions drawn on a frame, to look at before a run. Fields
that never changed in the recording are kept only when their text names them
(an unchanging number could be anything); record a stretch where the HUD
changes (take damage, fire, buy) for the rest.
"""

from __future__ import annotations

import argparse
import difflib
import itertools
import re
import sys
from collections import Counter
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from operators.capture.replay import read_index
from operators.errors import RecordingError
from operators.hud import HUD_RANGES, hud_ranges
from operators.reading import HUD_FIELDS
from operators.vision.glyphs import apart_of_colour, solid_runs, text_ink, text_runs
from operators.vision.local import cut_glyph

__all__ = ["Field", "calibrate", "find_fields", "main"]

_DIGITS = re.compile(r"\d+")
_GLYPHS = re.compile(r"[0-9A-Za-z%$/:.,+]")
_AMMO = re.compile(r"\d+\s*/\s*\d+")
_MONEY = re.compile(r"[$¥€£]")
_HEALTH = re.compile(r"^\s*(hp|health|\+|♥)", re.IGNORECASE)
_ARMOR = re.compile(r"^\s*(ar|armou?r|shield|kevlar)", re.IGNORECASE)
_LABELS: dict[str, tuple[str, ...]] = {
    "health": ("HEALTH", "HP"),
    "armor": ("ARMOR", "ARMOUR", "SHIELD", "KEVLAR", "AR"),
    "ammo": ("AMMO", "AMMUNITION", "CLIP"),
    "money": ("MONEY", "CASH", "CREDITS"),
    "arms": ("ARMS", "WEAPONS"),
    "frags": ("FRAGS", "KILLS", "SCORE"),
}
"""Label words a HUD prints beside or under a number (read fuzzily: OCR reads Doom's
"HEALTH" as "AEALTI"). ``arms`` and ``frags`` name numbers the local model does not read."""
_NOT_FIELDS = ("arms",)
"""Labelled numbers that are not HUD state worth a region: Doom's weapon-slot digits."""
LOCAL_FIELDS = ("health", "armor", "ammo", "money")
"""The fields the local model reads (``ammo`` reads ``clip/reserve``)."""


@dataclass
class Field:
    """One HUD text box, tracked over the sampled frames."""

    rects: list[tuple[float, float, float, float]] = field(default_factory=list)
    texts: list[str] = field(default_factory=list)
    frames: set[int] = field(default_factory=set)
    name: str = ""
    why: str = ""

    @property
    def rect(self) -> tuple[float, float, float, float]:
        """The median box (robust to one odd detection)."""
        a = np.median(np.array(self.rects), axis=0)
        return float(a[0]), float(a[1]), float(a[2]), float(a[3])

    def matches(self, r: tuple[float, float, float, float]) -> bool:
        """Same line of text: rows overlap by half the height, columns overlap at all
        (a number grows or shrinks sideways as it changes: 9 → 100)."""
        x0, y0, x1, y1 = self.rect
        rows = min(y1, r[3]) - max(y0, r[1])
        return rows >= 0.5 * min(y1 - y0, r[3] - r[1]) and min(x1, r[2]) > max(x0, r[0])

    @property
    def numbers(self) -> list[str]:
        return ["/".join(_DIGITS.findall(t)) for t in self.texts if _DIGITS.search(t)]

    @property
    def changes(self) -> bool:
        return len(set(self.numbers)) >= 2

    def values(self) -> list[int]:
        return [int(n.split("/")[0]) for n in self.numbers]

    region: tuple[float, float, float, float] = (0.0, 0.0, 0.0, 0.0)
    """What is written: room for the field's widest value, kept clear of its neighbours
    and the panel's edges (:func:`_fit`)."""

    def union(self) -> tuple[float, float, float, float]:
        a = np.array(self.rects)
        return (
            float(a[:, 0].min()),
            float(a[:, 1].min()),
            float(a[:, 2].max()),
            float(a[:, 3].max()),
        )

    def height(self) -> float:
        a = np.array(self.rects)
        return float(np.median(a[:, 3] - a[:, 1]))

    def padded(self) -> tuple[float, float, float, float]:
        return self.region

    at: list[int] = field(default_factory=list)
    """The sampled frame of each of :attr:`rects` (and :attr:`texts`)."""
    glyph: tuple[float, float] = (0.0, 0.0)
    """One glyph's advance and height, relative to the frame (:func:`_fit` measures them)."""
    ink_width: float = 0.0
    """One glyph's inked width (the median), relative to the frame's width."""


def _ocr(image_rgb: np.ndarray, engine: Any) -> list[tuple[tuple[float, float, float, float], str]]:
    h, w = image_rgb.shape[:2]
    found, _elapsed = engine(np.ascontiguousarray(image_rgb[..., ::-1]))  # it wants BGR
    out = []
    for quad, text, _score in found or []:
        xs, ys = [p[0] for p in quad], [p[1] for p in quad]
        out.append(((min(xs) / w, min(ys) / h, max(xs) / w, max(ys) / h), str(text)))
    return out


def _ink_runs(
    image: np.ndarray, rect: tuple[float, float, float, float], gap: float = 0.3
) -> list[tuple[float, float, float, float]]:
    """The parts of a text box separated by blank columns at least ``gap`` × its height
    wide: two numbers the detector read as one line ("45" and "90%" on Doom's status
    bar, 40 px apart, read "4590%"). Ink is a pixel far from the box's median colour."""
    h, w = image.shape[:2]
    x0, y0 = max(int(rect[0] * w), 0), max(int(rect[1] * h), 0)
    x1, y1 = min(int(np.ceil(rect[2] * w)), w), min(int(np.ceil(rect[3] * h)), h)
    crop = image[y0:y1, x0:x1]
    if crop.size == 0:
        return [rect]
    median = np.median(crop.reshape(-1, 3), axis=0).astype(np.int16)
    ink = (np.abs(crop.astype(np.int16) - median).max(axis=2) > 60).any(axis=0)
    need = max(2, int(gap * (y1 - y0)))  # blank columns that end a run
    runs: list[tuple[int, int]] = []
    start = last = None
    for x, on in enumerate(ink):
        if on:
            if start is not None and last is not None and x - last > need:
                runs.append((start, last))
                start = None
            if start is None:
                start = x
            last = x
    if start is not None and last is not None:
        runs.append((start, last))
    if not runs:
        return [rect]
    return [((x0 + a) / w, rect[1], (x0 + b + 1) / w, rect[3]) for a, b in runs]


def _inked(
    rect: tuple[float, float, float, float], image: np.ndarray
) -> tuple[float, float, float, float]:
    """``rect`` trimmed to the columns that hold ink (all of it, if none does)."""
    runs = _ink_runs(image, rect, gap=10.0)  # one run: from the first ink to the last
    return (runs[0][0], rect[1], runs[-1][2], rect[3]) if runs else rect


def _label_pair(word: str) -> int | None:
    """Where two labels read as one word split ("AMMLHEALTH": Doom's AMMO and HEALTH at
    1920x1080, with no space read between them), if they do.

    >>> k = _label_pair("AMMLHEALTH")
    >>> _label_of("AMMLHEALTH"[:k]), _label_of("AMMLHEALTH"[k:]), _label_pair("ARMORO")
    ('ammo', 'health', None)
    """
    best, at = 0.0, None
    for k in range(2, len(word) - 1):
        (a, ra), (b, rb) = _label_match(word[:k]), _label_match(word[k:])
        if a is None or b is None or a == b:
            continue
        if ra * k + rb * (len(word) - k) > best:  # the characters both halves explain
            best, at = ra * k + rb * (len(word) - k), k
    return at


def _words(
    rect: tuple[float, float, float, float], text: str, image: np.ndarray | None = None
) -> list[tuple[tuple[float, float, float, float], str]]:
    """A line of words ("AMMO HEALTH"), each where its ink is (when the blank gaps in
    the box split it into as many runs as words), else by its share of the characters."""
    words = [(m.start(), m.end(), m.group()) for m in re.finditer(r"\S+", text)]
    if len(words) == 1 and _label_pair(text) is not None:
        k = _label_pair(text)
        words = [(0, k, text[:k]), (k, len(text), text[k:])]
    if len(words) < 2:
        return [(rect, text)]
    if image is not None:
        runs = _ink_runs(image, rect)
        if len(runs) == len(words):
            return [(r, word) for r, (_a, _b, word) in zip(runs, words, strict=True)]
    width, n = rect[2] - rect[0], max(len(text), 1)
    return [
        ((rect[0] + width * a / n, rect[1], rect[0] + width * b / n, rect[3]), word)
        for a, b, word in words
    ]


def _cuts_by_labels(
    rect: tuple[float, float, float, float],
    labels: list[tuple[tuple[float, float, float, float], str]],
    image: np.ndarray | None = None,
) -> list[float]:
    """Where to cut a number box that spans the columns of several labels printed under
    (or over) it: midway between one label and the next, moved to the nearest blank
    gap between the box's characters. Doom's status bar reads "50100%" for AMMO 50 and
    HEALTH 100% at 480p, where the gap between the two numbers is no wider than the
    gaps inside them."""
    x0, y0, x1, y1 = rect
    h = y1 - y0
    near = sorted(
        (lx0, lx1)
        for (lx0, ly0, lx1, ly1), word in labels
        if (0 <= ly0 - y1 <= 1.5 * h or 0 <= y0 - ly1 <= 1.5 * h)
        and x0 <= (lx0 + lx1) / 2 <= x1
        and _label_of(word) is not None  # a HUD's label, not text in the picture
    )
    cuts = [(a1 + b0) / 2 for (_a0, a1), (b0, _b1) in itertools.pairwise(near)]
    if image is None or not cuts:
        return cuts
    # the widest gap between two glyphs between the two labels' middles (a label cut
    # from a merged line by its characters' share is only roughly where its ink is)
    ink = _ink(image, rect)
    runs = ink.solid().runs if ink is not None else ()
    w = image.shape[1]
    gaps = [(a[1] + 1, b[0]) for a, b in itertools.pairwise(runs)]
    out = []
    for (a0, a1), (b0, b1), cut in zip(near, near[1:], cuts, strict=False):
        between = [g for g in gaps if (a0 + a1) / 2 * w <= (g[0] + g[1]) / 2 <= (b0 + b1) / 2 * w]
        widest = max(between, key=lambda g: g[1] - g[0], default=None)
        out.append((widest[0] + widest[1]) / 2 / w if widest else cut)
    return out


def _gaps(image: np.ndarray, rect: tuple[float, float, float, float], share: float) -> list[float]:
    """Where a text box's glyphs (:func:`_ink`: the text's own colour, so a panel's
    divider between two numbers does not bridge them; short or thin bits dropped) leave a blank
    gap at least ``share`` × the box's height wide: the middle of each such gap."""
    ink = _ink(image, rect)
    if ink is None:
        return []
    h, w = image.shape[:2]
    runs = ink.solid().runs
    need = share * (rect[3] - rect[1]) * h
    return [(a[1] + 1 + b[0]) / 2 / w for a, b in itertools.pairwise(runs) if b[0] - a[1] > need]


def _split(
    image: np.ndarray, boxes: list[tuple[tuple[float, float, float, float], str]], engine: Any
) -> list[tuple[tuple[float, float, float, float], str]]:
    """Boxes split where the detector merged neighbours: label lines into words (where
    their ink is); a number line between the labels under it, each part read again by
    the recogniser (kept only if every part holds a number)."""
    h, w = image.shape[:2]
    labels: list[tuple[tuple[float, float, float, float], str]] = []
    numbers = []
    for rect, text in boxes:
        if _DIGITS.search(text):
            numbers.append((rect, text))
        else:
            labels.extend(_words(rect, text, image))
    out = list(labels)
    for rect, text in numbers:
        # Only where labels say two fields share the line: a gap inside one number (a
        # thousands separator, "$1,100") looks the same as a gap between two.
        cuts = _cuts_by_labels(rect, labels, image)
        if not cuts:
            # No labels to say so (the detector misses Doom's AMMO at 1600x1200): a blank
            # gap of half the line's height or more between inked runs. Each part must
            # then read as a number on its own.
            cuts = _gaps(image, rect, 0.5)
        edges = [rect[0], *cuts, rect[2]]
        parts = [_inked((a, rect[1], b, rect[3]), image) for a, b in itertools.pairwise(edges)]
        if len(parts) < 2 or engine is None or not hasattr(engine, "text_rec"):
            out.append((rect, text))
            continue
        crops = [
            np.ascontiguousarray(
                image[
                    int(r[1] * h) : int(np.ceil(r[3] * h)), int(r[0] * w) : int(np.ceil(r[2] * w))
                ][..., ::-1]
            )
            for r in parts
        ]
        read, _elapsed = engine.text_rec(crops)
        texts = [str(t).strip() for t, _score in read]
        if all(_DIGITS.search(t) for t in texts):  # numbers side by side: split them
            out.extend(zip(parts, texts, strict=True))
        else:  # a label and its number ("SHIELD 50"): one field, named by its text
            out.append((rect, text))
    return out


def find_fields(
    frames: Sequence[np.ndarray],
    engine: Any = None,
    ranges: Mapping[str, tuple[int, int]] | None = None,
) -> list[Field]:
    """The HUD fields on ``frames`` (RGB), named where their text, their label or their
    values say."""
    if engine is None:
        from rapidocr_onnxruntime import RapidOCR

        engine = RapidOCR()
    found = []
    labels: list[tuple[tuple[float, float, float, float], str]] = []
    for i, image in enumerate(frames):
        for rect, text in _split(image, _ocr(image, engine), engine):
            if _DIGITS.search(text):
                found.append((i, rect, text))
            else:
                labels.append((rect, text))
    # Narrow boxes first: a line the detector merged ("HP 100 AR 50") comes after the
    # fields it spans exist, matches more than one of them, and is left out.
    found.sort(key=lambda b: b[1][2] - b[1][0])
    fields: list[Field] = []
    for i, rect, text in found:
        homes = [f for f in fields if f.matches(rect)]
        if len(homes) > 1:
            # a line spanning two fields (most of each) was merged: leave it out; else it
            # is this field's text, boxed a little wider than a stray fragment beside it
            # (fields seen in two frames or more count; a one-off fragment does not)
            covered = [
                (min(rect[2], f.rect[2]) - max(rect[0], f.rect[0])) / (f.rect[2] - f.rect[0])
                for f in homes
            ]
            if (
                sum(c >= 0.5 and len(f.frames) >= 2 for c, f in zip(covered, homes, strict=True))
                > 1
            ):
                continue
            weight = [c * len(f.frames) for c, f in zip(covered, homes, strict=True)]
            homes = [homes[int(np.argmax(weight))]]
        home = homes[0] if homes else Field()
        if not homes:
            fields.append(home)
        home.rects.append(rect)
        home.texts.append(text)
        home.frames.add(i)
        home.at.append(i)
    steady = [
        f
        for f in fields
        if len(f.frames) >= max(2, len(frames) // 3)  # it stays put (seen in a third)
        and len(f.numbers) >= len(f.texts) / 2  # it holds numbers
    ]
    aspect = frames[0].shape[1] / frames[0].shape[0]
    # A label box under two numbers ("AMMOHEALTH" read as one word) names neither: the
    # strip under each is read on its own instead.
    labels = [
        (rect, word)
        for rect, word in labels
        if sum(_closeness(f, rect, aspect) >= 0.3 for f in steady) < 2
    ]
    labels += _labels_under(steady, labels, frames, engine, aspect)
    game = {"ammo" if k == "ammo_reserve" else k for k in ranges} if ranges else LOCAL_FIELDS
    _name(steady, labels, aspect, game)
    kept = [
        f for f in steady if (f.changes or f.name in LOCAL_FIELDS) and f.name not in _NOT_FIELDS
    ]
    others = [g.union() for g in fields if g not in kept and len(g.frames) >= 2]
    others += [r for r, _word in labels]
    _fit(kept, frames, others, ranges)
    return kept


@dataclass(frozen=True)
class Ink:
    """A number's ink on one frame, in pixels of that frame: its glyph runs (columns
    with ink, separated by blank columns), each ``(x0, x1, top, bottom)``, inclusive."""

    runs: tuple[tuple[int, int, int, int], ...]

    @property
    def left(self) -> int:
        return self.runs[0][0]

    @property
    def right(self) -> int:
        return self.runs[-1][1]

    @property
    def top(self) -> int:
        return min(r[2] for r in self.runs)

    @property
    def bottom(self) -> int:
        return max(r[3] for r in self.runs)

    def solid(self) -> Ink:
        """The runs that can be glyphs (:func:`~operators.vision.glyphs.solid_runs`)."""
        return Ink(tuple(solid_runs(list(self.runs))))

    def glyphs(self, chars: int) -> Ink:
        """The :meth:`solid` runs that are the text's ``chars`` glyphs: where there are
        more (a panel's edge inside the detector's box), the thinnest run at either end
        goes, one at a time."""
        runs = list(self.solid().runs)
        while len(runs) > max(chars, 1):
            first, last = runs[0][1] - runs[0][0], runs[-1][1] - runs[-1][0]
            runs.pop(0 if first < last else -1)
        return Ink(tuple(runs))


def _crop(
    image: np.ndarray, rect: tuple[float, float, float, float]
) -> tuple[np.ndarray, int, int]:
    """The pixels of a relative box, and its top-left corner in pixels."""
    h, w = image.shape[:2]
    x0, y0 = max(int(rect[0] * w), 0), max(int(rect[1] * h), 0)
    x1, y1 = min(int(np.ceil(rect[2] * w)), w), min(int(np.ceil(rect[3] * h)), h)
    return image[y0:y1, x0:x1], x0, y0


def _ink(
    image: np.ndarray, rect: tuple[float, float, float, float], colour: np.ndarray | None = None
) -> Ink | None:
    """The glyphs inside a text box, as the local model sees them
    (:func:`~operators.vision.glyphs.text_runs`), less an icon set apart beside them in
    another colour than the text's ``colour`` (:func:`~operators.vision.glyphs.apart_of_colour`:
    Doom's full-screen ammo clip). ``None`` if the box holds none."""
    crop, x0, y0 = _crop(image, rect)
    if crop.shape[0] < 3 or crop.shape[1] < 3:
        return None
    ink = text_ink(crop)
    runs = apart_of_colour(crop, ink, text_runs(crop, ink), colour)
    return Ink(tuple((x0 + a, x0 + b, y0 + t, y0 + u) for a, b, t, u in runs)) if runs else None


def _text_colour(f: Field, frames: Sequence[np.ndarray]) -> np.ndarray | None:
    """A number's colour over its sightings: the median of each one's text ink (the
    digits outweigh an icon beside them)."""
    colours = []
    for i, rect, text in zip(f.at, f.rects, f.texts, strict=True):
        if _DIGITS.search(text):
            crop, _x, _y = _crop(frames[i], rect)
            if crop.shape[0] >= 3 and crop.shape[1] >= 3:
                ink = text_ink(crop)
                if ink.any():
                    colours.append(np.median(crop[ink].astype(np.float32), axis=0))
    return np.median(np.array(colours), axis=0) if colours else None


def _widest(f: Field, ranges: Mapping[str, tuple[int, int]]) -> int:
    """How many glyphs the widest value of ``f`` takes: the digits of the largest value
    its range allows (or one more than it showed, for a field with no range), at least
    as many as it showed, plus the other characters it prints ("%", "/", a label).

    >>> f = Field(texts=["45", "100%", "9%"], name="health")
    >>> _widest(f, {"health": (0, 200)})
    4
    """
    seen = [t.replace(" ", "") for t in f.texts if _DIGITS.search(t)]
    digits_seen = max((len(n) for t in seen for n in _DIGITS.findall(t)), default=1)
    extra = max((sum(not c.isdigit() for c in t) for t in seen), default=0)
    hi = ranges.get(f.name)
    digits = max(len(str(hi[1])), digits_seen) if hi else digits_seen + 1
    if f.name == "ammo" and any("/" in t for t in seen):  # clip/reserve: both numbers
        reserve = ranges.get("ammo_reserve")
        digits += len(str(reserve[1])) if reserve else digits
    return digits + extra


def _fit(
    fields: list[Field],
    frames: Sequence[np.ndarray],
    others: Sequence[tuple[float, float, float, float]] = (),
    ranges: Mapping[str, tuple[int, int]] | None = None,
) -> None:
    """Each field's region: room for its widest value, in its own glyphs.

    On every frame a field was seen, its ink gives the glyphs' runs and rows; the
    advance (one glyph's width with its spacing) is the median step between
    consecutive glyphs. Which edge the number keeps as it grows (Doom's status bar:
    the right; a HUD that starts a number after an icon: the left) is the edge that
    stayed put while the glyph count changed; a field seen at one width grows both
    ways. Its widest value (:func:`_widest`, from ``ranges``) is laid from that edge,
    with a quarter glyph of background either side and a sixth of the glyph height
    above and below. It is then bounded by the other fields' widest extents and the
    other text (labels, numbers not kept), halfway between, but never cut into its
    own ink. Everything is measured on ink, not on the detector's boxes, so two
    recordings of one HUD give the same regions to within a pixel or two."""
    if not frames:
        return
    height, width = frames[0].shape[:2]
    ranges = ranges or {}
    inks: list[list[tuple[Ink, int]]] = []
    measured: dict[int, tuple[float, float, float, str, int, float, float]] = {}
    for f in fields:
        seen = []
        colour = _text_colour(f, frames)
        for i, rect, text in zip(f.at, f.rects, f.texts, strict=True):
            if not _DIGITS.search(text):
                continue
            ink = _ink(frames[i], rect, colour)
            if ink is not None:
                chars = len(_GLYPHS.findall(text))  # not the recogniser's "#" for a bevel
                solid = ink.solid().runs
                # no glyph cut by the detector's box: one at its edge as wide as a glyph
                widest = max(r[1] - r[0] + 1 for r in solid)
                whole = all(
                    r[1] - r[0] + 1 >= 0.55 * widest
                    for r in (solid[0], solid[-1])
                    if r[0] <= int(rect[0] * width) or r[1] >= int(rect[2] * width) - 1
                )
                seen.append((ink.glyphs(chars), chars, len(solid) == chars and whole))
        # Sightings whose whole glyphs match what was read, where there are enough: a box
        # the detector merged with part of a neighbour ("516": 51 and half a 0) is not one.
        clean = [(ink, chars) for ink, chars, ok in seen if ok]
        seen = clean if len(clean) * 3 >= len(seen) else [(i, c) for i, c, _ok in seen]
        inks.append(seen)
        if not seen:
            continue
        steps = []
        for ink, chars in seen:
            if len(ink.runs) == chars and chars >= 2:  # glyphs that segment cleanly
                steps += [q[1] - p[1] for p, q in itertools.pairwise(ink.runs)]
                steps += [q[0] - p[0] for p, q in itertools.pairwise(ink.runs)]
        glyph_h = float(np.median([ink.bottom - ink.top + 1 for ink, _c in seen]))
        steps = [s for s in steps if 0.25 * glyph_h <= s <= 2.0 * glyph_h]
        widths = [r[1] - r[0] + 1 for ink, c in seen if len(ink.runs) == c for r in ink.runs]
        if steps:
            advance = float(np.median(steps))
        else:
            advance = float(np.median([(ink.right - ink.left + 1) / max(c, 1) for ink, c in seen]))
        counts = {c for _ink_, c in seen}
        lo, hi, at_left, at_right = _extents(seen, advance)
        # Which edge stays put, from the widths seen often enough to trust (a box the
        # detector drew around one glyph of "100%" once is not the number at one width):
        # where each width's number usually starts and ends.
        tally = Counter(c for _ink_, c in seen)
        often = {c for c, k in tally.items() if k >= max(2, 0.1 * len(seen))}
        left_moves = float(np.ptp([at_left[c] for c in often])) if often else 0.0
        right_moves = float(np.ptp([at_right[c] for c in often])) if often else 0.0
        align = "?"  # seen at one width: unknown
        if len(often) >= 2:
            align = "c"  # centred, or no edge stayed put
            if right_moves <= 0.3 * advance < left_moves:
                align = "r"
            elif left_moves <= 0.3 * advance < right_moves:
                align = "l"
        # the rows most sightings share: a box that reached into the number above or below
        # (stacked numbers of an overlay HUD) does not stretch them
        top = float(np.median([ink.top for ink, _c in seen])) / height
        bottom = (float(np.median([ink.bottom for ink, _c in seen])) + 1) / height
        glyph_w = float(np.median(widths)) if widths else advance
        measured[id(f)] = (lo, hi, advance, align, max(counts), top, bottom)
        f.ink_width = min(glyph_w, advance) / width
        f.glyph = (advance / width, glyph_h / height)
    # A field seen at one width keeps the edge every other field keeps, where they agree
    # (a HUD aligns its numbers one way: Doom's status bar, to the right); the named
    # fields only: a text the calibration could not name may be no number at all (Doom's
    # ARMS grid, "2 3 4", whose digits come and go from the left).
    known = {
        measured[id(f)][3]
        for f in fields
        if id(f) in measured and measured[id(f)][3] != "?" and not f.name.startswith("text_")
    }
    habit = known.pop() if len(known) == 1 and known <= {"l", "r"} else "?"
    extents: list[tuple[float, float, float, float] | None] = []
    for fi, f in enumerate(fields):
        if id(f) not in measured:
            extents.append(None)
            continue
        lo, hi, advance, align, most, top, bottom = measured[id(f)]
        n = _widest(f, ranges)
        align = habit if align == "?" else align
        # the widest value's ink: that many glyphs, or the widest sighting grown by the
        # glyphs it lacked (a label and a space before the number, a proportional font)
        grown = max(ink.right - ink.left + 1 + max(n - c, 0) * advance for ink, c in inks[fi])
        inked = max((n - 1) * advance + f.ink_width * width, grown)
        if align == "r":
            x0, x1 = hi - inked, hi
        elif align == "l":
            x0, x1 = lo, lo + inked
        else:  # room for the widest value kept at either edge (a "1" is narrower than a "2")
            grow = max(n - most, 0) * advance
            x0, x1 = min(lo - grow, hi - inked), max(hi + grow, lo + inked)
        extents.append((x0 / width, top, x1 / width, bottom))
    for f, ext in zip(fields, extents, strict=True):
        if ext is None:
            f.region = tuple(round(v, 4) for v in f.union())  # type: ignore[assignment]
            continue
        x0, y0, x1, y1 = ext
        adv, gh = f.glyph
        own_left, own_right = measured[id(f)][0] / width, measured[id(f)][1] / width
        left, right = max(0.0, x0 - 0.25 * adv), min(1.0, x1 + 0.25 * adv)
        top, bottom = max(0.0, y0 - gh / 6), min(1.0, y1 + gh / 6)
        for g, gext in zip(fields, extents, strict=True):
            if g is f or gext is None:
                continue
            gx0, gy0, gx1, gy1 = gext
            if min(y1, gy1) > max(y0, gy0):  # a number on the same line
                # halfway between the two widest values, or, where those overlap,
                # halfway between the inks seen: never into either number's ink
                glo, ghi = (v / width for v in measured[id(g)][:2])
                if glo + ghi < own_left + own_right:  # on the left
                    cut = (gx1 + x0) / 2 if gx1 <= x0 else (ghi + own_left) / 2
                    left = max(left, min(cut, own_left))
                else:
                    cut = (x1 + gx0) / 2 if x1 <= gx0 else (own_right + glo) / 2
                    right = min(right, max(cut, own_right))
            elif min(right, gx1) > max(left, gx0):  # in the same column
                if gy1 <= y0:
                    top = max(top, (gy1 + y0) / 2)
                elif gy0 >= y1:
                    bottom = min(bottom, (y1 + gy0) / 2)
        for ox0, oy0, ox1, oy1 in others:  # labels, numbers not kept
            if min(ox1, own_right) > max(ox0, own_left) and min(oy1, y1) > max(oy0, y0):
                continue  # its own text, boxed another way (or a merged line holding it)
            if min(y1, oy1) > max(y0, oy0):  # on the same line: halfway between
                if ox0 + ox1 < own_left + own_right:  # on the left
                    left = max(left, min((ox1 + x0) / 2, own_left))
                else:
                    right = min(right, max((x1 + ox0) / 2, own_right))
            elif min(right, ox1) > max(left, ox0):  # in the same column
                if oy1 <= y0:
                    top = max(top, (oy1 + y0) / 2)
                elif oy0 >= y1:
                    bottom = min(bottom, (y1 + oy0) / 2)
        left, right = _icons(frames, (left, top, right, bottom), own_left, own_right)
        left, right = _panel_edges(frames, (left, top, right, bottom), own_left, own_right)
        left, right = _uncut(frames, (left, top, right, bottom), own_left, own_right)
        f.region = _on_pixels((left, top, right, bottom), width, height)


def _extents(
    seen: Sequence[tuple[Ink, int]], advance: float
) -> tuple[float, float, dict[int, float], dict[int, float]]:
    """Where a number's ink reaches over its sightings ``(ink, glyph count)``: the
    leftmost start and the rightmost end (past the last column), and for each count the
    median start and end. A sighting that reaches more than 0.3 of an ``advance`` past
    the others of its count is not counted in the first two: scenery of the text's
    colour beside it (a red monster behind Doom's full-screen ammo), which would stretch
    the region over an icon.

    >>> ink = lambda x0, x1: Ink(((x0, x1, 0, 9),))
    >>> lo, hi, _l, at_right = _extents([(ink(10, 29), 2), (ink(11, 29), 2), (ink(12, 35), 2)], 10)
    >>> lo, hi, at_right[2]
    (10, 30, 30.0)
    """
    at_left: dict[int, float] = {}
    at_right: dict[int, float] = {}
    starts, ends = [], []
    for count in sorted({c for _ink_, c in seen}):
        lefts = [ink.left for ink, c in seen if c == count]
        rights = [ink.right + 1 for ink, c in seen if c == count]
        at_left[count], at_right[count] = float(np.median(lefts)), float(np.median(rights))
        starts.append(min(x for x in lefts if x >= at_left[count] - 0.3 * advance))
        ends.append(max(x for x in rights if x <= at_right[count] + 0.3 * advance))
    return min(starts), max(ends), at_left, at_right


def _on_pixels(
    rect: tuple[float, float, float, float], width: int, height: int
) -> tuple[float, float, float, float]:
    """``rect`` written so that every reader's ``int(x * width)`` lands on the pixel meant
    (the middle of it, not a rounding error away from the one before), to 5 decimals.

    >>> _on_pixels((4 / 1024, 0.5, 100 / 1024, 0.75), 1024, 768)
    (0.00439, 0.50065, 0.09814, 0.75065)
    >>> _on_pixels((0.9, 0.9, 1.0, 1.0), 1024, 768)[2:]
    (1.0, 1.0)
    """
    x0, x1 = round(rect[0] * width), round(rect[2] * width)
    y0, y1 = round(rect[1] * height), round(rect[3] * height)
    return (
        round((x0 + 0.5) / width, 5),
        round((y0 + 0.5) / height, 5),
        1.0 if x1 >= width else round((x1 + 0.5) / width, 5),  # to the frame's edge
        1.0 if y1 >= height else round((y1 + 0.5) / height, 5),
    )


def _uncut(
    frames: Sequence[np.ndarray],
    rect: tuple[float, float, float, float],
    own_left: float,
    own_right: float,
) -> tuple[float, float]:
    """``rect``'s left and right, moved in a pixel at a time (never into the number's own
    ink) while the local model would see a glyph cut by that edge on any of ``frames``
    (:func:`~operators.vision.local.cut_glyph`): a panel's bevel or the next box's ink
    the edge still reaches. A region that reads as cut on the very frames it was fitted
    on would never be read."""
    h, w = frames[0].shape[:2]
    x0, x1 = int(rect[0] * w), int(rect[2] * w)
    y0, y1 = int(rect[1] * h), int(rect[3] * h)
    a, b = int(own_left * w), int(np.ceil(own_right * w))
    for _ in range(w):
        # an edge that cuts a glyph on most frames (not the picture behind an overlay
        # HUD, which moves: on a few)
        cuts = Counter(cut_glyph(image[y0:y1, x0:x1]) for image in frames)
        sides = {side for side, k in cuts.items() if k * 2 > len(frames)}
        # The room left for wider values holds no glyph on these frames: something tall
        # at its outer edge on most of them is the panel's (a bevel, which a blank field
        # would show as a cut glyph); on a few, it is the picture behind an overlay HUD.
        if a - x0 >= 4:
            at_left = sum(cut_glyph(image[y0:y1, x0:a]) == "left" for image in frames)
            sides.add("left" if at_left * 2 > len(frames) else None)
        if x1 - b >= 4:
            at_right = sum(cut_glyph(image[y0:y1, b:x1]) == "right" for image in frames)
            sides.add("right" if at_right * 2 > len(frames) else None)
        moved = False
        if "left" in sides and x0 < a - 1:
            x0, moved = x0 + 1, True
        if "right" in sides and x1 > b + 1:
            x1, moved = x1 - 1, True
        if not moved:
            break
    return x0 / w, x1 / w


def _pixel_box(
    image: np.ndarray, rect: tuple[float, float, float, float]
) -> tuple[int, int, int, int]:
    """A relative box's pixel bounds on ``image``: ``x0, y0`` down, ``x1, y1`` up."""
    h, w = image.shape[:2]
    return int(rect[0] * w), int(rect[1] * h), int(np.ceil(rect[2] * w)), int(np.ceil(rect[3] * h))


def _icons(
    frames: Sequence[np.ndarray],
    rect: tuple[float, float, float, float],
    own_left: float,
    own_right: float,
) -> tuple[float, float]:
    """``rect``'s left and right, moved in to the first column on each side of the
    number's own ink that holds an icon over moving scenery: an overlay HUD's picture
    changes from frame to frame, an icon beside its number (Doom's full-screen ammo clip
    and medkit) does not. A column is the icon's where at least a third of the band's
    rows keep their colour (within 16) on 80 % of ``frames`` and stand out from the
    band's (by more than 60), looked for from 0.15 of the
    band's height past the ink (a digit that stays, as the first of "25" to "21" does,
    keeps its outline still too). Where the band's own
    background keeps still too (a status bar's panel, a recording of a player who never
    moved), nothing tells an icon from it: the box is left as it is."""
    w, (x0, y0, x1, y1) = frames[0].shape[1], _pixel_box(frames[0], rect)
    if x1 - x0 < 3 or y1 - y0 < 3 or len(frames) < 5:
        return rect[0], rect[2]
    band = np.stack([image[y0:y1, x0:x1] for image in frames]).astype(np.int16)
    median = np.median(band, axis=0)
    still = (np.abs(band - median).max(axis=3) <= 16).mean(axis=0) >= 0.8
    a, b = int(own_left * w) - x0, int(np.ceil(own_right * w)) - x0
    share = still.mean(axis=0)  # per column: the rows that keep still
    outside = np.r_[share[: max(a, 0)], share[max(b, 0) :]]
    if not len(outside) or float(np.median(outside)) > 0.2:
        return rect[0], rect[2]  # the background keeps still: no telling
    # ... and stand out from the band's colour (a flat floor keeps its colour as it moves);
    # the icon then reaches on over the still columns beside (its dark outline)
    body = share >= 1 / 3
    still &= np.abs(median - np.median(median.reshape(-1, 3), axis=0)).max(axis=2) > 60
    icon = still.mean(axis=0) >= 1 / 3
    left, right = rect[0], rect[2]
    gap = int(0.15 * (y1 - y0)) + 1  # the glyphs' own outline and shadow, still where they are
    inner, outer = a - gap, max(b, 0) + gap - 1
    for x in range(inner, 0, -1):
        if icon[x] and icon[x - 1]:  # two columns: not a lone pixel of still floor
            while x < inner and body[x + 1]:
                x += 1
            left = (x0 + x + 1) / w
            break
    for x in range(outer, x1 - x0 - 1):
        if icon[x] and icon[x + 1]:
            while x > outer and body[x - 1]:
                x -= 1
            right = (x0 + x) / w
            break
    return left, right


def _panel_edges(
    frames: Sequence[np.ndarray],
    rect: tuple[float, float, float, float],
    own_left: float,
    own_right: float,
) -> tuple[float, float]:
    """``rect``'s left and right, moved in to the first column on each side of the
    number's own ink (``own_left``..``own_right``) that is part of the picture's fixed
    structure: a panel's edge or divider, far from the band's median colour over most
    of the band's height on most frames (a number that changes is not fixed; the
    scenery behind an overlay HUD moves). Doom's status bar: the bevel between the
    AMMO and HEALTH boxes, which OCR reads as "1" in an empty AMMO box."""
    w, (x0, y0, x1, y1) = frames[0].shape[1], _pixel_box(frames[0], rect)
    if x1 - x0 < 3 or y1 - y0 < 3:
        return rect[0], rect[2]
    shares = []
    for image in frames:
        band = image[y0:y1, x0:x1].astype(np.int16)
        median = np.median(band.reshape(-1, 3), axis=0).astype(np.int16)
        shares.append((np.abs(band - median).max(axis=2) > 60).mean(axis=0))
    fixed = np.mean(np.array(shares) >= 0.6, axis=0) >= 0.8
    a, b = int(own_left * w) - x0, int(np.ceil(own_right * w)) - x0
    left, right = rect[0], rect[2]
    for x in range(a - 1, -1, -1):
        if fixed[x]:
            left = (x0 + x + 1) / w
            break
    for x in range(b, x1 - x0):
        if fixed[x]:
            right = (x0 + x) / w
            break
    return left, right


def _label_of(word: str) -> str | None:
    """The field a label word names, read fuzzily, or ``None``.

    >>> [_label_of(w) for w in ("AEALTI", "ARMORO", "ARMS", "AMM", "HP", "ARMRO", "Health:")]
    ['health', 'armor', 'arms', 'ammo', 'health', 'armor', 'health']
    """
    return _label_match(word)[0]


def _label_match(word: str) -> tuple[str | None, float]:
    """:func:`_label_of` with how well the word matches its label (0..1)."""
    w = re.sub(r"[^A-Z]", "", word.upper())
    if len(w) < 2:
        return None, 0.0
    best, score = None, 0.0
    for name, words in _LABELS.items():
        for label in words:
            if len(label) <= 2 or len(w) <= 2:
                r = 1.0 if w == label else 0.0
            else:
                r = difflib.SequenceMatcher(None, w, label).ratio()
            if r > score:
                best, score = name, r
    return (best, score) if score >= 0.65 else (None, 0.0)


def _closeness(f: Field, label: tuple[float, float, float, float], aspect: float) -> float:
    """How much ``label`` reads as ``f``'s: the share of the narrower of the two that
    their columns share, for a label under or over ``f`` (within one and a half of its
    heights); 1 for a label just left of it on its line; 0 otherwise."""
    x0, y0, x1, y1 = f.rect  # the median box: a merged line's box would reach its neighbour's label
    lx0, ly0, lx1, ly1 = label
    h = f.height()
    if (
        min(y1, ly1) - max(y0, ly0) >= 0.5 * min(h, ly1 - ly0)
        and 0.5 * h <= ly1 - ly0 <= 2 * h  # a label of the number's own line, not a block's
        and 0 <= x0 - lx1 <= 2 * h / aspect
    ):
        return 1.0
    if not (0 <= ly0 - y1 <= 1.5 * h or 0 <= y0 - ly1 <= 1.5 * h):
        return 0.0
    narrow = max(min(x1 - x0, lx1 - lx0), 1e-9)
    return max(0.0, min(x1, lx1) - max(x0, lx0)) / narrow


def _labels_of(
    fields: list[Field],
    labels: list[tuple[tuple[float, float, float, float], str]],
    aspect: float = 16 / 9,
) -> dict[int, str]:
    """Each field's name by the labels printed next to it. A label counts for the one
    field it is closest to (a label line read as one, "AMMO HEALTH", and cut by its
    characters can reach into the neighbour), weighted by how close; a field takes the
    name with the most weight, if at least 0.3."""
    votes: dict[int, Counter[str]] = {}
    for rect, word in labels:
        name = _label_of(word)
        if name is None or not fields:
            continue
        scores = [_closeness(f, rect, aspect) for f in fields]
        best = int(np.argmax(scores))
        if scores[best] >= 0.3:
            votes.setdefault(best, Counter())[name] += scores[best]
    # One field a name: the field its label is closest to, by weight; a field whose label
    # names a field already given keeps no name (it is not that field).
    out: dict[int, str] = {}
    ranked = sorted(
        ((w, i, name) for i, v in votes.items() for name, w in v.most_common(1)), reverse=True
    )
    for _w, i, name in ranked:
        if name not in out.values() or name in _NOT_FIELDS:
            out[i] = name
    return out


def _name(
    fields: list[Field],
    labels: Sequence[tuple[tuple[float, float, float, float], str]] = (),
    aspect: float = 16 / 9,
    game: Collection[str] = LOCAL_FIELDS,
) -> None:
    """Name each field: by its text, then its label, then its values and place; only
    names of fields this game has (``game``: Doom has no money), each name once."""

    def vote(f: Field, pattern: re.Pattern[str]) -> bool:
        return sum(bool(pattern.search(t)) for t in f.texts) * 2 > len(f.texts)

    taken: set[str] = set()

    def give(f: Field, name: str, why: str) -> None:
        if name not in game and name not in _LABELS:
            return
        if not f.name and (name not in taken or name in _NOT_FIELDS):
            f.name, f.why = name, why
            taken.add(name)

    for f in fields:  # by what the text says
        if vote(f, _MONEY):
            give(f, "money", "its text has a currency sign")
        elif vote(f, _AMMO):
            give(f, "ammo", "it reads clip/reserve")
        elif vote(f, _HEALTH):
            give(f, "health", "its text starts with HP / + / health")
        elif vote(f, _ARMOR):
            give(f, "armor", "its text starts with AR / armor / shield")
    labelled = _labels_of(fields, list(labels), aspect)
    for i, name in labelled.items():  # by its label
        give(fields[i], name, "its label reads " + name.upper())
    # by values and place: small numbers left to right are health then armor, a number
    # that goes past 100 is money. Not on a HUD that labels its numbers: there, a number
    # without a label is something else (Doom's weapon slots, its ammo table).
    rest = [] if labelled else [f for f in fields if not f.name]
    rest.sort(key=lambda f: (f.rect[0], f.rect[1]))
    # numbers stacked in one column count from the bottom (Doom's full-screen HUD: health
    # at the bottom, armor over it), numbers side by side from the left
    for a, b in itertools.pairwise(list(rest)):
        if (
            min(a.rect[2], b.rect[2]) - max(a.rect[0], b.rect[0])
            > 0.5 * min(a.rect[2] - a.rect[0], b.rect[2] - b.rect[0])
            and a.rect[1] < b.rect[1]
        ):
            i, j = rest.index(a), rest.index(b)
            rest[i], rest[j] = b, a
    for f in rest:
        values = f.values()
        if values and f.rect[0] >= 0.5 and f.rect[1] >= 0.5 and "ammo" in game:
            give(f, "ammo", "a number in the bottom right, where HUDs keep the ammo")
        elif values and max(values) > 100 and "money" in game:
            give(f, "money", "its value goes past 100")
        elif values and f.rect[0] < 0.5:
            give(
                f, "health" if "health" not in taken else "armor", "a number up to 100 on the left"
            )
    n = 0
    for f in fields:
        if not f.name:
            n += 1
            f.name, f.why = f"text_{n}", "a changing number the calibration could not name"


def _labels_under(
    fields: list[Field],
    labels: list[tuple[tuple[float, float, float, float], str]],
    frames: Sequence[np.ndarray],
    engine: Any,
    aspect: float,
) -> list[tuple[tuple[float, float, float, float], str]]:
    """Labels the detector missed: for a field with no label word under or over it, the
    recogniser reads the strip just under it, then just over it (the detector finds no
    "AMMO" under Doom's ammo at 1600x1200; the recogniser reads it)."""
    if engine is None or not hasattr(engine, "text_rec"):
        return []
    found = []
    for f in fields:
        if any(_closeness(f, rect, aspect) >= 0.3 and _label_of(w) for rect, w in labels):
            continue
        x0, y0, x1, y1 = f.rect  # the median box: not a merged line's
        h = y1 - y0
        # a label is often wider than its number ("ARMOR" over "0%"): two heights each way
        middle, reach = (x0 + x1) / 2, 2 * h / aspect
        x0, x1 = max(0.0, min(x0, middle - reach)), min(1.0, max(x1, middle + reach))
        image = frames[f.at[0]]
        ih, iw = image.shape[:2]
        for strip in ((x0, y1, x1, min(1.0, y1 + 0.8 * h)), (x0, max(0.0, y0 - 0.8 * h), x1, y0)):
            crop = image[
                int(strip[1] * ih) : int(np.ceil(strip[3] * ih)),
                int(strip[0] * iw) : int(np.ceil(strip[2] * iw)),
            ]
            if crop.shape[0] < 4 or crop.shape[1] < 4:
                continue
            (text, score), *_ = engine.text_rec([np.ascontiguousarray(crop[..., ::-1])])[0]
            if score >= 0.5 and _label_of(str(text)) is not None:
                found.append((strip, str(text)))
                break
    return found


def sample_frames(recording: Path, count: int) -> list[np.ndarray]:
    """``count`` frames spread evenly over a recording (RGB)."""
    index = recording / "index.jsonl"
    if not index.is_file():
        msg = f"{recording}: no index.jsonl here; record one with `python -m bytewax.run flows.record`"
        raise RecordingError(msg)
    entries = [e for e in read_index(recording) if e.file is not None]
    if not entries:
        msg = f"{index}: no frames"
        raise RecordingError(msg)
    picks = np.unique(np.linspace(0, len(entries) - 1, min(count, len(entries))).astype(int))
    frames = []
    for i in picks:
        file = recording / str(entries[i].file)
        image = cv2.imread(str(file), cv2.IMREAD_COLOR)
        if image is None:
            continue  # a damaged frame: the others will do
        frames.append(np.ascontiguousarray(image[..., ::-1]))
    if len(frames) < 2:
        msg = f"{recording}: fewer than 2 readable frames"
        raise RecordingError(msg)
    return frames


def to_toml(fields: list[Field], recording: Path, ranges: str | None = None) -> str:
    def table(items: list[Field]) -> str:
        return "{ " + ", ".join(f"{f.name} = {list(f.padded())}" for f in items) + " }"

    lines = [
        f"# HUD regions found on {recording} by `python -m flows.calibrate`.",
        '# Use them: include = ["<this file>"] in your config (they replace the presets).',
        "# Relative [x0, y0, x1, y1], each with room for its field's widest value;",
        "# look at the PNG next to this file before a run.",
    ]
    for f in fields:
        sample = ", ".join(sorted(set(f.numbers))[:6])
        lines.append(f"#   {f.name}: {f.why}; read {sample}")
    lines += ["", "[hud]", f"regions = {table(fields)}"]
    if ranges is not None:
        lines.append(f"ranges = {ranges!r}".replace("'", '"'))
    return "\n".join(lines) + "\n"


def draw(frame: np.ndarray, fields: list[Field], path: Path) -> None:
    image = np.ascontiguousarray(frame[..., ::-1]).copy()  # BGR for OpenCV
    h, w = image.shape[:2]
    for f in fields:
        x0, y0, x1, y1 = f.padded()
        p0, p1 = (int(x0 * w), int(y0 * h)), (int(x1 * w), int(y1 * h))
        colour = (0, 220, 255) if f.name in LOCAL_FIELDS else (255, 160, 0)
        cv2.rectangle(image, p0, p1, colour, max(1, h // 360))
        cv2.putText(
            image,
            f.name,
            (p0[0], max(p0[1] - 4, 12)),
            cv2.FONT_HERSHEY_SIMPLEX,
            max(0.4, h / 900),
            colour,
            max(1, h // 540),
            cv2.LINE_AA,
        )
    if not cv2.imwrite(str(path), image):
        msg = f"cannot write {path}"
        raise OSError(msg)


def calibrate(
    recording: Path,
    out: Path,
    png: Path | None = None,
    frames: int = 24,
    ranges: str | Mapping[str, Sequence[int]] | None = None,
) -> list[Field]:
    """Find the fields, write the TOML and the PNG; returns the fields. ``ranges`` (a
    preset name, ``"doom"``, or ``{field: [lo, hi]}``; CS2's by default) says what each
    field can show: its widest value sets how wide its region is."""
    checked = hud_ranges(ranges or "cs2", "--ranges", (*HUD_FIELDS,))
    sampled = sample_frames(recording, frames)
    fields = find_fields(sampled, ranges=checked)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(
        to_toml(fields, recording, ranges if isinstance(ranges, str) else None), encoding="utf-8"
    )
    png = png or out.with_suffix(".png")
    # draw on the frame where the most fields were seen
    best = max(range(len(sampled)), key=lambda i: sum(i in f.frames for f in fields))
    draw(sampled[best], fields, png)
    return fields


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("recording", type=Path, help="a recording folder (with index.jsonl)")
    ap.add_argument("--out", type=Path, default=Path("regions.toml"))
    ap.add_argument("--png", type=Path, help="default: next to --out, .png")
    ap.add_argument("--frames", type=int, default=24, help="frames sampled over the recording")
    ap.add_argument(
        "--ranges",
        choices=sorted(HUD_RANGES),
        help="the game whose fields these are (what each can show: its widest value sets "
        "how wide its region is; written to the TOML); default: CS2's",
    )
    args = ap.parse_args(argv)
    if args.frames < 2:
        ap.error("--frames must be at least 2")
    try:
        fields = calibrate(args.recording, args.out, args.png, args.frames, args.ranges)
    except RecordingError as ex:
        print(f"flows.calibrate: {ex}", file=sys.stderr)
        return 2
    if not fields:
        print(
            f"flows.calibrate: no HUD text that stays put and changes on {args.recording}; "
            "record a stretch where the HUD numbers change",
            file=sys.stderr,
        )
        return 1
    names = Counter(f.name for f in fields)
    print(f"wrote {args.out} and {args.png or args.out.with_suffix('.png')}: {dict(names)}")
    for f in fields:
        print(f"  {f.name:<8} {list(f.padded())}  ({f.why})")
    if args.ranges:
        game = {"ammo" if k == "ammo_reserve" else k for k in HUD_RANGES[args.ranges]}
        missing = sorted(game - set(names))
        if missing:
            print(
                f"flows.calibrate: found no {', '.join(missing)} on {args.recording}: record a "
                "stretch where they show and change (pick up armor, fire a weapon that uses "
                "ammo), then calibrate again; until then they are not read",
                file=sys.stderr,
            )
    return 0


if __name__ == "__main__":
    sys.exit(main())
