"""Procedural action primitives of the synthetic NTU stand-in (see `synthetic.py`).

An action class adds joint-angle controls (`synthetic_skeleton.Controls`) to one person, or to two for
interactions, as smooth functions of the action phase u in [0, 1]; timing and amplitude come from a `Ctx`
drawn per performance, so one class covers a family of styles.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping

import numpy as np

from stars_jax.data.synthetic_skeleton import ANGLE_CONTROLS, DEG, Controls

FPS = 30.0
_FIDGET_PROB = 0.3  # probability of each of two possible incidental gestures in a performance


def _ramp(u: np.ndarray, a: float, b: float) -> np.ndarray:
  """Smoothstep from 0 at u <= a to 1 at u >= b."""
  x = np.clip((u - a) / (b - a), 0.0, 1.0)
  return x * x * (3 - 2 * x)


def _hold(u: np.ndarray, a: float, b: float, ramp: float) -> np.ndarray:
  """1 on [a + ramp, b - ramp], smooth ramps on both sides, 0 outside [a, b]."""
  return _ramp(u, a, a + ramp) * (1 - _ramp(u, b - ramp, b))


def _pulse(u: np.ndarray, a: float, b: float) -> np.ndarray:
  """Raised-cosine bump on [a, b], peak 1 at its centre."""
  return np.sin(np.pi * np.clip((u - a) / (b - a), 0.0, 1.0)) ** 2


def random_posture(rng: np.random.Generator) -> dict[str, float]:
  """A subject's habitual stance: constant offsets of a few controls (radians)."""
  return {
    "spine_pitch": rng.uniform(-3, 6) * DEG,
    "neck_pitch": rng.uniform(-5, 10) * DEG,
    "l_sh_abd": rng.uniform(4, 14) * DEG,
    "r_sh_abd": rng.uniform(4, 14) * DEG,
    "l_elbow": rng.uniform(5, 25) * DEG,
    "r_elbow": rng.uniform(5, 25) * DEG,
    "l_knee": rng.uniform(0, 8) * DEG,
    "r_knee": rng.uniform(0, 8) * DEG,
    "l_hip_abd": rng.uniform(0, 6) * DEG,
    "r_hip_abd": rng.uniform(0, 6) * DEG,
  }


def add_idle(c: Controls, posture: Mapping[str, float], t: np.ndarray, rng: np.random.Generator) -> None:
  """Adds the posture plus a slow random sway on every angle, so that no limb is perfectly still."""
  for name, value in posture.items():
    c.add(name, value)
  amp = rng.uniform(0.5, 2.5, len(ANGLE_CONTROLS)) * DEG
  freq = rng.uniform(0.1, 0.5, len(ANGLE_CONTROLS))
  phase = rng.uniform(0, 2 * np.pi, len(ANGLE_CONTROLS))
  sway = amp[:, None] * np.sin(2 * np.pi * freq[:, None] * t + phase[:, None])  # (K, T)
  for name, value in zip(ANGLE_CONTROLS, sway):
    c.add(name, value)
  c.add("yaw", rng.uniform(-20, 20) * DEG * (t - t[0]) / (t[-1] - t[0]))  # slowly turning
  for _ in range(rng.binomial(2, _FIDGET_PROB)):  # incidental gestures (scratch, shift weight) at random times
    side, start = rng.choice(["l_", "r_"]), rng.uniform(0, 0.7)
    bump = _pulse(t, *np.quantile(t, [start, start + rng.uniform(0.15, 0.3)]))  # (T,)
    if rng.random() < 0.7:
      c.add(side + "sh_flex", bump * rng.uniform(20, 70) * DEG)
      c.add(side + "elbow", bump * rng.uniform(30, 110) * DEG)
    else:
      c.add(side + "hip_flex", bump * rng.uniform(5, 20) * DEG)
      c.add(side + "knee", bump * rng.uniform(10, 35) * DEG)


@dataclasses.dataclass(frozen=True)
class Ctx:
  """Timing and style of one performance, shared by the persons of an action."""

  u: np.ndarray  # (T,) action phase: 0 before the action window, rising to 1 at its end, 1 after
  t: np.ndarray  # (T,) seconds since the window start, clipped to the window
  seconds: float  # window duration
  rate: float  # tempo factor of oscillations (> 1: faster)
  amp: float  # amplitude factor
  distance: float  # initial distance between two persons, metres
  rng: np.random.Generator

  def hz(self, base: float) -> float:
    return base * self.rate * self.rng.uniform(0.85, 1.15)

  def ang(self, lo: float, hi: float) -> float:
    """A random angle in [lo, hi] degrees scaled by the amplitude factor, in radians."""
    return self.amp * self.rng.uniform(lo, hi) * DEG

  def osc(self, base_hz: float) -> np.ndarray:
    """sin(2 pi f t + random phase) at a style-scaled frequency around base_hz."""
    return np.sin(2 * np.pi * self.hz(base_hz) * self.t + self.rng.uniform(0, 2 * np.pi))


def _gait(ctx: Ctx, c: Controls, env: np.ndarray, hip: float, knee: float, arm: float) -> None:
  """Alternating leg swing with knee lift and opposite arm swing, scaled by the envelope (T,)."""
  phase = 2 * np.pi * ctx.hz(0.9) * ctx.t
  for s, shift in (("l_", 0.0), ("r_", np.pi)):
    c.add(s + "hip_flex", env * hip * np.sin(phase + shift))
    c.add(s + "knee", env * knee * (0.5 + 0.5 * np.cos(phase + shift)) ** 2)
    c.add(s + "sh_flex", -env * arm * np.sin(phase + shift))


def _approach(ctx: Ctx, c: Controls, gap: float, until: float) -> float:
  """Walks forward during u in [0.05, until] to close half of (distance - gap); returns the distance walked."""
  walk = max(ctx.distance - gap, 0.0) / 2
  c.add("root_z", walk * _ramp(ctx.u, 0.05, until))
  _gait(ctx, c, _pulse(ctx.u, 0.03, until + 0.03), 20 * DEG, 35 * DEG, 12 * DEG)
  return walk


def wave(ctx: Ctx, a: Controls, b: Controls | None) -> None:
  e, core = _hold(ctx.u, 0, 1, 0.2), _hold(ctx.u, 0.15, 0.85, 0.15)
  if ctx.rng.random() < 0.6:  # overhead: forearm up, waving sideways
    raise_, mix = ctx.ang(80, 130), ctx.rng.uniform(0.0, 0.4)
    a.add("r_sh_abd", e * raise_ * (1 - mix))
    a.add("r_sh_flex", e * raise_ * mix)
    a.add("r_sh_twist", e * 80 * DEG)
    a.add("r_elbow", e * ctx.ang(40, 95) + core * ctx.ang(20, 35) * ctx.osc(2.2))
  else:  # in front of the chest, waving with the forearm
    a.add("r_sh_flex", e * ctx.ang(45, 80))
    a.add("r_elbow", e * ctx.ang(70, 100))
    a.add("r_sh_hadd", core * ctx.ang(15, 30) * ctx.osc(2.2))


def raise_arm(ctx: Ctx, a: Controls, b: Controls | None) -> None:
  e, raise_, mix = _hold(ctx.u, 0, 1, 0.35), ctx.ang(110, 170), ctx.rng.uniform(0.4, 1.0)
  a.add("r_sh_flex", e * raise_ * mix)
  a.add("r_sh_abd", e * raise_ * (1 - mix))
  a.add("r_sh_twist", e * 40 * DEG)
  a.add("r_elbow", e * ctx.ang(0, 40))


def raise_both_arms(ctx: Ctx, a: Controls, b: Controls | None) -> None:
  e, raise_, mix = _hold(ctx.u, 0, 1, 0.3), ctx.ang(140, 175), ctx.rng.uniform(0.0, 1.0)
  a.both("sh_flex", e * raise_ * mix)
  a.both("sh_abd", e * raise_ * (1 - mix))
  a.both("elbow", e * ctx.ang(0, 15))


def reach_forward(ctx: Ctx, a: Controls, b: Controls | None) -> None:
  e = _hold(ctx.u, 0, 1, 0.35)
  a.add("r_sh_flex", e * ctx.ang(70, 95))
  a.add("r_wrist", -e * 20 * DEG)
  a.add("spine_pitch", e * ctx.ang(5, 15))


def punch(ctx: Ctx, a: Controls, b: Controls | None) -> None:
  guard = _hold(ctx.u, 0, 1, 0.15)
  a.both("sh_flex", guard * 30 * DEG)
  a.both("elbow", guard * 110 * DEG)
  a.both("sh_hadd", guard * 15 * DEG)
  n = int(ctx.rng.integers(2, 4))
  hits = sum(_pulse(ctx.u, k - 0.07, k + 0.07) for k in np.linspace(0.3, 0.7, n))  # (T,)
  a.add("r_sh_flex", hits * ctx.ang(50, 65))
  a.add("r_elbow", -hits * ctx.ang(95, 110))
  a.add("spine_yaw", hits * 12 * DEG)


def clap(ctx: Ctx, a: Controls, b: Controls | None) -> None:
  e, core = _hold(ctx.u, 0, 1, 0.2), _hold(ctx.u, 0.15, 0.85, 0.1)
  a.both("sh_flex", e * ctx.ang(40, 60))
  a.both("elbow", e * ctx.ang(50, 80))
  a.both("sh_twist", -e * 40 * DEG)
  a.both("sh_hadd", -core * ctx.ang(15, 30) * (0.5 + 0.5 * ctx.osc(2.5)))  # hands meet at 0


def kick(ctx: Ctx, a: Controls, b: Controls | None) -> None:
  swing = _pulse(ctx.u, 0.2, 0.8)
  a.add("root_z", ctx.rng.uniform(0.0, 0.25) * _ramp(ctx.u, 0.05, 0.3))  # sometimes a step into the kick
  a.add("l_knee", _pulse(ctx.u, 0.02, 0.32) * ctx.ang(0, 35))
  a.add("r_hip_flex", swing * ctx.ang(45, 85))
  a.add("r_knee", _pulse(ctx.u, 0.15, 0.55) * ctx.ang(40, 80))  # chambered, extended at the top
  a.add("r_ankle", -swing * 20 * DEG)
  a.add("spine_pitch", -swing * 10 * DEG)
  a.both("sh_abd", swing * ctx.ang(0, 25))


def step_forward(ctx: Ctx, a: Controls, b: Controls | None) -> None:
  step = ctx.amp * ctx.rng.uniform(0.25, 0.45)
  a.add("root_z", step * (_ramp(ctx.u, 0.1, 0.45) - _ramp(ctx.u, 0.55, 0.9)))
  for s, lead, window in (
    ("r_", 1.0, (0.08, 0.35)),
    ("l_", 0.6, (0.28, 0.5)),
    ("r_", -0.5, (0.55, 0.77)),
    ("l_", -0.5, (0.7, 0.92)),
  ):
    p = _pulse(ctx.u, *window)
    a.add(s + "hip_flex", lead * p * ctx.ang(20, 40))
    a.add(s + "knee", p * ctx.ang(30, 50))


def hop(ctx: Ctx, a: Controls, b: Controls | None) -> None:
  e, core = _hold(ctx.u, 0, 1, 0.15), _hold(ctx.u, 0.15, 0.85, 0.05)
  a.add("r_knee", e * ctx.ang(60, 90))
  a.add("r_hip_flex", e * ctx.ang(10, 30))
  a.both("sh_abd", e * 25 * DEG)
  n = int(ctx.rng.integers(2, 5))
  bounce = np.abs(np.sin(np.pi * n * np.clip((ctx.u - 0.15) / 0.7, 0, 1)))  # (T,)
  a.add("root_y", core * bounce * ctx.amp * ctx.rng.uniform(0.06, 0.12))
  a.add("l_knee", core * (1 - bounce) * 25 * DEG)


def bow(ctx: Ctx, a: Controls, b: Controls | None) -> None:
  e = _hold(ctx.u, 0, 1, 0.35)
  pitch = e * ctx.ang(35, 60)
  a.add("spine_pitch", pitch)
  a.add("neck_pitch", e * ctx.ang(5, 20))
  a.both("sh_flex", 0.8 * pitch)  # arms keep hanging down


def side_bend(ctx: Ctx, a: Controls, b: Controls | None) -> None:
  roll = _hold(ctx.u, 0, 1, 0.1) * ctx.ang(20, 35) * np.sin(2 * np.pi * ctx.rng.integers(1, 3) * ctx.u)
  a.add("spine_roll", roll)
  a.add("l_sh_abd", 1.5 * np.maximum(roll, 0))  # the arm on the stretched side rises
  a.add("r_sh_abd", 1.5 * np.maximum(-roll, 0))


def twist(ctx: Ctx, a: Controls, b: Controls | None) -> None:
  e = _hold(ctx.u, 0, 1, 0.1)
  a.add("spine_yaw", e * ctx.ang(25, 45) * np.sin(2 * np.pi * ctx.rng.integers(1, 4) * ctx.u))
  a.both("sh_abd", e * 25 * DEG)
  a.both("sh_flex", e * 30 * DEG)
  a.both("elbow", e * 80 * DEG)


def jump(ctx: Ctx, a: Controls, b: Controls | None) -> None:
  n = int(ctx.rng.integers(1, 3))
  v = np.clip(ctx.u * n - np.floor(np.minimum(ctx.u * n, n - 1e-9)), 0, 1)  # (T,) phase within each jump
  v = np.where(ctx.u >= 1, 1.0, v)
  crouch = _pulse(v, 0.0, 0.45) + 0.6 * _pulse(v, 0.7, 1.0)
  air = np.clip((v - 0.45) / 0.3, 0, 1)
  flight = 4 * air * (1 - air)  # (T,) ballistic arc
  hip = ctx.ang(40, 60)
  a.both("hip_flex", crouch * hip + flight * 10 * DEG)
  a.both("knee", crouch * 2 * hip + flight * 20 * DEG)
  a.add("spine_pitch", crouch * 20 * DEG)
  a.add("root_y", flight * ctx.amp * ctx.rng.uniform(0.15, 0.3))
  a.both("sh_flex", _pulse(v, 0.35, 0.85) * ctx.ang(100, 150) - _pulse(v, 0.0, 0.45) * 30 * DEG)


def _sit(ctx: Ctx, a: Controls, seated: np.ndarray, lean: float) -> None:
  """Sitting posture blended in by `seated` (T,), with a forward lean while the weight shifts."""
  shifting = 4 * seated * (1 - seated)
  a.both("hip_flex", seated * ctx.ang(80, 95))
  a.both("knee", seated * ctx.ang(85, 100))
  a.add("spine_pitch", shifting * lean + seated * 5 * DEG)
  a.both("sh_flex", shifting * ctx.ang(10, 35))


def sit_down(ctx: Ctx, a: Controls, b: Controls | None) -> None:
  _sit(ctx, a, _ramp(ctx.u, 0.15, 0.8), ctx.ang(25, 40))


def stand_up(ctx: Ctx, a: Controls, b: Controls | None) -> None:
  _sit(ctx, a, 1 - _ramp(ctx.u, 0.2, 0.85), ctx.ang(30, 45))


def squat(ctx: Ctx, a: Controls, b: Controls | None) -> None:
  n = int(ctx.rng.integers(1, 3))
  down = sum(_pulse(ctx.u, k / n + 0.05, (k + 1) / n - 0.05) for k in range(n))  # (T,)
  a.both("hip_flex", down * ctx.ang(60, 80))
  a.both("knee", down * ctx.ang(100, 125))
  a.add("spine_pitch", down * 25 * DEG)
  a.both("sh_flex", down * ctx.ang(60, 90))


def walk_in_place(ctx: Ctx, a: Controls, b: Controls | None) -> None:
  e, phase = _hold(ctx.u, 0, 1, 0.1), 2 * np.pi * ctx.hz(0.9) * ctx.t
  hip, arm = ctx.ang(30, 50), ctx.ang(15, 30)
  for s, shift in (("l_", 0.0), ("r_", np.pi)):
    lift = e * np.maximum(np.sin(phase + shift), 0) ** 2  # (T,) marching: knees up, never behind
    a.add(s + "hip_flex", lift * hip)
    a.add(s + "knee", lift * 1.6 * hip)
    a.add(s + "sh_flex", -e * arm * np.sin(phase + shift))


def walk_across(ctx: Ctx, a: Controls, b: Controls | None) -> None:
  heading = (90 * ctx.rng.choice([-1, 1]) + ctx.rng.uniform(-15, 15)) * DEG
  a.add("yaw", heading)
  walked = ctx.amp * ctx.rng.uniform(1.5, 2.5) * _ramp(ctx.u, 0.05, 0.95)  # (T,) metres
  a.add("root_x", np.sin(heading) * walked)
  a.add("root_z", np.cos(heading) * walked)
  _gait(ctx, a, _hold(ctx.u, 0.02, 0.98, 0.1), ctx.ang(20, 30), ctx.ang(35, 50), ctx.ang(10, 25))


def walk_towards(ctx: Ctx, a: Controls, b: Controls) -> None:
  for c in (a, b):
    _approach(ctx, c, ctx.rng.uniform(0.6, 0.9), 0.85)


def handshake(ctx: Ctx, a: Controls, b: Controls) -> None:
  gap = ctx.rng.uniform(0.7, 0.85)
  shake = _hold(ctx.u, 0.4, 0.75, 0.05) * ctx.ang(8, 14) * ctx.osc(2.5)  # (T,) one motion, two hands
  for c in (a, b):
    walk = _approach(ctx, c, gap, 0.35)
    c.add("root_z", -0.5 * walk * _ramp(ctx.u, 0.85, 1.0))
    arm = _hold(ctx.u, 0.25, 0.9, 0.12)
    c.add("r_sh_flex", arm * ctx.ang(40, 55))
    c.add("r_sh_hadd", arm * ctx.ang(15, 25))  # hands meet between the two
    c.add("r_elbow", arm * ctx.ang(35, 50) + shake)


def push(ctx: Ctx, a: Controls, b: Controls) -> None:
  a.add("root_z", ctx.rng.uniform(0.1, 0.25) * _ramp(ctx.u, 0.1, 0.4))
  a.both("sh_flex", _hold(ctx.u, 0.15, 0.85, 0.15) * ctx.ang(70, 90))
  a.both("elbow", ctx.ang(80, 110) * (_ramp(ctx.u, 0.15, 0.35) - _ramp(ctx.u, 0.42, 0.52)))
  a.add("spine_pitch", _pulse(ctx.u, 0.35, 0.75) * 15 * DEG)
  b.add("root_z", -ctx.amp * ctx.rng.uniform(0.3, 0.6) * _ramp(ctx.u, 0.47, 0.75))
  b.add("spine_pitch", -_pulse(ctx.u, 0.45, 0.8) * ctx.ang(10, 20))
  b.both("sh_abd", _pulse(ctx.u, 0.45, 0.85) * ctx.ang(20, 40))
  _gait(ctx, b, _pulse(ctx.u, 0.47, 0.8), 15 * DEG, 30 * DEG, 0.0)


def hug(ctx: Ctx, a: Controls, b: Controls) -> None:
  gap = ctx.rng.uniform(0.35, 0.45)
  sway = _hold(ctx.u, 0.35, 0.8, 0.1) * 5 * DEG * ctx.osc(0.5)  # (T,) swaying together
  for c, height in ((a, 15 * DEG), (b, 0.0)):
    walk = _approach(ctx, c, gap, 0.35)
    c.add("root_z", -0.5 * walk * _ramp(ctx.u, 0.8, 1.0))
    arms = _hold(ctx.u, 0.25, 0.9, 0.12)
    c.both("sh_flex", arms * ctx.ang(70, 85))
    c.both("sh_abd", arms * height)
    c.both("sh_hadd", arms * ctx.ang(25, 40))
    c.both("elbow", arms * ctx.ang(70, 90))
    c.both("sh_twist", -arms * 20 * DEG)
    c.add("spine_pitch", arms * 10 * DEG)
    c.add("spine_roll", sway)


@dataclasses.dataclass(frozen=True)
class Action:
  """One action class: base duration and the function adding its controls to the performers."""

  name: str
  seconds: float  # base duration before subject/sample tempo
  animate: Callable[[Ctx, Controls, Controls | None], None]
  distance: tuple[float, float] | None = None  # initial distance range of the second person; None = alone

  @property
  def two_person(self) -> bool:
    return self.distance is not None


# Fixed order mixing categories; the first num_classes are used (>= 2 interactions among the first 8).
ACTIONS = (
  Action("wave", 3.0, wave),
  Action("kick", 2.0, kick),
  Action("bow", 3.0, bow),
  Action("handshake", 4.5, handshake, (1.2, 1.6)),
  Action("raise right arm", 3.0, raise_arm),
  Action("jump", 2.5, jump),
  Action("walk in place", 4.0, walk_in_place),
  Action("push", 3.0, push, (0.7, 0.9)),
  Action("step forward", 3.5, step_forward),
  Action("sit down", 3.0, sit_down),
  Action("punch", 2.5, punch),
  Action("hug", 5.0, hug, (1.1, 1.5)),
  Action("clap", 3.0, clap),
  Action("side bend", 4.0, side_bend),
  Action("walk across", 5.0, walk_across),
  Action("stand up", 3.0, stand_up),
  Action("walk towards each other", 5.5, walk_towards, (2.0, 2.6)),
  Action("raise both arms", 3.0, raise_both_arms),
  Action("twist", 4.0, twist),
  Action("squat", 4.0, squat),
  Action("reach forward", 3.0, reach_forward),
  Action("hop on one leg", 3.0, hop),
)
