"""HUD text as ink, and a reader for the bitmap fonts games draw their numbers in.

Game HUDs draw numbers from a fixed bitmap font: the same digit is the same pixels
every time it is drawn at one size. :class:`GlyphFont` learns each glyph of one HUD
region from the OCR model's confident reads (the region's ink cut into glyphs, one per
character read), then reads by matching, in microseconds; what it cannot place with a
clear margin is left to the OCR model. Every so often a matched read is checked
against the OCR model, and a font that disagrees is forgotten and learned again.

The ink functions here are how every part of framewax sees text in a crop: the crop
trim and the cut check of the local model, the calibration, and the fonts.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import cv2
import numpy as np

__all__ = [
    "INK_CONTRAST",
    "GlyphFont",
    "apart_of_colour",
    "background",
    "characters",
    "colour_ink",
    "glyph_runs",
    "ink_mask",
    "solid_runs",
    "text_ink",
    "text_runs",
]

INK_CONTRAST = 60
"""Levels (in some channel) a pixel must be from the background to count as text."""

Run = tuple[int, int, int, int]
"""A glyph's columns and rows in its crop, ``(x0, x1, top, bottom)``, inclusive."""


def background(crop: np.ndarray) -> np.ndarray:
    """What lies behind a HUD crop's text: the median colour of its edges (a tight
    region is mostly text, and the median of all its pixels would be the text's colour)."""
    edges = np.concatenate([crop[0], crop[-1], crop[:, 0], crop[:, -1]])
    return np.median(edges.reshape(-1, 3), axis=0)


def ink_mask(crop: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Text of any colour, on a panel or on the picture: the pixels more than
    :data:`INK_CONTRAST` from the :func:`background` in some channel, and that
    background (``int16``).

    >>> crop = np.zeros((4, 6, 3), np.uint8); crop[1:3, 2:4] = 200
    >>> int(ink_mask(crop)[0].sum())
    4
    """
    bg = background(crop).astype(np.int16)
    return np.abs(crop.astype(np.int16) - bg).max(axis=2) > INK_CONTRAST, bg


def colour_ink(crop: np.ndarray, colour: np.ndarray, ink: np.ndarray | None = None) -> np.ndarray:
    """:func:`ink_mask` (or ``ink``, where the caller has it), less the ink more than
    :data:`INK_CONTRAST` from ``colour`` in any channel: a known text colour's glyphs,
    not scenery of another colour.

    >>> crop = np.zeros((4, 6, 3), np.uint8); crop[1:3, 1:3] = (200, 0, 0); crop[1:3, 4] = 200
    >>> colour_ink(crop, np.array([200, 0, 0])).sum(axis=0).tolist()
    [0, 2, 2, 0, 0, 0]
    """
    near = np.abs(crop.astype(np.int16) - colour.astype(np.int16)).max(axis=2)
    return (ink_mask(crop)[0] if ink is None else ink) & (near <= INK_CONTRAST)


def text_ink(crop: np.ndarray) -> np.ndarray:
    """:func:`ink_mask`, less the ink nearer the background's colour than the text's own
    (the median of the ink): a panel's bevel of another colour in the crop is not text."""
    ink, bg = ink_mask(crop)
    if ink.any():
        pixels = crop.astype(np.int16)
        colour = np.median(pixels[ink], axis=0)
        ink &= np.abs(pixels - colour).sum(axis=2) < np.abs(pixels - bg).sum(axis=2)
    return ink


def text_runs(crop: np.ndarray, ink: np.ndarray | None = None) -> list[Run]:
    """The glyphs of the crop's text: :func:`glyph_runs` of its :func:`text_ink`, less the
    runs of another colour than the text's (the median of the runs' colours): an icon
    beside a number (Doom's ammo clip, read as "1" after "50") is not one of its glyphs;
    but a glyph of the text's colour inside such a run (a digit touching the bright
    scenery behind an overlay HUD) is.

    >>> crop = np.zeros((20, 40, 3), np.uint8)
    >>> crop[3:17, 4:10] = (230, 20, 20); crop[3:17, 14:20] = (230, 20, 20)
    >>> crop[3:17, 26:32] = (200, 200, 40)  # a yellow icon
    >>> [r[:2] for r in text_runs(crop)]
    [(4, 9), (14, 19)]
    >>> crop[:, 26:32] = 0; crop[3:17, 24:30] = (230, 20, 20); crop[:, 31:40] = 250  # sky
    >>> [r[:2] for r in text_runs(crop)]
    [(4, 9), (14, 19), (24, 29)]
    """
    if crop.ndim != 3 or crop.shape[0] < 3 or crop.shape[1] < 3:
        return []
    ink = text_ink(crop) if ink is None else ink
    runs = glyph_runs(ink)
    if len(runs) < 3:  # two of two colours: no majority to tell the text by
        return runs
    pixels = crop.astype(np.int16)
    colours = [
        np.median(
            pixels[r[2] : r[3] + 1, r[0] : r[1] + 1][ink[r[2] : r[3] + 1, r[0] : r[1] + 1]], axis=0
        )
        for r in runs
    ]
    text = np.median(np.array(colours), axis=0)
    kept = [r for r, c in zip(runs, colours, strict=True) if np.abs(c - text).max() <= INK_CONTRAST]
    if len(kept) == len(runs) or not kept:
        return kept
    # A run of another colour may still hold a glyph: scenery behind an overlay HUD that
    # touches the number's last digit makes one run of both ("$800" read as "80"). Keep
    # the glyphs of the text's colour inside it, as tall as the text's own.
    own = ink & (np.abs(pixels - text).max(axis=2) <= INK_CONTRAST)
    tall = max(r[3] - r[2] + 1 for r in kept)
    wide = max(r[1] - r[0] + 1 for r in kept)
    for r in runs:
        if r in kept:
            continue
        for x0, x1, top, bottom in glyph_runs(own[:, r[0] : r[1] + 1], solid=False):
            if bottom - top + 1 >= 0.7 * tall and x1 - x0 + 1 >= wide / 6:
                kept.append((r[0] + x0, r[0] + x1, top, bottom))
    return sorted(kept)


def glyph_runs(ink: np.ndarray, solid: bool = True) -> list[Run]:
    """The columns of ``ink`` that hold some (two pixels or more), as runs separated by
    blank columns, each with the rows its ink spans; ``solid``: only those that can be
    glyphs (:func:`solid_runs`).

    >>> ink = np.zeros((10, 12), bool); ink[2:9, 1:4] = True; ink[2:9, 6:9] = True; ink[8, 10] = True
    >>> glyph_runs(ink)
    [(1, 3, 2, 8), (6, 8, 2, 8)]
    """
    cols = ink.sum(axis=0) >= 2
    runs: list[Run] = []
    start = None
    for x, on in enumerate([*cols.tolist(), False]):
        if on and start is None:
            start = x
        elif not on and start is not None:
            rows = np.flatnonzero(ink[:, start:x].any(axis=1))
            runs.append((start, x - 1, int(rows[0]), int(rows[-1])))
            start = None
    return solid_runs(runs) if solid else runs


def solid_runs(runs: list[Run]) -> list[Run]:
    """The runs that can be glyphs: at least half as tall as the tallest and a sixth as
    wide as the widest (not a panel's bevel, a divider's foot, a speck)."""
    if not runs:
        return runs
    tall = max(r[3] - r[2] + 1 for r in runs)
    wide = max(r[1] - r[0] + 1 for r in runs)
    return [r for r in runs if r[3] - r[2] + 1 >= 0.5 * tall and r[1] - r[0] + 1 >= wide / 6]


_SIZE = (10, 14)  # a glyph, normalised: width x height
_MARKS = ".,:;'`\"-_~"
"""Characters an OCR model reads from specks and edges, not counted as glyphs."""


def characters(text: str) -> list[str]:
    """The characters of a read that stand for glyphs: not spaces, nor the small marks
    an OCR model reads from specks and edges.

    >>> characters(" 84. ")
    ['8', '4']
    """
    return [c for c in text if not c.isspace() and c not in _MARKS]


def apart_of_colour(
    crop: np.ndarray, ink: np.ndarray, runs: list[Run], colour: np.ndarray | None = None
) -> list[Run]:
    """``runs`` less those at either end of another colour than the text's and set
    apart from it: an icon beside the number (Doom's full-screen ammo clip), a patch of
    scenery. The text's colour is ``colour`` (a learned font's), else the runs' median
    where there are three or more (two runs of two colours: which is the text's is not
    known). Apart: a gap wider than half the glyphs' height (a thin, faint "1" set at
    the glyphs' spacing is one of them).

    >>> crop = np.zeros((20, 60, 3), np.uint8); crop[4:16, 2:8] = (200, 0, 0)
    >>> crop[4:16, 40:46] = (150, 120, 60)  # "1" and a clip, apart, of another colour
    >>> ink = text_ink(crop); runs = text_runs(crop, ink); len(runs)  # two: which is text?
    2
    >>> len(apart_of_colour(crop, ink, runs)), apart_of_colour(crop, ink, runs, np.array([200, 0, 0]))
    (2, [(2, 7, 4, 15)])
    """
    lo, hi = _odd_ends(crop, ink, runs, colour, lined_up=False)
    return runs[lo:hi]


def stray_ends(
    crop: np.ndarray,
    colour: np.ndarray | None = None,
    ink: np.ndarray | None = None,
    runs: list[Run] | None = None,
) -> int:
    """How many of the crop's :func:`text_runs` (or ``runs``) at either end are not
    glyphs of text of ``colour`` (default: the colour of most of their ink): of another
    colour, and set apart (as :func:`apart_of_colour`) or not lined up with the glyph
    beside them (their top or bottom off by more than 0.15 of the glyphs' height: digits
    share their rows, Doom's ammo clip is shorter and sits lower). Not dropped from a
    read, only counted: a digit merged with scenery of another colour is not lined up
    either, and dropping it would read "14" as "1".

    >>> crop = np.zeros((30, 60, 3), np.uint8); crop[4:26, 4:14] = (200, 0, 0)
    >>> crop[10:28, 24:30] = (150, 120, 60)  # "9" and the clip, 10 columns apart
    >>> ink = text_ink(crop); len(apart_of_colour(crop, ink, text_runs(crop, ink), np.array([200, 0, 0])))
    2
    >>> stray_ends(crop, np.array([200, 0, 0])), stray_ends(crop)
    (1, 1)
    >>> crop[10:28, 24:30] = (200, 0, 0); stray_ends(crop, np.array([200, 0, 0]))  # its colour
    0
    """
    ink = text_ink(crop) if ink is None else ink
    runs = text_runs(crop, ink) if runs is None else runs
    lo, hi = _odd_ends(crop, ink, runs, colour, lined_up=True)
    return lo + len(runs) - hi


def _odd_ends(
    crop: np.ndarray, ink: np.ndarray, runs: list[Run], colour: np.ndarray | None, lined_up: bool
) -> tuple[int, int]:
    """``runs[lo:hi]``: ``runs`` less those at either end of another colour than ``colour``
    (or the runs' median, where there are three) and set apart, or (``lined_up``) not
    lined up with their neighbour."""
    if len(runs) < 2:
        return 0, len(runs)
    band = max(r[3] for r in runs) - min(r[2] for r in runs) + 1

    def apart(a: Run, b: Run) -> bool:
        return b[0] - a[1] - 1 > 0.5 * band or (
            lined_up and max(abs(a[2] - b[2]), abs(a[3] - b[3])) > 0.15 * band
        )

    if not (apart(runs[0], runs[1]) or apart(runs[-2], runs[-1])):
        return 0, len(runs)  # the usual case: no run set apart, nothing to look at

    def colour_of(r: Run) -> np.ndarray | None:
        x0, x1, t, b = r
        pixels = crop[t : b + 1, x0 : x1 + 1][ink[t : b + 1, x0 : x1 + 1]]
        return np.median(pixels.astype(np.float32), axis=0) if len(pixels) else None

    ref = colour
    if ref is None and lined_up:  # the colour most of the ink has: the digits outweigh an icon
        mask = np.zeros_like(ink)
        for x0, x1, t, b in runs:
            mask[t : b + 1, x0 : x1 + 1] = ink[t : b + 1, x0 : x1 + 1]
        ref = np.median(crop[mask].astype(np.float32), axis=0)
    elif ref is None:
        known = [c for c in map(colour_of, runs) if c is not None]
        if len(known) < 3:
            return 0, len(runs)
        ref = np.median(np.array(known), axis=0)

    def odd(r: Run) -> bool:
        c = colour_of(r)
        return c is None or float(np.abs(c - ref).max()) > INK_CONTRAST

    lo, hi = 0, len(runs)
    while hi - lo > 1 and apart(runs[lo], runs[lo + 1]) and odd(runs[lo]):
        lo += 1
    while hi - lo > 1 and apart(runs[hi - 2], runs[hi - 1]) and odd(runs[hi - 1]):
        hi -= 1
    return lo, hi


@dataclass
class GlyphFont:
    """One HUD region's font, learned from the OCR model's reads and read by matching.

    :meth:`learn` takes a crop, the text the OCR model read in it and its score: where
    the score is at least ``min_score`` and the crop's ink cuts into exactly as many
    glyphs as the text has characters, each glyph is remembered as that character (up
    to ``per_char`` looks of each). :meth:`read` cuts a crop the same way and gives each
    glyph the character whose looks are nearest: the text, with a confidence, only when
    every glyph is within ``max_distance`` of its character and ``margin`` nearer to it
    than to any other; else ``None`` (the OCR model reads it).

    >>> font = GlyphFont()
    >>> def crop(text):
    ...     img = np.full((30, 20 + 18 * len(text), 3), 40, np.uint8)
    ...     cv2.putText(img, text, (8, 24), cv2.FONT_HERSHEY_SIMPLEX, 0.8, (230, 30, 30), 2)
    ...     return img
    >>> font.read(crop("17")) is None  # nothing learned yet
    True
    >>> font.learn(crop("1234567890"), "1234567890", 0.99)
    True
    >>> font.read(crop("709"))[0]
    '709'
    """

    max_distance: float = 0.10
    margin: float = 0.08
    min_score: float = 0.95
    per_char: int = 6
    looks: dict[str, list[np.ndarray]] = field(default_factory=dict)
    bands: list[int] = field(default_factory=list)
    """The heights of the glyphs' band in the last reads learned from (pixels)."""
    colours: list[np.ndarray] = field(default_factory=list)
    holds: list[bool] = field(default_factory=list)
    """Whether, on the reads learned from, the glyphs of the font's colour counted as many
    as the characters read (:meth:`agrees` trusts its count where they did on at least
    three reads and three quarters of the last eight)."""
    """The glyphs' colour in the last reads learned from."""

    def glyphs(self, crop: np.ndarray) -> list[np.ndarray]:
        """The crop's glyphs, each its ink over the band all of them span, normalised to one
        size, with its width (as a share of the band's height) as a last feature."""
        cut = self._cut(crop)
        return cut[0] if cut is not None else []

    def _cut(self, crop: np.ndarray) -> tuple[list[np.ndarray], int, np.ndarray] | None:
        """:meth:`glyphs`, the height of their band in pixels, and their colour; ``None``
        where there are none, or a run at an end is no glyph of the text and too near to
        be left out (:func:`stray_ends`)."""
        if crop.ndim != 3 or crop.shape[0] < 4 or crop.shape[1] < 4:
            return None
        ink = text_ink(crop)
        runs = apart_of_colour(crop, ink, text_runs(crop, ink), self.colour())
        if not runs or stray_ends(crop, self.colour(), ink, runs):
            return None  # nothing, or an icon too near to leave out: not for the font
        top, bottom = min(r[2] for r in runs), max(r[3] for r in runs)
        band = bottom - top + 1
        out = []
        mask = np.zeros_like(ink)
        for x0, x1, _t, _b in runs:
            cell = ink[top : bottom + 1, x0 : x1 + 1]
            mask[top : bottom + 1, x0 : x1 + 1] = cell
            norm = cv2.resize(cell.astype(np.float32), _SIZE, interpolation=cv2.INTER_AREA).ravel()
            out.append(np.append(norm, min((x1 - x0 + 1) / band, 2.0)))
        colour = np.median(crop[mask].astype(np.float32), axis=0)
        return out, band, colour

    def learn(self, crop: np.ndarray, text: str, score: float) -> bool:
        """Remember the crop's glyphs as ``text``'s characters, if the read is sure and the
        glyphs line up with the characters one to one; and their height and colour."""
        chars = [c for c in text if not c.isspace()]
        if score < self.min_score or not chars:
            return False
        cut = self._cut(crop)
        if cut is None or len(cut[0]) != len(chars):
            return False
        glyphs, band, colour = cut
        for c, g in zip(chars, glyphs, strict=True):
            known = self.looks.setdefault(c, [])
            if len(known) < self.per_char and all(_distance(g, k) > 0.02 for k in known):
                known.append(g)
        self.bands = [*self.bands[-15:], band]
        self.colours = [*self.colours[-15:], colour]
        widest = max(k[-1] for ks in self.looks.values() for k in ks) * band
        self.holds = [*self.holds[-15:], self._count(crop, colour, band, widest) == len(chars)]
        return True

    def read(self, crop: np.ndarray) -> tuple[str, float] | None:
        """The crop's text and the confidence in it (1 - the worst glyph's distance), or
        ``None`` where a glyph matches no character clearly, or the glyphs are not of the
        font's height and colour (the picture behind an overlay HUD, cut into glyphs)."""
        if not self.looks or not self.bands:
            return None
        cut = self._cut(crop)
        if cut is None:
            return None
        glyphs, band, colour = cut
        if abs(band - float(np.median(self.bands))) > 0.12 * float(np.median(self.bands)):
            return None
        if np.abs(colour - self.colour()).max() > INK_CONTRAST / 2:
            return None
        text, worst = [], 0.0
        for g in glyphs:
            best = sorted(
                (min(_distance(g, k) for k in known), c) for c, known in self.looks.items()
            )
            d, c = best[0]
            if d > self.max_distance or (len(best) > 1 and best[1][0] - d < self.margin):
                return None
            text.append(c)
            worst = max(worst, d)
        return "".join(text), round(1.0 - worst, 3)

    def agrees(self, crop: np.ndarray, text: str) -> bool | None:
        """Whether ``text`` (another reader's) has as many characters as the crop holds
        glyphs of this font: ink of its colour in runs of its height, each no wider than
        its widest glyph. Where nothing is learned yet, ``False`` only for a read that
        counted a run of another colour than the text's (an icon) as a character, else
        ``None``.
        The other reader's small marks ("84." for a speck) are not counted.

        Scenery behind an overlay HUD that the other reader took for a digit (a medkit
        icon read as the "1" of "184" for 84; grey wall as the "2" of "249") is not of
        the font's colour; scenery of its colour touching a digit makes a run taller than
        the font's glyphs ("36" over blood read as "6"). Either way the count or the
        shape disagrees, and the read is not to be trusted. So does a letter where the
        font was only ever seen to print numbers ("B6" for "36" over blood).

        >>> font = GlyphFont()
        >>> def crop(text, bg=40):
        ...     img = np.full((30, 20 + 18 * len(text), 3), bg, np.uint8)
        ...     cv2.putText(img, text, (8, 24), cv2.FONT_HERSHEY_SIMPLEX, 0.8, (230, 30, 30), 2)
        ...     return img
        >>> font.agrees(crop("84"), "84") is None  # nothing learned: no count to trust
        True
        >>> img = crop("26 "); img[6:24, 52:58] = (200, 200, 40)  # an icon of another colour
        >>> font.agrees(img, "261")  # ... read as a digit
        False
        >>> all(font.learn(crop(t), t, 0.99) for t in ("1234567890", "5678", "90"))
        True
        >>> font.agrees(crop("84"), "84"), font.agrees(crop("84"), "184")
        (True, False)
        >>> img = crop("36"); img[0:30, 4:12] = (230, 30, 30)  # a red blob touching the 3
        >>> font.agrees(img, "6")
        False
        """
        chars = characters(text)
        colour = self.colour()
        widths = [k[-1] for ks in self.looks.values() for k in ks]
        ink = text_ink(crop)
        kept = text_runs(crop, ink)
        if colour is None or not widths or not self.bands:
            # Nothing learned: only a read that took ink of another colour than the
            # text's for a character (Doom's ammo clip beside "26" read as "261")
            if len(kept) < len(glyph_runs(ink)) and len(chars) > len(kept):
                return False
            return None
        # A read that counted a run at the end of another colour than the font's, set
        # apart or not lined up with the glyphs, as a character (Doom's clip beside "9"
        # read as "93"), whatever the count below proves.
        stray = stray_ends(crop, colour, ink, kept)
        if stray and len(chars) > len(kept) - stray:
            return False
        band = float(np.median(self.bands))
        # The count, for a font whose glyphs its colour cuts apart one by one (not a small
        # anti-aliased one, whose thin strokes fall apart: there it proves nothing).
        recent = self.holds[-8:]
        trusted = len(recent) >= 3 and sum(recent) >= 0.75 * len(recent)
        if trusted and self._count(crop, colour, band, max(widths) * band) != len(chars):
            return False
        # A letter where this font only ever printed numbers is a misread glyph.
        numbers_only = not any(c.isalpha() for c in self.looks)
        return not (numbers_only and any(c.isalpha() and c not in "Oo" for c in chars))

    @staticmethod
    def _count(crop: np.ndarray, colour: np.ndarray, band: float, widest: float) -> int | None:
        """The glyphs in ``crop`` as ink of ``colour``: runs of columns at least 0.7 of
        ``band`` tall; ``None`` where one is taller than the band or wider than ``widest``
        (a glyph merged with something of its colour)."""
        count = 0
        for x0, x1, top, bottom in glyph_runs(colour_ink(crop, colour), solid=False):
            tall = bottom - top + 1
            if tall < 0.7 * band:
                continue  # not a glyph of this font (a speck, a bevel, a patch of picture)
            if tall > 1.2 * band + 1 or x1 - x0 + 1 > 1.3 * widest + 1:
                return None
            count += 1
        return count

    def colour(self) -> np.ndarray | None:
        """The glyphs' colour in the reads learned from (their median), if any."""
        return np.median(np.array(self.colours), axis=0) if self.colours else None

    def forget(self) -> None:
        self.looks.clear()
        self.bands.clear()
        self.colours.clear()
        self.holds.clear()


def _distance(a: np.ndarray, b: np.ndarray) -> float:
    """Mean absolute difference of two normalised glyphs, their widths counted as much
    as a fifth of the picture."""
    return float(np.abs(a[:-1] - b[:-1]).mean() + 0.2 * abs(a[-1] - b[-1]))
