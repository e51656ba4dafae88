"""A stream that is not the arena: photographs, another game's HUD, flashes, noise.

Used by ``benchmarks/dedup.py`` and the tests as held-out data for dedup, the
calibration command and the local model. Nothing here is tuned to a framewax
detector: the HUD is drawn where, how big and in what colours a layout says,
with other fonts than the arena's, and every frame knows what it shows.

- the background is a viewport over a photograph from ``skimage.data`` (or a
  generated texture where scikit-image is missing): still stretches, pans of
  a few pixels a frame, cuts to another photograph;
- whole-screen events: a white flash, a fade to black and back, a red damage
  tint, a solid red / blue / black screen;
- the HUD: health, armor, ammo (``clip/reserve``) and money in a ``Layout``,
  each value changing now and then (a digit at a time, or a jump);
- every frame then gets sensor noise, a ±2 brightness flicker and JPEG
  re-encoding, so no two frames are byte-identical even when nothing changed.

Each frame's :class:`Shown` says what is visible (photo, viewport, effect,
HUD): two frames show the same thing exactly when their ``Shown`` are equal,
which is the oracle the dedup benchmark scores against.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import cv2
import numpy as np

__all__ = [
    "HELD_OUT_LAYOUTS",
    "LAYOUTS",
    "Layout",
    "Shown",
    "covering_regions",
    "photos",
    "stream",
    "write_recording",
]


@dataclass(frozen=True)
class Layout:
    """Where and how a HUD draws its four numbers (relative anchors, bottom-left of text)."""

    name: str
    health_at: tuple[float, float]
    armor_at: tuple[float, float]
    ammo_at: tuple[float, float]
    money_at: tuple[float, float]
    font: int
    scale: float  # text height, as a fraction of the frame's height
    colour: tuple[int, int, int]  # RGB of the digits
    panel: tuple[int, int, int] | None  # RGB of a panel behind each number, or none
    health_label: str
    armor_label: str


LAYOUTS = {
    # numbers at the top-left and bottom-centre, amber on translucent panels
    "amber": Layout(
        "amber",
        health_at=(0.03, 0.08),
        armor_at=(0.03, 0.15),
        ammo_at=(0.44, 0.95),
        money_at=(0.80, 0.08),
        font=cv2.FONT_HERSHEY_DUPLEX,
        scale=0.045,
        colour=(255, 190, 60),
        panel=(40, 30, 20),
        health_label="+",
        armor_label="SHIELD ",
    ),
    # thin cyan digits straight on the picture, bottom-right cluster, no panel
    "cyan": Layout(
        "cyan",
        health_at=(0.62, 0.94),
        armor_at=(0.76, 0.94),
        ammo_at=(0.88, 0.86),
        money_at=(0.04, 0.50),
        font=cv2.FONT_HERSHEY_COMPLEX_SMALL,
        scale=0.035,
        colour=(90, 230, 255),
        panel=None,
        health_label="HP ",
        armor_label="AR ",
    ),
}

HELD_OUT_LAYOUTS = {
    # Never used to choose a threshold: the tests of dedup hold it to them.
    # dim grey-beige digits on a panel they barely stand out from (35-80 levels)
    "dim": Layout(
        "dim",
        health_at=(0.03, 0.92),
        armor_at=(0.20, 0.92),
        ammo_at=(0.80, 0.92),
        money_at=(0.03, 0.10),
        font=cv2.FONT_HERSHEY_DUPLEX,
        scale=0.045,
        colour=(150, 140, 120),
        panel=(70, 70, 70),
        health_label="+",
        armor_label="",
    ),
    # small thin red digits straight on the picture, anti-aliased strokes a pixel wide
    "thin": Layout(
        "thin",
        health_at=(0.62, 0.94),
        armor_at=(0.76, 0.94),
        ammo_at=(0.88, 0.86),
        money_at=(0.04, 0.50),
        font=cv2.FONT_HERSHEY_SIMPLEX,
        scale=0.022,
        colour=(255, 80, 80),
        panel=None,
        health_label="HP ",
        armor_label="AR ",
    ),
}


def covering_regions(layout: Layout, width: int, height: int) -> dict[str, list[float]]:
    """Regions that hold each of the layout's texts at its widest (``100``, ``30/120``,
    ``$16000``), a third of the text's height around it: what a calibration that fits
    its fields gives, without running one."""
    base_h = cv2.getTextSize("0", layout.font, 1.0, 1)[0][1]
    scale = layout.scale * height / base_h
    thick = max(1, round(scale * 1.2))
    widest = {
        "health": (layout.health_at, f"{layout.health_label}100"),
        "armor": (layout.armor_at, f"{layout.armor_label}100"),
        "ammo": (layout.ammo_at, "30/120"),
        "money": (layout.money_at, "$16000"),
    }
    out = {}
    for name, ((ax, ay), text) in widest.items():
        (tw, th), base = cv2.getTextSize(text, layout.font, scale, thick)
        x, y, pad = ax * width, ay * height, 0.3 * th
        out[name] = [
            max(0.0, (x - pad) / width),
            max(0.0, (y - th - pad) / height),
            min(1.0, (x + tw + pad) / width),
            min(1.0, (y + base + pad) / height),
        ]
    return out


@dataclass(frozen=True)
class Shown:
    """What a frame shows: equal :meth:`visible` ⇔ nothing visible changed."""

    photo: int
    x: int
    y: int
    effect: str  # "", "flash", "fade:<step>", "tint", "solid:<colour>"
    health: int
    armor: int
    ammo: int
    ammo_reserve: int
    money: int

    def visible(self) -> tuple[object, ...]:
        """What is on the screen: a solid screen hides the photograph and the HUD."""
        if self.effect.startswith("solid:"):
            return (self.effect,)
        return (self.photo, self.x, self.y, self.effect, *self.hud().values())

    def hud_visible(self) -> bool:
        return not self.effect.startswith("solid:")

    def hud(self) -> dict[str, int]:
        return {
            "health": self.health,
            "armor": self.armor,
            "ammo": self.ammo,
            "ammo_reserve": self.ammo_reserve,
            "money": self.money,
        }


def photos(seed: int = 0) -> list[np.ndarray]:
    """Photographs from scikit-image (bundled with it, no download), or textures."""
    try:
        from skimage import data

        names = ("coffee", "chelsea", "rocket", "astronaut", "immunohistochemistry", "retina")
        out = [np.ascontiguousarray(getattr(data, n)()[..., :3]) for n in names]
    except ImportError:  # generated textures: smooth colour fields with edges
        rng = np.random.default_rng(seed)
        out = []
        for _ in range(6):
            small = rng.integers(0, 256, (12, 16, 3), dtype=np.uint8)
            out.append(cv2.resize(small, (640, 480), interpolation=cv2.INTER_CUBIC))
    return out


def _scene(pics: list[np.ndarray], s: Shown, width: int, height: int) -> np.ndarray:
    if s.effect.startswith("solid:"):
        colour = {"red": (200, 20, 20), "blue": (20, 40, 200), "black": (0, 0, 0)}
        return np.full((height, width, 3), colour[s.effect[6:]], np.uint8)
    pic = pics[s.photo]
    # the photograph, enlarged 1.6x the frame, seen through a viewport at (x, y)
    big_w, big_h = int(width * 1.6), int(height * 1.6)
    big = cv2.resize(pic, (big_w, big_h), interpolation=cv2.INTER_LINEAR)
    img = big[s.y : s.y + height, s.x : s.x + width].astype(np.float32)
    if s.effect == "flash":
        img = img * 0.3 + 255 * 0.7
    elif s.effect.startswith("fade:"):
        img = img * (1.0 - int(s.effect[5:]) / 6.0)
    elif s.effect == "tint":
        img = img * 0.6 + np.array([255, 0, 0], np.float32) * 0.4
    return np.clip(img, 0, 255).astype(np.uint8)


def _hud(img: np.ndarray, s: Shown, layout: Layout) -> None:
    h, w = img.shape[:2]
    texts = {
        "health": (layout.health_at, f"{layout.health_label}{s.health}"),
        "armor": (layout.armor_at, f"{layout.armor_label}{s.armor}"),
        "ammo": (layout.ammo_at, f"{s.ammo}/{s.ammo_reserve}"),
        "money": (layout.money_at, f"${s.money}"),
    }
    base_h = cv2.getTextSize("0", layout.font, 1.0, 1)[0][1]
    scale = layout.scale * h / base_h
    thick = max(1, round(scale * 1.2))
    for (ax, ay), text in texts.values():
        x, y = int(ax * w), int(ay * h)
        (tw, th), base = cv2.getTextSize(text, layout.font, scale, thick)
        if layout.panel is not None:
            pad = max(2, th // 3)
            y0, y1 = max(y - th - pad, 0), min(y + base + pad, h)
            x0, x1 = max(x - pad, 0), min(x + tw + pad, w)
            roi = img[y0:y1, x0:x1].astype(np.float32)
            img[y0:y1, x0:x1] = (roi * 0.35 + np.array(layout.panel) * 0.65).astype(np.uint8)
        cv2.putText(img, text, (x, y), layout.font, scale, layout.colour, thick, cv2.LINE_AA)


def stream(
    frames: int = 600,
    seed: int = 0,
    width: int = 1280,
    height: int = 720,
    layout: Layout | str = "amber",
    jpeg_quality: int = 88,
    noise: float = 2.0,
) -> Iterator[tuple[np.ndarray, Shown]]:
    """``frames`` RGB frames and what each shows."""
    lay = LAYOUTS[layout] if isinstance(layout, str) else layout
    rng = np.random.default_rng(seed)
    pics = photos(seed)
    max_x, max_y = int(width * 0.6), int(height * 0.6)
    s = Shown(0, max_x // 2, max_y // 2, "", 100, 50, 30, 120, 800)
    motion = (0, 0)
    effect_left = 0
    for _ in range(frames):
        r = rng.random()
        # the camera: hold still, start a pan, or cut to another photograph
        if r < 0.03:
            s = replace(
                s,
                photo=int(rng.integers(len(pics))),
                x=int(rng.integers(max_x)),
                y=int(rng.integers(max_y)),
            )
            motion = (0, 0)
        elif r < 0.10:
            motion = (int(rng.choice([-6, -4, 4, 6])), int(rng.choice([-4, 0, 0, 4])))
        elif r < 0.18:
            motion = (0, 0)
        if motion != (0, 0):
            s = replace(
                s,
                x=int(np.clip(s.x + motion[0], 0, max_x - 1)),
                y=int(np.clip(s.y + motion[1], 0, max_y - 1)),
            )
        # whole-screen events
        if effect_left > 0:
            effect_left -= 1
            if s.effect.startswith("fade:"):
                step = int(s.effect[5:])
                step = min(step + 1, 6) if effect_left > 3 else max(step - 2, 0)
                s = replace(s, effect=f"fade:{step}" if step else "")  # fade:0 is no fade
            if effect_left == 0:
                s = replace(s, effect="")
        elif rng.random() < 0.02:
            kind = rng.choice(["flash", "fade", "tint", "solid"])
            if kind == "flash":
                s, effect_left = replace(s, effect="flash"), 2
            elif kind == "fade":
                s, effect_left = replace(s, effect="fade:1"), 8
            elif kind == "tint":
                s, effect_left = replace(s, effect="tint"), 6
            else:
                colour = str(rng.choice(["red", "blue", "black"]))
                s, effect_left = replace(s, effect=f"solid:{colour}"), 5
        # the HUD
        e = rng.random()
        if e < 0.04:
            s = replace(s, health=max(0, s.health - int(rng.integers(1, 30))))
        elif e < 0.06:
            s = replace(s, health=100, armor=int(rng.choice([0, 50, 100])))
        elif e < 0.10:
            if s.ammo > 0:
                s = replace(s, ammo=s.ammo - 1)
            else:
                take = min(30, s.ammo_reserve)
                s = replace(s, ammo=take, ammo_reserve=s.ammo_reserve - take)
        elif e < 0.12:
            s = replace(s, money=int(min(16000, max(0, s.money + rng.choice([-650, 300, 1400])))))
        elif e < 0.13:
            s = replace(s, armor=max(0, s.armor - int(rng.integers(1, 20))))
        if s.ammo_reserve == 0 and s.ammo == 0:
            s = replace(s, ammo=30, ammo_reserve=120)
        img = _scene(pics, s, width, height)
        if not s.effect.startswith("solid:"):
            _hud(img, s, lay)
        # the camera's noise, a flicker, a lossy codec: identical scenes, different bytes
        noisy = img.astype(np.float32) + rng.normal(0, noise, img.shape) + rng.uniform(-2, 2)
        img = np.clip(noisy, 0, 255).astype(np.uint8)
        ok, buf = cv2.imencode(".jpg", img[..., ::-1], [cv2.IMWRITE_JPEG_QUALITY, jpeg_quality])
        assert ok
        yield cv2.imdecode(buf, cv2.IMREAD_COLOR)[..., ::-1].copy(), s


def write_recording(out: Path, frames: int = 120, **kwargs: object) -> list[Shown]:
    """Write a stream as a recording (``index.jsonl`` + PNG frames) with its HUD as truth."""
    out.mkdir(parents=True, exist_ok=True)
    shown = []
    with (out / "index.jsonl").open("w", encoding="utf-8") as index:
        for seq, (img, s) in enumerate(stream(frames, **kwargs)):  # type: ignore[arg-type]
            name = f"{seq:08d}.png"
            cv2.imwrite(str(out / name), img[..., ::-1])
            # a solid screen shows no HUD: no truth to score a reading against
            truth = None if s.effect.startswith("solid:") else {**s.hud(), "enemies": []}
            index.write(
                json.dumps(
                    {"seq": seq, "captured_at": 1.7e9 + seq / 30, "file": name, "truth": truth}
                )
                + "\n"
            )
            shown.append(s)
    return shown


if __name__ == "__main__":  # a look at a few frames
    import sys

    for i, (img, s) in enumerate(stream(int(sys.argv[1]) if len(sys.argv) > 1 else 5)):
        cv2.imwrite(f"/tmp/photo_hud_{i}.png", img[..., ::-1])
        print(asdict(s))
