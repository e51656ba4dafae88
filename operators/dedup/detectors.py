"""Dedup: skip frames that look the same as the last kept frame of their stream.

A skipped frame is ledgered ``duplicate(of=<kept seq>)`` and later resolved
by the order step to its kept frame's result, so every skip saves one model
call. Frames whose picture is unusable are turned into ``failed(...)`` here,
before any expensive stage sees them.

The detectors (:class:`RegionDetector`, :class:`ThumbnailDetector`) and the
:class:`SceneCache` are plain objects; :class:`DedupStage` holds the step's
settings and gives each stream a :class:`DedupLogic`, which routes every frame
to one or more of the step's outputs (:class:`Route` per scene, :data:`Tag`
per output). No Bytewax here: :mod:`operators.steps` adapts it.
"""

from __future__ import annotations

import hashlib
import threading
from collections import OrderedDict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

import cv2
import numpy as np

from operators.errors import ConfigError
from operators.hud import hud_regions
from operators.reading import Scene

__all__ = [
    "ChangeDetector",
    "RegionDetector",
    "SceneCache",
    "SceneClassifier",
    "Signature",
    "ThumbnailDetector",
]


class ChangeDetector(Protocol):
    """Decides whether a frame shows the same thing as a reference frame."""

    def signature(self, image: np.ndarray) -> Any: ...

    def same(self, a: Any, b: Any) -> bool: ...


@runtime_checkable
class SceneClassifier(Protocol):
    """A detector that also names a frame's scene from its signature, with no model call
    (needed for the scene cache and scene routes), and measures signature distance."""

    def classify(self, sig: Any) -> Scene: ...

    def distance(self, a: Any, b: Any) -> int: ...

    def region_changes(self, a: Any, b: Any) -> list[str]: ...

    def tone_changed(self, a: Any, b: Any) -> bool: ...


class ThumbnailDetector:
    """Compares grey thumbnails of sampled pixels by their largest cell difference, and
    their colour in a coarse grid.

    The frame is sampled every ``stride`` pixels (cheap even at 1080p), then
    area-resized to ``size``; two frames are the same when no thumbnail cell
    differs by more than ``threshold`` grey levels and no cell of the 8x8 colour
    grid by more than ``tone_threshold`` in any channel (a tint or a flash barely
    moves grey; JPEG's colour fringes move single channels at edges, not the grid). A two-digit HUD change
    moves some cells by tens of levels; re-encoding noise moves them by a few.

    >>> det = ThumbnailDetector()
    >>> a = np.zeros((360, 640, 3), np.uint8)
    >>> b = a.copy(); b[300:340, 20:120] = 255
    >>> det.same(det.signature(a), det.signature(a.copy())), det.same(det.signature(a), det.signature(b))
    (True, False)
    """

    def __init__(
        self,
        size: tuple[int, int] = (96, 54),
        stride: int = 2,
        threshold: float = 12.0,
        tone_threshold: float = 12.0,
    ):
        if threshold < 0 or tone_threshold < 0:
            msg = f"dedup.options.threshold and tone_threshold must be >= 0; got {threshold}, {tone_threshold}"
            raise ValueError(msg)
        self.size = (int(size[0]), int(size[1]))
        self.stride = max(int(stride), 1)
        self.threshold = float(threshold)
        self.tone_threshold = float(tone_threshold)

    def signature(self, image: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        small = np.ascontiguousarray(image[:: self.stride, :: self.stride])
        colour = cv2.resize(small, self.size, interpolation=cv2.INTER_AREA)
        grey = cv2.cvtColor(colour, cv2.COLOR_RGB2GRAY).astype(np.int16)
        tone = cv2.resize(colour, (8, 8), interpolation=cv2.INTER_AREA).astype(np.int16)
        return grey, tone

    def same(self, a: tuple[np.ndarray, np.ndarray], b: tuple[np.ndarray, np.ndarray]) -> bool:
        (ga, ta), (gb, tb) = a, b
        if ga.shape != gb.shape:
            return False
        return (
            int(np.abs(ga - gb).max()) <= self.threshold
            and int(np.abs(ta - tb).max()) <= self.tone_threshold
        )


_THIRDS = np.full((1, 3), 1.0 / 3.0, np.float32)
"""The grey of a colour pixel: its channels' mean (as ``cv2.transform``'s matrix)."""


@dataclass(frozen=True)
class Signature:
    """What :class:`RegionDetector` remembers of a frame."""

    shape: tuple[int, ...]
    regions: tuple[np.ndarray, ...]
    """Each HUD region, in colour, at a resolution that keeps its digits' strokes."""
    hash: np.ndarray
    """Difference hash of the whole frame, per colour channel, four packed bit planes:
    gradient > margin, > margin / 2, < -margin, < -margin / 2."""
    tone: np.ndarray
    """The frame's colour in a coarse grid (``tone_size``² cells, per channel): what a
    gradient hash cannot see, a flash, a fade, a tint, one solid screen for another."""
    stats: tuple[float, float]
    """Mean and standard deviation of the sampled grey frame (scene classification)."""
    _contrasts: list[int | None] = field(default_factory=list, repr=False, compare=False)

    def contrast(self, i: int) -> int:
        """HUD region ``i``'s contrast: how far its text stands from its median colour
        (:func:`_contrast`). Worked out when first asked for: only a region whose
        pixels moved between the two thresholds needs it, seldom."""
        if not self._contrasts:
            self._contrasts.extend([None] * len(self.regions))
        known = self._contrasts[i]
        if known is None:
            known = self._contrasts[i] = _contrast(self.regions[i])
        return known


class RegionDetector:
    """Region-aware change detection: a frame is a duplicate only if every region says so.

    - *HUD regions* (relative rectangles; ``"arena"``, ``"cs2"`` or your own) are
      compared at about the resolution they have on a ``region_rows``-row screen
      (720: a digit's 1–2 px strokes at 720p stay strokes; up to 1080p at the
      screen's own resolution, larger screens shrunk by a whole factor, each
      pixel the mean of the k×k it covers, so a thin stroke is dimmed, never
      skipped; ``region_height`` sets the rows instead): a region
      changed when more than ``min_pixels`` of its pixels moved by more than
      ``pixel_threshold`` levels in any colour channel (a coloured digit on a
      background as bright as it changes no grey). 24, not the 48 it once was: a
      dim HUD's digits stand 35-80 levels from their panel, and a thin digit's
      anti-aliased stroke moves a pixel by part of its contrast, so at 48 a 22 -> 21
      went unseen; sensor noise, a ±2 flicker and JPEG at quality 88 move a few
      pixels past 24 (measured on photograph streams: 793 calls saved of 1500
      frames against 806 at 48, the oracle's 800).
    - *The rest of the frame* by a difference hash of a ``hash_size``×
      ``hash_size`` grid, each cell the mean of 3x3 sampled pixels, each colour
      channel on its own (a red figure on a grey wall hardly changes grey),
      with hysteresis around ``margin`` so noise does not flip bits (see
      :meth:`distance`); changed when more than ``hamming`` bits differ.
    - *Its tone*: the same grid averaged to ``tone_size``² cells per colour
      channel; changed when a cell moves by more than ``tone_threshold`` levels.
      Gradients miss uniform changes (a flash, a fade, a red damage tint, one
      solid screen for another); JPEG re-encoding and ±2 flicker move a cell by
      a level or two.

    Only a few thousand pixels are read, so the cost hardly grows with the
    screen (0.41 ms at 1080p, ``benchmarks/dedup.py``; a region none of whose
    pixels moved past ``min_threshold`` costs one ``cv2.norm``). Usable on its own::

        det = RegionDetector("arena")
        det.same(det.signature(a), det.signature(b))
    """

    def __init__(
        self,
        regions: str | Mapping[str, Sequence[float]] = "arena",
        region_height: int | None = None,
        region_rows: int = 720,
        pixel_threshold: int = 24,
        min_threshold: int = 12,
        min_pixels: int = 3,
        hash_size: int = 32,
        margin: int = 16,
        hamming: int = 4,
        tone_size: int = 8,
        tone_threshold: int = 12,
    ) -> None:
        rects = hud_regions(regions, "hud.regions")
        if (
            (region_height is not None and region_height < 4)
            or region_rows < 16
            or hash_size < 4
            or min_pixels < 0
            or hamming < 0
        ):
            msg = (
                "dedup.options: region_height >= 4 (or unset), region_rows >= 16, "
                "hash_size >= 4, min_pixels >= 0, hamming >= 0"
            )
            raise ValueError(msg)
        if not 1 <= tone_size <= hash_size or tone_threshold < 0:
            msg = f"dedup.options: 1 <= tone_size <= hash_size ({hash_size}), tone_threshold >= 0"
            raise ValueError(msg)
        self.regions = rects
        self.region_height = None if region_height is None else int(region_height)
        self.region_rows = int(region_rows)
        self.pixel_threshold = int(pixel_threshold)
        self.min_threshold = min(int(min_threshold), self.pixel_threshold)
        self.min_pixels = int(min_pixels)
        self.hash_size = int(hash_size)
        self.margin = int(margin)
        self.hamming = int(hamming)
        self.tone_size = int(tone_size)
        self.tone_threshold = int(tone_threshold)
        self._present: dict[tuple[float, bytes], bool] = {}
        self._lock = threading.Lock()

    # -- signatures ------------------------------------------------------------------
    def signature(self, image: np.ndarray) -> Signature:
        h, w = image.shape[:2]
        regions = []
        for x0, y0, x1, y1 in self.regions.values():
            top, left = int(y0 * h), int(x0 * w)
            crop = image[top : max(int(y1 * h), top + 1), left : max(int(x1 * w), left + 1)]
            # Shrunk by a whole factor k (k x k pixels averaged into one) while it keeps
            # at least the rows the region has on a `region_rows` screen: a 1 px stroke
            # at 720p is still there, dimmed by at most 1/k; 1080p stays native.
            ch, cw = crop.shape[:2]
            rows = self.region_height or max(4, round((y1 - y0) * self.region_rows))
            k = max(ch // max(rows, 1), 1)
            if k >= 2 and ch >= 2 * k and cw >= k:
                crop = crop[: ch - ch % k, : cw - cw % k]
                size = (crop.shape[1] // k, crop.shape[0] // k)
                crop = cv2.resize(crop, size, interpolation=cv2.INTER_AREA)
            regions.append(np.ascontiguousarray(crop))  # uint8, compared with OpenCV
        # The whole frame: three samples per hash cell each way, then averaged.
        n, t = self.hash_size, self.tone_size
        grid = cv2.resize(image, (3 * (n + 1), 3 * n), interpolation=cv2.INTER_NEAREST)
        thumb8 = cv2.resize(grid, (n + 1, n), interpolation=cv2.INTER_AREA)
        tone = cv2.resize(thumb8, (t, t), interpolation=cv2.INTER_AREA).astype(np.int16)
        thumb = thumb8.astype(np.int16)
        grad = (thumb[:, 1:, :] - thumb[:, :-1, :]).ravel()
        hi, lo = self.margin, self.margin // 2
        planes = np.stack([grad > hi, grad > lo, grad < -hi, grad < -lo])
        # grey (the channels' mean), then its mean and standard deviation: one OpenCV call
        grey = cv2.transform(thumb8.astype(np.float32), _THIRDS)
        mean, std = cv2.meanStdDev(grey)
        stats = (float(mean[0, 0]), float(std[0, 0]))
        packed = np.packbits(planes, axis=1)
        return Signature(image.shape, tuple(regions), packed, tone, stats)

    # -- comparisons -----------------------------------------------------------------
    def region_changes(self, a: Signature, b: Signature) -> list[str]:
        """The HUD regions that differ between two signatures."""
        out = []
        for i, (name, ra, rb) in enumerate(zip(self.regions, a.regions, b.regions, strict=True)):
            if ra.shape != rb.shape:
                out.append(name)
                continue
            if cv2.norm(ra, rb, cv2.NORM_INF) <= self.min_threshold:
                continue  # no pixel moved past the lowest threshold (most regions, most frames)
            c0, c1, c2 = cv2.split(cv2.absdiff(ra, rb))
            most = cv2.max(cv2.max(c0, c1), c2)  # the channel that moved most, per pixel
            if self._moved(most, self.pixel_threshold):
                out.append(name)
            elif self.min_threshold < self.pixel_threshold and self._moved(
                most, self.min_threshold
            ):
                # Text that barely stands out changes its pixels by barely more: the
                # threshold is a share of the region's contrast, down to a floor over the
                # noise (only asked here: most regions moved past both or neither).
                contrast = max(a.contrast(i), b.contrast(i))
                level = min(self.pixel_threshold, max(self.min_threshold, 0.6 * contrast))
                if self._moved(most, level):
                    out.append(name)
        return out

    def _moved(self, most: np.ndarray, level: float) -> bool:
        """More than ``min_pixels`` of a region's pixels moved past ``level``."""
        _, moved = cv2.threshold(most, level, 255, cv2.THRESH_BINARY)
        return cv2.countNonZero(moved) > self.min_pixels

    def tone_changed(self, a: Signature, b: Signature) -> bool:
        """Whether the frame's colour moved: a flash, a fade, a tint, another solid screen."""
        return int(np.abs(a.tone - b.tone).max()) > self.tone_threshold

    def distance(self, a: Signature, b: Signature) -> int:
        """Hamming distance of the frames' hashes, with hysteresis: a gradient counts as
        changed only if it is past ``margin`` in one frame and under ``margin / 2`` (or of
        the other sign) in the other, so noise around the margin flips nothing."""
        (ap, apw, an, anw), (bp, bpw, bn, bnw) = a.hash, b.hash
        changed = (ap & ~bpw) | (bp & ~apw) | (an & ~bnw) | (bn & ~anw)
        return int(np.bitwise_count(changed).sum())

    def same(self, a: Signature, b: Signature) -> bool:
        if a.shape != b.shape:
            return False
        return (
            self.distance(a, b) <= self.hamming
            and not self.tone_changed(a, b)
            and not self.region_changes(a, b)
        )

    def hud_present(self, sig: Signature, min_contrast: float = 40.0) -> bool:
        """Whether the HUD regions hold something like text (bright strokes on a panel).
        Remembered for the regions' exact pixels: a HUD that did not change while the
        picture did (most frames of a game) is not looked at again."""
        digest = hashlib.blake2b(digest_size=16)
        for r in sig.regions:
            digest.update(repr(r.shape).encode())
            digest.update(np.ascontiguousarray(r).data)
        key = (min_contrast, digest.digest())
        with self._lock:
            known = self._present.get(key)
        if known is not None:
            return known
        contrasts = [_brightest_minus_median(r) for r in sig.regions]
        present = bool(contrasts) and sum(c >= min_contrast for c in contrasts) * 2 >= len(
            contrasts
        )
        with self._lock:
            if len(self._present) >= 256:
                self._present.pop(next(iter(self._present)))  # the oldest
            self._present[key] = present
        return present

    def classify(self, sig: Signature) -> Scene:
        """A cheap scene guess, no model: loading (dark and flat), gameplay (HUD present),
        death (no HUD, and the screen washed red: red at least 1.5x green and blue over the
        whole frame), menu (no HUD otherwise)."""
        mean, std = sig.stats
        if mean < 16 and std < 8:
            return Scene.LOADING
        if self.hud_present(sig):
            return Scene.GAMEPLAY
        r, g, b = (float(v) for v in sig.tone.reshape(-1, 3).mean(axis=0))  # RGB frames
        if r >= 40 and r >= 1.5 * max(g, b, 1.0):
            return Scene.DEATH
        return Scene.MENU


def _contrast(region: np.ndarray) -> int:
    """How far a region's text stands from its background: on each pixel's brightest
    channel, the 98th percentile minus the median, or the median minus the 2nd (text
    brighter or darker than its panel), from a 256-bin histogram of every other pixel.

    >>> r = np.full((10, 10, 3), 100, np.uint8); r[2:8, 4:6] = (130, 100, 100)
    >>> _contrast(r)
    30
    """
    sample = np.ascontiguousarray(region[::2, ::2])  # a percentile: every other pixel will do
    c0, c1, c2 = cv2.split(sample)
    bright = cv2.max(cv2.max(c0, c1), c2)
    counts = np.cumsum(np.bincount(bright.ravel(), minlength=256))
    n = int(counts[-1])
    lo, mid, hi = (int(np.searchsorted(counts, q * n, side="right")) for q in (0.02, 0.5, 0.98))
    return max(hi - mid, mid - lo)


def _brightest_minus_median(region: np.ndarray) -> float:
    """Of a region's brightest channel per pixel: its maximum minus its median (exact, from a
    256-bin histogram: a uint8 median without sorting).

    >>> r = np.zeros((2, 2, 3), np.uint8); r[0, 0, 2] = 200; r[1, 1, 0] = 10
    >>> _brightest_minus_median(r)
    195.0
    """
    if region.ndim == 3 and region.shape[2] == 3:
        c0, c1, c2 = cv2.split(region)
        bright = cv2.max(cv2.max(c0, c1), c2)
    else:
        bright = region if region.ndim == 2 else region.max(axis=2)
    counts = np.cumsum(np.bincount(bright.ravel(), minlength=256))
    n = int(counts[-1])
    if n == 0:
        return 0.0
    lo = int(np.searchsorted(counts, (n - 1) // 2 + 1))  # the value at rank (n - 1) // 2
    hi = int(np.searchsorted(counts, n // 2 + 1))  # ... and at rank n // 2
    return float(bright.max()) - (lo + hi) / 2.0


class SceneCache:
    """Results of scenes seen before, keyed by perceptual hash: a bounded LRU searched
    within a Hamming ``radius`` (tone and HUD regions must match too: screens of another
    colour are other screens).

    Entries are kept frames' ``(seq, signature)``; a hit names the frame whose
    model result the new frame reuses (``cached(of)``).
    """

    def __init__(self, detector: SceneClassifier, size: int = 64, radius: int | None = None):
        if size < 1:
            msg = f"dedup.cache_size must be >= 1; got {size}"
            raise ConfigError(msg)
        self.detector = detector
        self.size = size
        # The detector's own duplicate threshold, where it has one.
        self.radius = int(getattr(detector, "hamming", 10)) if radius is None else radius
        self.entries: OrderedDict[int, Signature] = OrderedDict()

    def find(self, sig: Signature) -> int | None:
        best, best_d = None, self.radius + 1
        for seq, other in self.entries.items():
            if other.shape != sig.shape:
                continue
            d = self.detector.distance(sig, other)
            if (
                d < best_d
                and not self.detector.tone_changed(sig, other)
                and not self.detector.region_changes(sig, other)
            ):
                best, best_d = seq, d
        if best is not None:
            self.entries.move_to_end(best)
        return best

    def add(self, seq: int, sig: Signature) -> None:
        self.entries[seq] = sig
        while len(self.entries) > self.size:
            self.entries.popitem(last=False)
