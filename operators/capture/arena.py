"""The built-in arena: a small procedurally drawn first-person shooter.

It stands in for Counter-Strike 2 on machines with no game and no screen: a
textured wall band and a perspective floor that move when the player turns
or walks, red enemy figures that wander, shoot and can be shot, a crosshair,
and a HUD with health, armor, ammo and money drawn as text. It is seeded,
takes the env's actions, and knows the ground truth of every frame it draws.
:class:`ArenaSource` runs it as a capture source (one arena per stream), and
:class:`ArenaControl` is how an agent drives one stream's arena.

Actions are ``MultiDiscrete([3, 5, 10, 8])`` and all-zeros does nothing:

- ``move``: 0 stay, 1 forward, 2 back
- ``turn``: 0 none, 1 left, 2 right, 3 hard left, 4 hard right
- ``pitch``: 0 level, 1..4 look up, 5..9 look down
- ``command``: 0 none, 1 fire (held: automatic, every 6 frames), 2 reload,
  3 strafe left, 4 strafe right, 5 buy armor ($650), 6 crouch, 7 walk (slow)
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import cv2
import numpy as np

from operators.capture.base import AgentControl, GameSource, GameStream
from operators.clock import SYSTEM_CLOCK, Clock
from operators.frame import Frame
from operators.hud import ARENA_HUD_REGIONS
from operators.reading import Detection, Scene
from operators.truth import GroundTruth

__all__ = ["ARENA_HUD_REGIONS", "Arena", "ArenaControl", "ArenaSource", "Autopilot"]


ENEMY_RGB = (220, 30, 30)
_FIRE_PERIOD = 6
_HIT_DAMAGE = 34
_DEATH_FRAMES = 45
_ARENA_HALF = 20.0
_FLOOR_LIGHT = np.array([150, 130, 95], np.float32)
_FLOOR_DARK = np.array([105, 90, 65], np.float32)
_EYE = 1.6
_ENEMY_H = 1.8


@dataclass
class _Enemy:
    x: float
    z: float
    hp: int = 100
    vx: float = 0.0
    vz: float = 0.0
    move_left: int = 0


class Arena:
    """A seeded first-person arena that renders ``(H, W, 3)`` uint8 RGB frames.

    >>> arena = Arena(width=320, height=180, seed=1)
    >>> arena.step((1, 0, 0, 0))
    >>> arena.render().shape
    (180, 320, 3)
    >>> arena.truth().health
    100
    """

    def __init__(
        self,
        width: int = 640,
        height: int = 360,
        seed: int = 0,
        n_enemies: int = 3,
        enemy_fire_rate: float = 0.02,
        fov_deg: float = 90.0,
    ) -> None:
        if width < 160 or height < 90:
            msg = f"arena size must be at least 160x90; got {width}x{height}"
            raise ValueError(msg)
        self.width = width
        self.height = height
        self.n_enemies = n_enemies
        self.enemy_fire_rate = enemy_fire_rate
        self.f = (width / 2) / math.tan(math.radians(fov_deg) / 2)
        self._lat = ((np.arange(width, dtype=np.float32) - width / 2) / self.f)[None, :]
        self.reset(seed)

    # -- state ---------------------------------------------------------------
    def reset(self, seed: int | None = None) -> None:
        if seed is not None:
            self.seed = seed
        self.rng = np.random.default_rng(self.seed)
        tex_rng = np.random.default_rng(self.seed + 7919)
        self._wall = self._make_wall(tex_rng)
        self.x, self.z, self.yaw, self.pitch = 0.0, 0.0, 0.0, 0
        self.health, self.armor, self.ammo, self.reserve, self.money = 100, 0, 30, 90, 800
        self.dead_for = 0
        self.frame_no = 0
        self.kills = 0
        self.dealt = 0  # health taken from enemies, and by them from the player
        self.taken = 0
        self._fire_cool = 0
        self._prev_cmd = 0
        self.enemies = [self._spawn_enemy() for _ in range(self.n_enemies)]

    def _spawn_enemy(self) -> _Enemy:
        while True:
            x, z = self.rng.uniform(-_ARENA_HALF + 2, _ARENA_HALF - 2, size=2)
            if math.hypot(x - self.x, z - self.z) > 6:
                return _Enemy(float(x), float(z))

    def _make_wall(self, rng: np.random.Generator) -> np.ndarray:
        """A brick band 2H tall and 4W around (one full turn), blue-grey."""
        h, w = 2 * self.height, 4 * self.width
        base = np.array([70, 80, 105], np.int16)
        bricks = rng.integers(-18, 18, size=(h // 12 + 1, w // 24 + 2, 1)).astype(np.int16)
        tile = np.repeat(np.repeat(bricks, 12, axis=0), 24, axis=1)[:h]
        wall = base + tile[:, :w]
        wall[::12, :] -= 30  # mortar lines
        wall[:, ::24] -= 20
        return np.clip(wall, 0, 255).astype(np.uint8)

    @property
    def dead(self) -> bool:
        return self.dead_for > 0

    def step(self, action: Sequence[int] | None) -> None:
        """Advance one frame with ``action`` held (``None`` = all zeros)."""
        move, turn, pitch, cmd = (0, 0, 0, 0) if action is None else (int(a) for a in action)
        self.frame_no += 1
        self._move_enemies()
        if self.dead:
            self.dead_for -= 1
            if self.dead_for == 0:
                self.health, self.armor, self.ammo, self.reserve = 100, 0, 30, 90
                self.x, self.z = 0.0, 0.0
            self._prev_cmd = cmd
            return
        self.yaw += {0: 0.0, 1: -0.04, 2: 0.04, 3: -0.12, 4: 0.12}.get(turn, 0.0)
        self.pitch = pitch if 0 <= pitch <= 9 else 0
        speed = 0.06 if cmd in (6, 7) else 0.15
        fwd = {1: speed, 2: -speed}.get(move, 0.0)
        side = {3: -speed, 4: speed}.get(cmd, 0.0)
        s, c = math.sin(self.yaw), math.cos(self.yaw)
        self.x = float(np.clip(self.x + s * fwd + c * side, -_ARENA_HALF, _ARENA_HALF))
        self.z = float(np.clip(self.z + c * fwd - s * side, -_ARENA_HALF, _ARENA_HALF))
        self._fire_cool = max(0, self._fire_cool - 1)
        if cmd == 1 and (self._prev_cmd != 1 or self._fire_cool == 0):
            self._fire()
        elif cmd == 2 and self._prev_cmd != 2:
            take = min(30 - self.ammo, self.reserve)
            self.ammo, self.reserve = self.ammo + take, self.reserve - take
        elif cmd == 5 and self._prev_cmd != 5 and self.money >= 650 and self.armor < 100:
            self.money, self.armor = self.money - 650, 100
        self._prev_cmd = cmd
        self._enemies_shoot()

    def _move_enemies(self) -> None:
        for e in self.enemies:
            if e.move_left <= 0:
                # Walk for a while, then stand still for a while.
                if self.rng.random() < 0.5:
                    ang = self.rng.uniform(0, 2 * math.pi)
                    e.vx, e.vz = 0.05 * math.cos(ang), 0.05 * math.sin(ang)
                else:
                    e.vx = e.vz = 0.0
                e.move_left = int(self.rng.integers(20, 90))
            e.move_left -= 1
            e.x = float(np.clip(e.x + e.vx, -_ARENA_HALF, _ARENA_HALF))
            e.z = float(np.clip(e.z + e.vz, -_ARENA_HALF, _ARENA_HALF))

    def _camera(self, e: _Enemy) -> tuple[float, float]:
        dx, dz = e.x - self.x, e.z - self.z
        s, c = math.sin(self.yaw), math.cos(self.yaw)
        return dx * s + dz * c, dx * c - dz * s  # forward, right

    def _horizon(self) -> int:
        p = self.pitch
        off = 0 if p == 0 else (p if p <= 4 else -(p - 4))
        return int(self.height / 2 + off * self.height * 0.03)

    def _enemy_boxes(self) -> list[tuple[float, _Enemy, tuple[int, int, int, int]]]:
        """Visible enemies as (distance, enemy, pixel box), far to near."""
        hz, out = self._horizon(), []
        for e in self.enemies:
            fwd, right = self._camera(e)
            if fwd < 0.7:
                continue
            sx = self.width / 2 + right / fwd * self.f
            foot = hz + _EYE * self.f / fwd
            h = _ENEMY_H * self.f / fwd
            w = h * 0.4
            box = (int(sx - w / 2), int(foot - h), int(sx + w / 2), int(foot))
            x0, y0 = max(box[0], 0), max(box[1], 0)
            x1, y1 = min(box[2], self.width - 1), min(box[3], int(self.height * 0.86) - 1)
            if x1 - x0 >= 3 and y1 - y0 >= 6:
                out.append((fwd, e, (x0, y0, x1, y1)))
        out.sort(key=lambda t: -t[0])
        return out

    def _fire(self) -> None:
        if self.ammo <= 0:
            return
        self.ammo -= 1
        self._fire_cool = _FIRE_PERIOD
        cx, cy = self.width // 2, self.height // 2
        for _, e, (x0, y0, x1, y1) in reversed(self._enemy_boxes()):
            if x0 <= cx <= x1 and y0 <= cy <= y1:
                e.hp -= _HIT_DAMAGE
                self.dealt += _HIT_DAMAGE
                if e.hp <= 0:
                    self.kills += 1
                    self.money = min(self.money + 300, 16000)
                    self.enemies[self.enemies.index(e)] = self._spawn_enemy()
                return

    def _enemies_shoot(self) -> None:
        for fwd, _e, _ in self._enemy_boxes():
            if fwd < 12 and self.rng.random() < self.enemy_fire_rate:
                dmg = int(self.rng.integers(4, 13))
                if self.armor > 0:
                    absorbed = min(self.armor, dmg // 2)
                    self.armor -= absorbed
                    dmg -= absorbed
                self.taken += min(dmg, self.health)
                self.health = max(self.health - dmg, 0)
                if self.health == 0:
                    self.dead_for = _DEATH_FRAMES
                    return

    # -- rendering -----------------------------------------------------------
    def truth(self) -> GroundTruth:
        dets = tuple(
            Detection(x0 / self.width, y0 / self.height, x1 / self.width, y1 / self.height)
            for _, _, (x0, y0, x1, y1) in self._enemy_boxes()
        )
        return GroundTruth(
            health=self.health,
            armor=self.armor,
            ammo=self.ammo,
            ammo_reserve=self.reserve,
            money=self.money,
            scene=Scene.DEATH if self.dead else Scene.GAMEPLAY,
            enemies=() if self.dead else dets,
            score=self.score,
        )

    @property
    def score(self) -> float:
        """The arena's own running score, a scenario reward like ViZDoom's: +1 a kill,
        and the health dealt minus the health taken, per 100 (a hit is +0.34)."""
        return self.kills + (self.dealt - self.taken) / 100.0

    def render(self) -> np.ndarray:
        """Draw the current state: ``(H, W, 3)`` uint8 RGB."""
        H, W = self.height, self.width
        hz = self._horizon()
        img = np.empty((H, W, 3), np.uint8)
        # Wall band: scrolls sideways with yaw, up and down with pitch (one slice, or two
        # where the band wraps around).
        period = self._wall.shape[1]
        col0 = int(self.yaw / (2 * math.pi) * period) % period
        band = self._wall[H - hz : H]
        first = min(W, period - col0)
        img[:hz, :first] = band[:, col0 : col0 + first]
        if first < W:
            img[:hz, first:] = band[:, : W - first]
        # Floor: a perspective checkerboard that moves with position and yaw, shaded by
        # distance; each row's two colours are computed once, then picked per pixel.
        rows = np.arange(hz, H, dtype=np.float32)[:, None]
        dist = _EYE * self.f / (rows - hz + 1.0)
        s, c = math.sin(self.yaw), math.cos(self.yaw)
        lat = self._lat * dist
        wx = self.x + s * dist + c * lat
        wz = self.z + c * dist - s * lat
        checker = (np.floor(wx) + np.floor(wz)).astype(np.int32) & 1
        shade = np.clip(1.4 - dist / 25.0, 0.35, 1.0)  # (rows, 1)
        light = (_FLOOR_LIGHT * shade).astype(np.uint8)[:, None, :]  # (rows, 1, 3)
        dark = (_FLOOR_DARK * shade).astype(np.uint8)[:, None, :]
        np.copyto(img[hz:], dark)
        np.copyto(img[hz:], light, where=checker[..., None].astype(bool))
        if self.dead:
            img = (img * 0.25).astype(np.uint8)
            img[..., 0] = np.maximum(img[..., 0], 60)
            cv2.putText(
                img,
                "YOU DIED",
                (W // 2 - int(W * 0.16), H // 2),
                cv2.FONT_HERSHEY_SIMPLEX,
                H / 360 * 1.3,
                (150, 40, 40),
                3,
                cv2.LINE_AA,
            )
        else:
            for _, _, (x0, y0, x1, y1) in self._enemy_boxes():
                head = max((x1 - x0) // 2, 2)
                cv2.rectangle(img, (x0, y0 + head), (x1, y1), ENEMY_RGB, -1)
                cv2.circle(img, ((x0 + x1) // 2, y0 + head // 2 + 1), head // 2 + 1, ENEMY_RGB, -1)
            cx, cy, arm = W // 2, H // 2, max(H // 40, 4)
            cv2.line(img, (cx - arm, cy), (cx + arm, cy), (40, 255, 40), 1)
            cv2.line(img, (cx, cy - arm), (cx, cy + arm), (40, 255, 40), 1)
        self._draw_hud(img)
        return img

    def _draw_hud(self, img: np.ndarray) -> None:
        H, W = self.height, self.width
        img[int(H * 0.86) :] = (28, 28, 32)
        x0, y0, x1, y1 = ARENA_HUD_REGIONS["money"]
        img[int(y0 * H) : int(y1 * H), int(x0 * W) : int(x1 * W)] = (28, 28, 32)
        texts = {
            "health": f"HP {self.health}",
            "armor": f"AR {self.armor}",
            "ammo": f"{self.ammo}/{self.reserve}",
            "money": f"$ {self.money}",
        }
        scale, thick = H / 360 * 0.9, max(1, round(H / 360 * 2))
        for key, text in texts.items():
            x0, y0, x1, y1 = ARENA_HUD_REGIONS[key]
            (tw, th), _ = cv2.getTextSize(text, cv2.FONT_HERSHEY_SIMPLEX, scale, thick)
            px = (
                int(x0 * W + 0.03 * W)
                if key in ("health", "armor")
                else int(x1 * W - tw - 0.02 * W)
            )
            py = int((y0 + y1) / 2 * H + th / 2)
            cv2.putText(
                img,
                text,
                (px, py),
                cv2.FONT_HERSHEY_SIMPLEX,
                scale,
                (235, 235, 235),
                thick,
                cv2.LINE_AA,
            )


class Autopilot:
    """A seeded scripted player for runs with no agent: idles, turns, walks, aims and fires.

    Its idle stretches make duplicate frames, its fights change the HUD.
    """

    def __init__(self, seed: int = 0) -> None:
        self.rng = np.random.default_rng(seed + 104729)
        self.mode, self.left = "idle", 0

    def act(self, arena: Arena) -> tuple[int, int, int, int]:
        if self.left <= 0:
            self.mode = str(self.rng.choice(["idle", "turn", "walk", "hunt", "hunt"]))
            self.left = int(self.rng.integers(15, 60))
            self.turn = int(self.rng.choice([1, 2]))
        self.left -= 1
        if arena.ammo == 0 and arena.reserve > 0:
            return (0, 0, 0, 2)
        if self.mode == "idle" or arena.dead:
            return (0, 0, 0, 0)
        if self.mode == "turn":
            return (0, self.turn, 0, 0)
        if self.mode == "walk":
            return (1, 0, 0, 5 if arena.money >= 650 and arena.armor == 0 else 0)
        boxes = arena._enemy_boxes()
        if not boxes:
            return (0, self.turn + 2, 0, 0)
        _, _, (x0, _, x1, _) = boxes[-1]
        cx = (x0 + x1) / 2 - arena.width / 2
        if abs(cx) <= (x1 - x0) / 3:
            return (0, 0, 0, 1)
        return (0, 2 if cx > 0 else 1, 0, 0)


# -- the arena as a capture source ---------------------------------------------

ArenaControl = AgentControl
"""The arena's agent control (the same :class:`~operators.capture.base.AgentControl` every
game source takes)."""


class _ArenaStream(GameStream):
    src: ArenaSource

    def __init__(self, stream_id: str, src: ArenaSource, index: int) -> None:
        super().__init__(stream_id, src, index)
        self.arena = Arena(seed=self.seed, **src.arena_kwargs)
        self.autopilot = Autopilot(self.seed) if src.autopilot else None

    def next_frames(self) -> list[Frame]:
        asked = self.asked()
        if asked is None:
            return []
        action, reset, seed, ticket = asked
        if reset:
            self.arena.reset(seed)
            if seed is not None and self.autopilot is not None:
                self.autopilot = Autopilot(seed)
        elif self.lockstep:  # a frame per request, frame_skip ticks after it
            for _ in range(self.src.frame_skip):
                self.arena.step(action)
        elif self.control is None and self.autopilot is not None:
            self.arena.step(self.autopilot.act(self.arena))
        else:
            self.arena.step(action)
        image = self.arena.render()
        frame = Frame(self.stream_id, self.seq, self.clock.now(), image, self.arena.truth())
        return self.made(frame, ticket)

    def close(self) -> None:
        return None


class ArenaSource(GameSource):
    """The built-in arena simulator, one partition (and stream) per game instance.

    Emits :class:`Frame` items with ground truth. ``frames`` is the budget per
    stream (0 = until the run is stopped); ``fps`` 0 draws as fast as possible.
    ``controls`` maps stream ids to :class:`ArenaControl` for an agent to
    drive; streams without one are played by the seeded :class:`Autopilot`
    (or stand still when ``autopilot`` is false).

    ``lockstep`` (for training and evaluation): an agent's stream draws a frame only
    when its agent acts, ``frame_skip`` arena ticks after the action (the action held
    for all of them), instead of ``fps`` frames a second whatever the agent does.
    """

    def __init__(
        self,
        *,
        streams: int = 1,
        frames: int = 300,
        fps: float = 30.0,
        seed: int = 0,
        width: int = 640,
        height: int = 360,
        n_enemies: int = 3,
        enemy_fire_rate: float = 0.02,
        autopilot: bool = True,
        lockstep: bool = False,
        frame_skip: int = 1,
        controls: dict[str, AgentControl] | None = None,
        clock: Clock = SYSTEM_CLOCK,
    ) -> None:
        super().__init__(
            "arena",
            streams=streams,
            frames=frames,
            fps=fps,
            seed=seed,
            lockstep=lockstep,
            frame_skip=frame_skip,
            controls=controls,
            clock=clock,
        )
        self.arena_kwargs: dict[str, Any] = {
            "width": width,
            "height": height,
            "n_enemies": n_enemies,
            "enemy_fire_rate": enemy_fire_rate,
        }
        Arena(**self.arena_kwargs)  # validate sizes now, at build time
        self.autopilot = autopilot

    def stream(self, stream_id: str, index: int) -> _ArenaStream:
        return _ArenaStream(stream_id, self, index)
