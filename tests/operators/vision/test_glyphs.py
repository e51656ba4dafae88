"""The HUD font reader: learned from the OCR model, read by matching, checked by it."""

from __future__ import annotations

import cv2
import numpy as np

from operators.frame import Frame
from operators.vision.glyphs import GlyphFont, glyph_runs, text_ink
from operators.vision.local import LocalVisionBackend


def _hud(health: int, ammo: int, font: int = cv2.FONT_HERSHEY_DUPLEX) -> np.ndarray:
    img = np.full((200, 400, 3), (30, 60, 90), np.uint8)
    cv2.putText(img, f"{health}", (20, 180), font, 1.6, (240, 200, 40), 3)
    cv2.putText(img, f"{ammo}", (250, 180), font, 1.6, (240, 200, 40), 3)
    return img


REGIONS = {"health": (0.02, 0.65, 0.45, 0.98), "ammo": (0.6, 0.65, 0.98, 0.98)}


def test_a_panel_bevel_is_no_glyph():
    crop = np.full((30, 60, 3), 50, np.uint8)
    cv2.putText(crop, "47", (12, 24), cv2.FONT_HERSHEY_SIMPLEX, 0.8, (230, 30, 30), 2)
    crop[:, 2] = 150  # a grey bevel, one pixel wide, the height of the crop
    runs = glyph_runs(text_ink(crop))
    assert len(runs) == 2 and runs[0][0] > 2


def test_the_font_reads_what_the_ocr_model_taught_it_and_nothing_it_did_not():
    backend = LocalVisionBackend(hud_regions=REGIONS, ranges="cs2", memo_size=0)
    truth = [(100 - 3 * i, 30 - i) for i in range(24)]
    for i, (h, a) in enumerate(truth):
        got = backend.infer(Frame("s", i, 0.0, _hud(h, a)))
        assert (got.health, got.ammo) == (h, a)
    counts = backend.metrics()["glyphs"]
    assert counts["read"] > 0 and counts["ocr"] > 0  # the font took over from the OCR model
    font = backend._fonts["health"]
    assert set(font.looks) <= set("0123456789")
    # a glyph of another font is no digit it knows: unread by the font, read by OCR
    other = np.full((60, 160, 3), (30, 60, 90), np.uint8)
    cv2.putText(other, "58", (10, 50), cv2.FONT_HERSHEY_SCRIPT_COMPLEX, 1.6, (240, 200, 40), 3)
    assert font.read(other) is None


def test_an_audit_that_disagrees_makes_the_font_start_over(caplog):
    backend = LocalVisionBackend(hud_regions=REGIONS, ranges="cs2", memo_size=0, audit_every=1)
    simplex = cv2.FONT_HERSHEY_SIMPLEX  # read by the OCR model at 0.98-1.0 at 100 and 97
    for i, h in enumerate((100, 97)):  # the OCR model teaches the digits
        backend.infer(Frame("s", i, 0.0, _hud(h, 30, simplex)))
    font = backend._fonts["health"]
    assert {"0", "1"} <= set(font.looks)
    assert font.read(np.ascontiguousarray(_hud(100, 30, simplex)[130:196, 8:180])) is not None
    # now the font's "0" is wrong: every read is audited, the OCR model disagrees
    font.looks["8"] = font.looks.pop("0")
    got = backend.infer(Frame("s", 9, 0.0, _hud(100, 30, simplex)))
    assert got.health == 100  # the OCR model's reading, not the font's "188"
    assert backend.metrics()["glyphs"]["audit_mismatches"] >= 1
    assert "learning it again" in caplog.text


def test_a_font_learns_only_sure_reads_that_line_up_with_their_glyphs():
    font = GlyphFont()
    crop = np.ascontiguousarray(_hud(47, 0)[130:196, 8:180])
    assert not font.learn(crop, "47", 0.5)  # unsure
    assert not font.learn(crop, "477", 0.99)  # three characters, two glyphs
    assert font.learn(crop, "47", 0.99) and set(font.looks) == {"4", "7"}


def _number(text: str, icon: bool = False, width: int = 200) -> np.ndarray:
    """Red digits over grey, right-aligned, with (``icon``) a grey-brown clip apart to
    their right, as Doom's full-screen HUD draws its ammo."""
    crop = np.full((60, width, 3), (20, 20, 20), np.uint8)
    (w, _h), _ = cv2.getTextSize(text, cv2.FONT_HERSHEY_DUPLEX, 1.6, 3)
    cv2.putText(crop, text, (140 - w, 50), cv2.FONT_HERSHEY_DUPLEX, 1.6, (200, 0, 0), 3)
    if icon:
        crop[14:52, 170:182] = (150, 120, 60)
    return crop


def test_an_icon_beside_the_number_is_no_glyph_of_it():
    """Doom's full-screen ammo ("9" and its clip) read as "91" was a wrong number that
    passed every check: a run of another colour, set apart, is not one of the glyphs."""
    font = GlyphFont()
    for v in (25, 17, 40, 36, 98):
        assert font.learn(_number(str(v), icon=True), str(v), 0.99)
    assert font.read(_number("9", icon=True))[0] == "9"
    assert font.read(_number("25", icon=True))[0] == "25"
    # a glyph of the text's own colour at the glyphs' spacing is never left out
    assert font.read(_number("91", icon=True))[0] == "91"
    # nor one set apart in the text's colour (not an icon: unread, or read whole)
    apart = _number("9")
    cv2.putText(apart, "1", (170, 50), cv2.FONT_HERSHEY_DUPLEX, 1.6, (200, 0, 0), 3)
    assert font.read(apart) is None or font.read(apart)[0] == "91"


def _clipped(text: str) -> np.ndarray:
    """Red digits right-aligned 16 columns (a third of their height) before a clip that is
    shorter than they are and sits lower, dark with a brass stripe, over a grey floor:
    Doom's full-screen ammo at 1280x720, where the clip is too near to be set apart."""
    crop = np.full((60, 200, 3), (110, 110, 110), np.uint8)
    (w, _h), _ = cv2.getTextSize(text, cv2.FONT_HERSHEY_DUPLEX, 1.6, 3)
    cv2.putText(crop, text, (140 - w, 50), cv2.FONT_HERSHEY_DUPLEX, 1.6, (140, 0, 0), 3)
    crop[26:56, 156:170] = (35, 35, 35)
    crop[30:52, 160:163] = (200, 160, 40)
    return crop


def test_a_read_that_counts_a_clip_beside_the_number_is_not_trusted():
    """The full-screen ammo clip drawn near a one-digit number, read as its last digit
    ("93" for 9, at 0.95), was delivered: the clip is neither set apart nor of the text's
    colour throughout. A run at the end of another colour that does not line up with the
    glyphs is not counted as one; a read that counts it is refused, not trimmed."""
    font = GlyphFont()
    one = _clipped("9")
    assert not font.learn(one, "93", 0.95)  # a font that knows nothing yet learns no clip
    for v in (25, 17, 40, 36, 98):
        assert font.learn(_clipped(str(v)), str(v), 0.99)
    assert font.read(one) is None  # left to the OCR model, whose "93" is checked here:
    assert font.agrees(one, "93") is False
    assert font.agrees(one, "9") is True
    assert font.agrees(_clipped("36"), "36") is True
    assert font.agrees(_clipped("36"), "361") is False
