"""The in-process vision backend: a real OCR model for the HUD, OpenCV for enemies.

The HUD numbers are read by the PP-OCRv4 text recogniser that ships inside
the ``rapidocr-onnxruntime`` wheel (no download), run on the known HUD
regions in one batched call per frame; enemies are found by colour
segmentation and connected components. Runs offline, no GPU, no server.
"""

from __future__ import annotations

import hashlib
import logging
import re
import threading
import time
import unicodedata
from collections import Counter, OrderedDict
from collections.abc import Mapping, Sequence
from typing import Any

import cv2
import numpy as np

from operators.capture.arena import ENEMY_RGB
from operators.errors import VisionError
from operators.frame import Frame
from operators.hud import ARENA_HUD_REGIONS, HUD_RANGES, check_reading, hud_ranges
from operators.hud import hud_regions as resolve_hud_regions
from operators.options import check_int
from operators.reading import HUD_FIELDS, Detection, Scene, VisionResult
from operators.vision.glyphs import (
    INK_CONTRAST,
    GlyphFont,
    background,
    characters,
    colour_ink,
    glyph_runs,
    ink_mask,
    text_runs,
)

__all__ = ["LocalVisionBackend", "cut_glyph", "parse_hud_text"]

logger = logging.getLogger(__name__)

_INT = re.compile(r"\d+")


def parse_hud_text(field: str, text: str) -> dict[str, int | None]:
    """Numbers out of one HUD field's OCR text.

    >>> parse_hud_text("ammo", "27/90")
    {'ammo': 27, 'ammo_reserve': 90}
    >>> parse_hud_text("health", "HP 87")
    {'health': 87}
    >>> parse_hud_text("money", "")
    {'money': None}
    """
    text = unicodedata.normalize("NFKC", text).replace("O", "0").replace("o", "0")
    nums = [int(n) for n in _INT.findall(text)]
    if field == "ammo":
        if "/" in text and len(nums) >= 2:
            return {"ammo": nums[0], "ammo_reserve": nums[1]}
        return {"ammo": nums[0] if nums else None, "ammo_reserve": None}
    return {field: nums[0] if nums else None}


def _tight(crop: np.ndarray, margin: int = 4, colour: np.ndarray | None = None) -> np.ndarray:
    """Trim a HUD crop to the columns of its text's glyphs
    (:func:`~operators.vision.glyphs.text_runs`: ink far from the colour of the crop's
    edges, of the text's own colour; text of any colour, on a panel or the picture).

    >>> crop = np.full((10, 40, 3), 200, np.uint8); crop[3:7, 15:20] = (20, 200, 200)
    >>> _tight(crop, margin=1).shape
    (10, 7, 3)
    >>> crop[2:8, 21:30] = (20, 90, 250)  # scenery of another colour touching the text
    >>> _tight(crop, margin=1).shape  # kept, not cut through
    (10, 17, 3)
    """
    if crop.size == 0 or crop.ndim != 3:
        return crop  # no colour, no text runs: nothing to trim by
    runs = text_runs(crop)  # the text's glyphs: not an icon of another colour beside them
    ink = ink_mask(crop)[0]
    if colour is not None:
        # the colour this region's text was seen in (its font): its glyphs, where scenery
        # of another colour behind them would be taken for the text
        runs = glyph_runs(colour_ink(crop, colour, ink)) or runs
    if not runs:
        return crop
    # Never cut through ink: where the text's glyphs could not be told from scenery
    # behind them (a low-contrast patch of picture makes a blob of ink and leaves the
    # digits beside it thin), the trim stops at a blank column, or keeps the crop whole.
    inked = np.flatnonzero(ink.any(axis=0))
    bridge = max(2, (max(r[3] for r in runs) - min(r[2] for r in runs)) // 6)
    x0, x1 = runs[0][0], runs[-1][1]
    for x in inked[::-1]:  # ink reaching the first glyph, over gaps under a sixth of its height
        if x0 - bridge <= x < x0:
            x0 = int(x)
    for x in inked:
        if x1 < x <= x1 + bridge:
            x1 = int(x)
    return crop[:, max(x0 - margin, 0) : x1 + margin + 1]


def _margined(crop: np.ndarray, share: float = 0.4) -> np.ndarray:
    """A trimmed crop with ``share`` × its height of background added left and right: the
    recogniser reads a glyph at the very edge of its input poorly (Doom's "0%" cut tight
    reads "02"; with a margin, "0%").

    >>> _margined(np.zeros((10, 20, 3), np.uint8)).shape
    (10, 28, 3)
    """
    if crop.size == 0:
        return crop
    colour = background(crop).astype(np.uint8)
    pad = int(share * crop.shape[0])
    return cv2.copyMakeBorder(crop, 0, 0, pad, pad, cv2.BORDER_CONSTANT, value=colour.tolist())


def cut_glyph(crop: np.ndarray) -> str | None:
    """Which edge of a HUD region cuts a glyph (``"left"``, ``"right"``, ``"top"``,
    ``"bottom"``), or ``None``.

    A glyph is ink (pixels far from the colour of the crop's edges, as :func:`_tight`
    sees it) in one connected piece, at least half as tall as the tallest piece and a
    quarter of the crop; one that touches the crop's left or right edge and has the
    colour of the crop's other glyphs (not a patch of scenery) is cut, and the number
    it belongs to cannot be read: the region is too narrow for what the field shows
    now, or reaches into a neighbour (Doom's "8" of 48 rounds beside "100%"). A piece
    of the glyphs' colour at the top or bottom edge, shorter than they are, is a
    number above or below reaching in: cut too. A piece that reaches the edge only by
    scenery of another colour touching a whole glyph (none of the glyphs' colour in the
    edge column) is not cut.

    >>> crop = np.zeros((20, 40, 3), np.uint8); crop[4:16, 10:16] = 250; crop[4:16, 22:28] = 250
    >>> cut_glyph(crop) is None
    True
    >>> crop[4:16, 0:4] = 250  # a glyph's right half at the left edge
    >>> cut_glyph(crop)
    'left'
    >>> crop[4:16, 0:4] = 0; crop[17:20, 12:20] = 250  # the top of a number below
    >>> cut_glyph(crop)
    'bottom'
    >>> crop[17:20] = 0; crop[9:12, 28:40] = (90, 60, 30)  # brown floor touching the last glyph
    >>> cut_glyph(crop) is None
    True
    """
    h, w = crop.shape[:2]
    if h < 4 or w < 4:
        return None
    mask, _bg = ink_mask(crop)
    pixels = crop.astype(np.int16)
    n, labels, stats, _ = cv2.connectedComponentsWithStats(mask.astype(np.uint8), connectivity=8)
    if n <= 1:
        return None
    tall = stats[1:, cv2.CC_STAT_HEIGHT].max()
    glyphs = [i for i in range(1, n) if stats[i, cv2.CC_STAT_HEIGHT] >= max(0.5 * tall, 0.25 * h)]
    inside = [
        i
        for i in glyphs
        if stats[i, cv2.CC_STAT_LEFT] > 0
        and stats[i, cv2.CC_STAT_LEFT] + stats[i, cv2.CC_STAT_WIDTH] < w
    ]
    colour = (
        np.median(pixels[np.isin(labels, inside)], axis=0) if inside else None
    )  # the glyphs' own colour, where whole glyphs show it
    for i in glyphs:
        x0, x1 = (
            stats[i, cv2.CC_STAT_LEFT],
            stats[i, cv2.CC_STAT_LEFT] + stats[i, cv2.CC_STAT_WIDTH],
        )
        if x0 > 0 and x1 < w:
            continue
        if colour is not None:
            own = np.median(pixels[labels == i], axis=0)
            if np.abs(own - colour).max() > INK_CONTRAST:
                continue  # scenery behind an overlay HUD, not one of its glyphs
            # a whole glyph joined to the edge by scenery of another colour (the dark
            # floor beside Doom's full-screen ammo, touching the last digit's shadow):
            # the edge column holds none of the glyphs' colour
            edge = 0 if x0 == 0 else w - 1
            column = pixels[labels[:, edge] == i, edge]
            if (np.abs(column - colour).max(axis=1) <= INK_CONTRAST).sum() < max(2, 0.1 * tall):
                continue
        return "left" if x0 == 0 else "right"
    if colour is not None:
        # a piece of the glyphs' colour, shorter than they are, at the top or bottom edge:
        # the number over or under this one reaching in (stacked numbers of an overlay HUD)
        full = stats[inside, cv2.CC_STAT_HEIGHT].max()
        for i in range(1, n):
            y0 = stats[i, cv2.CC_STAT_TOP]
            y1 = y0 + stats[i, cv2.CC_STAT_HEIGHT]
            if (y0 > 0 and y1 < h) or stats[i, cv2.CC_STAT_AREA] < 3 or y1 - y0 >= 0.6 * full:
                continue
            own = np.median(pixels[labels == i], axis=0)
            if np.abs(own - colour).max() <= INK_CONTRAST / 2:
                return "top" if y0 == 0 else "bottom"
    return None


class LocalVisionBackend:
    """OCR of configured HUD regions plus colour-based enemy detection.

    ``hud_regions`` (``"arena"``, ``"cs2"`` or a table) maps ``health``/``armor``/``ammo``/``money`` to relative
    ``[x0, y0, x1, y1]`` rectangles (the arena's by default); ``ammo`` reads
    ``clip/reserve``. ``ranges`` (``"arena"``, ``"cs2"`` or ``{field: [lo, hi]}``;
    by default the preset named by ``hud_regions``, else ``"cs2"``) says what each
    field can show: a reading outside it, or with more digits than its largest
    value, is ``None`` with the reason in ``VisionResult.rejected``, not a wrong
    number. The scene is ``death`` only when health reads 0 *and* the screen looks
    like it (dark, or red): one misread digit does not kill the agent.
    ``enemy_rgb`` ± ``enemy_tolerance`` is the enemy colour; blobs smaller than
    ``min_enemy_area`` (fraction of the frame) are ignored.
    """

    name = "local"
    CHECK_FRAMES = 10
    """Regions with no digits in any of the first this many frames are warned about."""

    def __init__(
        self,
        hud_regions: str | Mapping[str, Sequence[float]] | None = None,
        enemy_rgb: Sequence[int] = ENEMY_RGB,
        enemy_tolerance: int = 40,
        min_enemy_area: float = 0.0002,
        ocr_height: int = 48,
        ocr_threads: int = 1,
        ranges: str | Mapping[str, Sequence[int]] | None = None,
        memo_size: int = 8192,
        min_confidence: float = 0.5,
        confirm_confidence: float = 0.9,
        glyphs: bool = True,
        audit_every: int = 50,
    ) -> None:
        check_int("vision.options.memo_size", memo_size, 0)
        check_int("vision.options.audit_every", audit_every, 1)
        self.glyphs = bool(glyphs)
        """Read each region by its learned font (:class:`~operators.vision.glyphs.GlyphFont`)
        where it can: microseconds instead of an OCR call; the OCR model reads the rest and
        teaches the font."""
        self.audit_every = int(audit_every)
        """Every this many font reads, the OCR model reads the crop too; a sure read that
        disagrees makes the font start over."""
        self._fonts: dict[str, GlyphFont] = {}
        self.glyph_counts: Counter[str] = Counter()
        if not 0.0 <= float(min_confidence) <= 1.0:
            msg = f"vision.options.min_confidence = {min_confidence!r}: expected 0..1"
            raise ValueError(msg)
        self.min_confidence = float(min_confidence)
        """A reading the recogniser gives less confidence than this is unread (``None``,
        ``rejected`` says why), never a guess."""
        if not 0.0 <= float(confirm_confidence) <= 1.0:
            msg = f"vision.options.confirm_confidence = {confirm_confidence!r}: expected 0..1"
            raise ValueError(msg)
        self.confirm_confidence = float(confirm_confidence)
        """Where a region's learned font knows every character the OCR model read but
        could not match the crop itself (its glyphs are not the font's clean ones:
        scenery behind an overlay HUD, a digit half lost in it, Doom's "48" over brown
        floor read "43" at 0.73), the reading needs at least this confidence."""
        self.field_counts: dict[str, Counter[str]] = {}
        self.memo_size = memo_size
        """Region crops remembered with their text (exact pixels, a few dozen bytes each): a
        number drawn before is not read again, so a long run (training) reads each
        number's picture about once."""
        regions = resolve_hud_regions(
            ARENA_HUD_REGIONS if hud_regions is None else hud_regions, "hud.regions"
        )
        # The fields this model reads; others (a calibration's extra numbers) are dedup's.
        self.hud_regions = {k: r for k, r in regions.items() if k in ARENA_HUD_REGIONS}
        if not self.hud_regions:
            msg = f"hud.regions: none of {sorted(regions)} is a field the local model reads ({sorted(ARENA_HUD_REGIONS)})"
            raise ValueError(msg)
        if ranges is None:  # the game the regions are for; CS2 for a table of your own
            ranges = "cs2"
            if hud_regions is None:
                ranges = "arena"
            elif isinstance(hud_regions, str) and hud_regions in HUD_RANGES:
                ranges = hud_regions
        self.ranges = hud_ranges(ranges, "hud.ranges", HUD_FIELDS)
        self.enemy_rgb = np.array(enemy_rgb, np.int16)
        self.enemy_tolerance = int(enemy_tolerance)
        # |pixel - colour| <= tolerance on every channel, as one cv2.inRange (no int16 copy)
        self._enemy_lo = np.clip(self.enemy_rgb - self.enemy_tolerance, 0, 255).astype(np.uint8)
        self._enemy_hi = np.clip(self.enemy_rgb + self.enemy_tolerance, 0, 255).astype(np.uint8)
        self.min_enemy_area = float(min_enemy_area)
        self.ocr_height = int(ocr_height)
        self.ocr_threads = int(ocr_threads)
        self._engine: Any = None
        self._lock = threading.Lock()
        self._memo: OrderedDict[tuple[str, bytes], tuple[str, float, str | None]] = OrderedDict()
        self.memo_hits = 0
        self._checked = 0  # frames looked at for the region check, up to CHECK_FRAMES
        self._texted: set[str] = set()  # regions that held digits in one of them
        self.regions_without_text: list[str] = []

    def _recognizer(self) -> Any:
        with self._lock:
            if self._engine is None:
                try:
                    from rapidocr_onnxruntime import RapidOCR
                except ImportError as ex:
                    msg = "the local vision backend needs `pip install rapidocr-onnxruntime`"
                    raise VisionError("backend", msg) from ex
                self._engine = RapidOCR(
                    intra_op_num_threads=self.ocr_threads, inter_op_num_threads=1
                )
            return self._engine.text_rec

    def warm_up(self) -> None:
        """Load the OCR model now rather than on the first frame."""
        self._recognizer()

    def read_hud(
        self, image: np.ndarray
    ) -> tuple[dict[str, int | None], dict[str, float], list[tuple[str, str]]]:
        """Each region's number, the recogniser's confidence in it, and ``(field, why)``
        for the regions that showed ink but gave no number to trust: a glyph cut by the
        region's edge (:func:`cut_glyph`), or a reading below ``min_confidence``.

        A region whose pixels are exactly as in a crop read before (a HUD that did not
        change while the picture did) reuses that reading, so only the regions that
        changed are read (``memo_size`` crops remembered)."""
        h, w = image.shape[:2]
        crops, keys, digests, raws = [], [], [], []
        found: dict[str, tuple[str, float, str | None]] = {}
        audits: dict[str, str] = {}  # regions the font read, read by the OCR model too
        for key, (x0, y0, x1, y1) in self.hud_regions.items():
            raw = image[int(y0 * h) : int(y1 * h), int(x0 * w) : int(x1 * w)]
            if raw.size == 0:
                continue
            digest = hashlib.blake2b(np.ascontiguousarray(raw).data, digest_size=16).digest()
            with self._lock:
                known = self._memo.get((key, digest))
                if known is not None:
                    self._memo.move_to_end((key, digest))
                    self.memo_hits += 1
            if known is not None:
                found[key] = known
                continue
            cut = cut_glyph(raw)
            if cut is not None:  # nothing to read: no call for it
                found[key] = ("", 0.0, f"cut: a glyph at the region's {cut} edge")
                self._remember(key, digest, found[key])
                continue
            font = self._fonts.get(key) if self.glyphs else None
            if font is not None:
                with self._lock:
                    matched = font.read(raw)
                    if matched is not None:
                        self.glyph_counts["read"] += 1
                        audit = self.glyph_counts["read"] % self.audit_every == 0
                if matched is not None and not audit:
                    found[key] = (matched[0], matched[1], None)
                    self._remember(key, digest, found[key])
                    continue
                if matched is not None:  # now and then the OCR model reads it too
                    audits[key] = matched[0]
            colour = font.colour() if font is not None else None
            crop = _margined(_tight(raw, colour=colour))
            scale = self.ocr_height / crop.shape[0]
            crop = cv2.resize(
                crop,
                (max(int(crop.shape[1] * scale), 8), self.ocr_height),
                interpolation=cv2.INTER_CUBIC if scale > 1 else cv2.INTER_AREA,
            )
            crops.append(np.ascontiguousarray(crop[..., ::-1]))  # the recogniser wants BGR
            keys.append(key)
            digests.append(digest)
            raws.append(raw)
        if crops:
            texts, _elapsed = self._recognizer()(crops)
            for key, digest, raw, (text, score) in zip(keys, digests, raws, texts, strict=True):
                why = self._disagrees(key, raw, str(text), float(score))
                found[key] = (str(text), float(score), why)
                self._remember(key, digest, found[key])
                if self.glyphs and found[key][2] is None:
                    self._learn(key, raw, str(text), float(score), audits.get(key))
        out: dict[str, int | None] = dict.fromkeys(HUD_FIELDS)
        confidence: dict[str, float] = {}
        unsure: list[tuple[str, str]] = []
        texted = set()
        for key, (text, score, why) in found.items():
            if why is not None:
                unsure.append((key, why))
                continue
            parsed = parse_hud_text(key, text)
            if all(v is None for v in parsed.values()):
                continue  # blank (Doom's AMMO with the fist), or no digits in it
            texted.add(key)
            if score < self.min_confidence:
                unsure.append(
                    (key, f"unsure: read {text!r} at {score:.2f} < {self.min_confidence}")
                )
                continue
            out.update(parsed)
            confidence.update(dict.fromkeys(parsed, round(score, 3)))
        self._check_regions(texted)
        return out, confidence, unsure

    def _disagrees(self, key: str, raw: np.ndarray, text: str, score: float) -> str | None:
        """Why the OCR model's ``text`` for region ``key`` is not to be trusted, where the
        region's learned font counts another number of glyphs in the crop, or the read
        took an icon of another colour for a character
        (:meth:`~operators.vision.glyphs.GlyphFont.agrees`: scenery behind an overlay HUD
        read as a digit, or a digit lost in scenery of its colour); or, below
        ``confirm_confidence``, where the font knows every character read but could not
        match the crop itself. Else ``None``."""
        if not _INT.search(text):
            return None
        with self._lock:
            font = self._fonts.get(key) if self.glyphs else None
            agrees = (font or GlyphFont()).agrees(raw, text)
            chars = characters(text)
            vouched = (
                font is None
                or score >= self.confirm_confidence
                or not all(c in font.looks for c in chars)
                or font.read(raw) is not None
            )
        if agrees is False:
            return f"glyphs: read {text!r}, but the region's font sees another count of glyphs"
        if not vouched:
            return (
                f"unsure: read {text!r} at {score:.2f} < {self.confirm_confidence}, in a crop "
                "the region's font could not match though it knows those characters"
            )
        return None

    def _learn(
        self, key: str, raw: np.ndarray, text: str, score: float, matched: str | None
    ) -> None:
        """The region's font learns from the OCR model's read; where the font had read the
        crop itself (an audit) and a sure OCR read disagrees, the font is forgotten."""
        with self._lock:
            font = self._fonts.setdefault(key, GlyphFont())
            self.glyph_counts["ocr"] += 1
            if matched is not None:
                self.glyph_counts["audits"] += 1
                sure = score >= font.min_score
                if sure and matched != "".join(text.split()):
                    self.glyph_counts["audit_mismatches"] += 1
                    logger.warning(
                        "hud font of %r read %r where the OCR model read %r: learning it again",
                        key,
                        matched,
                        text,
                    )
                    font.forget()
            font.learn(raw, text, score)

    def _remember(self, key: str, digest: bytes, read: tuple[str, float, str | None]) -> None:
        with self._lock:
            self._memo[(key, digest)] = read
            while len(self._memo) > self.memo_size:
                self._memo.popitem(last=False)

    def _check_regions(self, texted: set[str]) -> None:
        """Warn, once, about regions that held no digits on the first frames: regions for
        another game or screen, which would read ``None`` (or junk) forever."""
        with self._lock:
            if self._checked >= self.CHECK_FRAMES:
                return
            self._checked += 1
            self._texted |= texted
            if self._checked < self.CHECK_FRAMES:
                return
            self.regions_without_text = [r for r in self.hud_regions if r not in self._texted]
        if self.regions_without_text:
            logger.warning(
                "hud.regions: %s held no readable number on the first %d "
                "frames; are these regions for this game and screen? Find them with "
                "`python -m flows.calibrate RECORDING`",
                ", ".join(repr(r) for r in self.regions_without_text),
                self.CHECK_FRAMES,
            )

    UNREAD_WARN = 0.05
    """A region unread on more than this share of frames is warned about."""
    CUT_WARN = 0.01
    """A region whose glyphs are cut on more than this share of frames is warned about."""

    def metrics(self) -> dict[str, Any]:
        with self._lock:
            fields = {k: dict(c) for k, c in self.field_counts.items()}
        return {
            "regions_without_text": list(self.regions_without_text),
            "regions_reused": self.memo_hits,
            "fields": fields,
            "recalibrate": self.warnings(fields),
            "glyphs": dict(self.glyph_counts),
        }

    def warnings(self, fields: Mapping[str, Mapping[str, int]]) -> list[str]:
        """One line per region that is unread too often, or whose glyphs look cut: the
        regions do not fit this screen (another size, HUD scale or mode)."""
        out = []
        for key, c in sorted(fields.items()):
            frames = c.get("frames", 0)
            if not frames:
                continue
            unread, cut = c.get("unread", 0) / frames, c.get("cut", 0) / frames
            if unread > self.UNREAD_WARN or cut > self.CUT_WARN:
                out.append(
                    f"HUD region {key!r} unread on {unread:.1%} of {frames} frames "
                    f"({cut:.1%} with a glyph cut by its edge): recalibrate on a recording "
                    "of this screen (python -m flows.calibrate RECORDING --ranges GAME)"
                )
        return out

    def check(
        self, hud: dict[str, int | None]
    ) -> tuple[dict[str, int | None], tuple[tuple[str, str], ...]]:
        """The readings this game's fields can show, and ``(field, why)`` for the others."""
        rejected = []
        checked = dict(hud)
        for field, value in hud.items():
            why = check_reading(field, value, self.ranges)
            if why is not None:
                checked[field] = None
                rejected.append((field, why))
        return checked, tuple(rejected)

    def _count(self, rejected: Sequence[tuple[str, str]]) -> None:
        """Per region: frames read, and how many gave no number to trust (and why)."""
        why = {"ammo" if f == "ammo_reserve" else f: r for f, r in rejected}
        with self._lock:
            for key in self.hud_regions:
                c = self.field_counts.setdefault(key, Counter())
                c["frames"] += 1
                if key in why:
                    c["unread"] += 1
                    c[why[key].split(":")[0]] += 1

    def find_enemies(self, image: np.ndarray) -> tuple[Detection, ...]:
        h, w = image.shape[:2]
        mask = cv2.inRange(image, self._enemy_lo, self._enemy_hi)
        for x0, y0, x1, y1 in self.hud_regions.values():  # the HUD is not the world
            mask[int(y0 * h) : int(y1 * h), int(x0 * w) : int(x1 * w)] = 0
        if not cv2.countNonZero(mask):
            return ()
        # the blobs are labelled within the box that holds every pixel of the colour: on
        # a frame with a few small enemies a tenth of the picture, or less
        bx, by, bw_, bh_ = cv2.boundingRect(mask)
        box = mask[by : by + bh_, bx : bx + bw_]
        n, _labels, stats, _ = cv2.connectedComponentsWithStats(box, connectivity=8)
        min_px = self.min_enemy_area * h * w
        dets = []
        for i in range(1, n):
            x, y, bw, bh, area = stats[i]
            x, y = x + bx, y + by
            if area >= min_px:
                dets.append(Detection(x / w, y / h, (x + bw) / w, (y + bh) / h, score=1.0))
        return tuple(sorted(dets, key=lambda d: (d.x0, d.y0)))

    @staticmethod
    def classify_scene(image: np.ndarray, hud: Mapping[str, int | None]) -> Scene:
        r, g, b, _ = cv2.mean(np.ascontiguousarray(image[::8, ::8]))
        mean = (r + g + b) / 3.0
        if mean < 12:
            return Scene.LOADING
        looks_dead = mean < 60 or (r > 1.4 * g and r > 1.4 * b)  # dimmed, or a red screen
        if hud.get("health") == 0 and looks_dead:
            return Scene.DEATH
        if all(v is None for v in hud.values()):
            return Scene.MENU
        return Scene.GAMEPLAY

    def infer(self, frame: Frame) -> VisionResult:
        t0 = time.perf_counter()
        read, confidence, unsure = self.read_hud(frame.image)
        hud, implausible = self.check(read)
        rejected = (*unsure, *implausible)
        confidence = {k: v for k, v in confidence.items() if hud.get(k) is not None}
        self._count(rejected)
        scene = self.classify_scene(frame.image, hud)
        enemies = () if scene is Scene.DEATH else self.find_enemies(frame.image)
        return VisionResult(
            stream_id=frame.stream_id,
            seq=frame.seq,
            health=hud["health"],
            armor=hud["armor"],
            ammo=hud["ammo"],
            ammo_reserve=hud["ammo_reserve"],
            money=hud["money"],
            scene=scene,
            enemies=enemies,
            backend=self.name,
            latency_ms=(time.perf_counter() - t0) * 1000.0,
            rejected=rejected,
            confidence=tuple(sorted(confidence.items())),
        )
