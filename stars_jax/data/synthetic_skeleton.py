"""Kinematic skeleton of the synthetic NTU stand-in (see `synthetic.py`): a 25-joint Kinect-v2 tree (SPEC §1.1).

A person is posed by joint-angle *controls* (radians; one (T,) trajectory each, additive) through forward
kinematics. Body frame: x = the person's left, y = up, z = forward; metres; the floor is y = 0.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

NUM_JOINTS = 25
DEG = np.pi / 180

# 0-based Kinect-v2 joint ids (SPEC §1.1 numbers them from 1).
SPINE_BASE, SPINE_MID, NECK, HEAD = 0, 1, 2, 3
L_SHOULDER, L_ELBOW, L_WRIST, L_HAND = 4, 5, 6, 7
R_SHOULDER, R_ELBOW, R_WRIST, R_HAND = 8, 9, 10, 11
L_HIP, L_KNEE, L_ANKLE, L_FOOT = 12, 13, 14, 15
R_HIP, R_KNEE, R_ANKLE, R_FOOT = 16, 17, 18, 19
SPINE_SHOULDER, L_HAND_TIP, L_THUMB, R_HAND_TIP, R_THUMB = 20, 21, 22, 23, 24

# SPEC §1.1 bone pairs (child, parent), 0-based, without the (21, 21) self-loop. All are rigid here.
BONES = (
  (0, 1),
  (1, 20),
  (2, 20),
  (3, 2),
  (4, 20),
  (5, 4),
  (6, 5),
  (7, 6),
  (8, 20),
  (9, 8),
  (10, 9),
  (11, 10),
  (12, 0),
  (13, 12),
  (14, 13),
  (15, 14),
  (16, 0),
  (17, 16),
  (18, 17),
  (19, 18),
  (21, 22),
  (22, 7),
  (23, 24),
  (24, 11),
)

# Kinematic tree in topological order: (joint, parent, rest offset at scale 1, bone-length group).
# Hand tip and thumb hang off the hand (the SPEC's tip->thumb pair stays rigid all the same).
_AXIAL = (
  (SPINE_MID, SPINE_BASE, (0.0, 0.27, 0.0), "spine"),
  (SPINE_SHOULDER, SPINE_MID, (0.0, 0.22, -0.01), "spine"),
  (NECK, SPINE_SHOULDER, (0.0, 0.07, 0.0), "neck"),
  (HEAD, NECK, (0.0, 0.13, 0.02), "neck"),
)
_LEFT = (
  (L_SHOULDER, SPINE_SHOULDER, (0.17, -0.03, -0.01), "shoulders"),
  (L_ELBOW, L_SHOULDER, (0.03, -0.27, 0.0), "upper_arm"),
  (L_WRIST, L_ELBOW, (0.0, -0.25, 0.01), "forearm"),
  (L_HAND, L_WRIST, (0.0, -0.07, 0.0), "hand"),
  (L_HAND_TIP, L_HAND, (0.0, -0.08, 0.01), "hand"),
  (L_THUMB, L_HAND, (-0.02, -0.03, 0.04), "hand"),
  (L_HIP, SPINE_BASE, (0.08, -0.06, 0.0), "hips"),
  (L_KNEE, L_HIP, (0.0, -0.41, 0.01), "thigh"),
  (L_ANKLE, L_KNEE, (0.0, -0.40, -0.02), "shin"),
  (L_FOOT, L_ANKLE, (0.0, -0.05, 0.11), "foot"),
)
_MIRROR = {
  SPINE_SHOULDER: SPINE_SHOULDER,
  SPINE_BASE: SPINE_BASE,
  L_SHOULDER: R_SHOULDER,
  L_ELBOW: R_ELBOW,
  L_WRIST: R_WRIST,
  L_HAND: R_HAND,
  L_HAND_TIP: R_HAND_TIP,
  L_THUMB: R_THUMB,
  L_HIP: R_HIP,
  L_KNEE: R_KNEE,
  L_ANKLE: R_ANKLE,
  L_FOOT: R_FOOT,
}
_TREE = _AXIAL + _LEFT + tuple((_MIRROR[j], _MIRROR[p], (-o[0], o[1], o[2]), g) for j, p, o, g in _LEFT)
BONE_GROUPS = tuple(sorted({g for *_, g in _TREE}))
_ANKLE_HEIGHT = 0.08  # ankle joint above the floor, metres

_SIDE_CONTROLS = ("sh_flex", "sh_abd", "sh_hadd", "sh_twist", "elbow", "wrist", "hip_flex", "hip_abd", "knee", "ankle")
_AXIAL_CONTROLS = ("yaw", "spine_pitch", "spine_roll", "spine_yaw", "neck_pitch")
_ROOT_CONTROLS = ("root_x", "root_y", "root_z")
_MIRROR_NEGATED = ("root_x", "yaw", "spine_roll", "spine_yaw")
ANGLE_CONTROLS = _AXIAL_CONTROLS + tuple(s + n for s in ("l_", "r_") for n in _SIDE_CONTROLS)
CONTROLS = _ROOT_CONTROLS + ANGLE_CONTROLS


class Controls:
  """Additive control trajectories of one person over T frames; unset controls are zero."""

  def __init__(self, num_frames: int):
    self.num_frames = num_frames
    self._values: dict[str, np.ndarray] = {}

  def __getitem__(self, name: str) -> np.ndarray:
    return self._values.get(name, np.zeros(self.num_frames))

  def add(self, name: str, value: np.ndarray | float) -> None:
    if name not in CONTROLS:
      raise KeyError(f"unknown control {name!r}")
    self._values[name] = self[name] + value

  def mirrored(self) -> Controls:
    """The left-right mirror image: sides swapped, sideways translation and rotations negated."""
    out = Controls(self.num_frames)
    for name, value in self._values.items():
      if name[:2] in ("l_", "r_"):
        out.add({"l_": "r_", "r_": "l_"}[name[:2]] + name[2:], value)
      else:
        out.add(name, -value if name in _MIRROR_NEGATED else value)
    return out

  def both(self, name: str, value: np.ndarray | float) -> None:
    """Adds the same value to the left and right control `name` (e.g. 'sh_flex')."""
    self.add("l_" + name, value)
    self.add("r_" + name, value)


def rest_offsets(scales: Mapping[str, float]) -> np.ndarray:
  """Rest offsets (25, 3) of each joint from its parent, every bone group scaled by `scales[group]`."""
  offsets = np.zeros((NUM_JOINTS, 3))
  for joint, _, offset, group in _TREE:
    offsets[joint] = np.asarray(offset) * scales[group]
  return offsets


def _rot(axis: int, angle: np.ndarray) -> np.ndarray:
  """Right-handed rotations (..., 3, 3) about body axis `axis` (0 = x, 1 = y, 2 = z) by `angle` (...)."""
  c, s = np.cos(angle), np.sin(angle)
  i, j = ((1, 2), (2, 0), (0, 1))[axis]
  r = np.zeros(np.shape(angle) + (3, 3))
  r[..., axis, axis] = 1.0
  r[..., i, i] = r[..., j, j] = c
  r[..., i, j], r[..., j, i] = -s, s
  return r


def _local_rotations(c: Controls) -> dict[int, np.ndarray]:
  """Rotation (T, 3, 3) of the bone ending at each driven joint, relative to its parent bone."""
  rots = {
    SPINE_MID: _rot(1, 0.5 * c["spine_yaw"]) @ _rot(2, 0.6 * c["spine_roll"]) @ _rot(0, 0.6 * c["spine_pitch"]),
    SPINE_SHOULDER: _rot(1, 0.5 * c["spine_yaw"]) @ _rot(2, 0.4 * c["spine_roll"]) @ _rot(0, 0.4 * c["spine_pitch"]),
    HEAD: _rot(0, c["neck_pitch"]),
  }
  for s, sign, (elbow, wrist, hand, knee, ankle, foot) in (
    ("l_", 1.0, (L_ELBOW, L_WRIST, L_HAND, L_KNEE, L_ANKLE, L_FOOT)),
    ("r_", -1.0, (R_ELBOW, R_WRIST, R_HAND, R_KNEE, R_ANKLE, R_FOOT)),
  ):
    # Upper arm: twist about its own axis, flex forward, abduct sideways, then swing horizontally inward.
    rots[elbow] = (
      _rot(1, -sign * c[s + "sh_hadd"])
      @ _rot(2, sign * c[s + "sh_abd"])
      @ _rot(0, -c[s + "sh_flex"])
      @ _rot(1, sign * c[s + "sh_twist"])
    )
    rots[wrist] = _rot(0, -c[s + "elbow"])
    rots[hand] = _rot(0, -c[s + "wrist"])
    rots[knee] = _rot(2, sign * c[s + "hip_abd"]) @ _rot(0, -c[s + "hip_flex"])
    rots[ankle] = _rot(0, c[s + "knee"])
    rots[foot] = _rot(0, -c[s + "ankle"])
  return rots


def _support(c: Controls, offsets: np.ndarray) -> np.ndarray:
  """Pelvis offset (T, 3) that keeps the supporting (longer vertical) leg's ankle on the floor below the hip."""
  thigh, shin = np.linalg.norm(offsets[L_KNEE]), np.linalg.norm(offsets[L_ANKLE])
  heights, shifts = [], []
  for s in ("l_", "r_"):
    hip, knee = c[s + "hip_flex"], c[s + "knee"]
    heights.append((thigh * np.cos(hip) + shin * np.cos(knee - hip)) * np.cos(c[s + "hip_abd"]))
    shifts.append(thigh * np.sin(hip) - shin * np.sin(knee - hip))  # ankle ahead of the hip
  w = 1.0 / (1.0 + np.exp(-(heights[0] - heights[1]) / 0.02))  # ~1 where the left leg supports
  height = w * heights[0] + (1 - w) * heights[1] - offsets[L_HIP, 1] + _ANKLE_HEIGHT
  shift = w * shifts[0] + (1 - w) * shifts[1]
  return np.stack([np.zeros_like(height), height, -shift], axis=-1)  # (T, 3)


def forward_kinematics(c: Controls, offsets: np.ndarray) -> np.ndarray:
  """Joint positions (T, 25, 3) in the body frame (floor at y = 0) from controls and rest offsets (25, 3)."""
  t = c.num_frames
  local = _local_rotations(c)
  glob = np.empty((t, NUM_JOINTS, 3, 3))  # (T, V, 3, 3) orientation of the bone ending at each joint
  pos = np.empty((t, NUM_JOINTS, 3))  # (T, V, 3)
  glob[:, SPINE_BASE] = _rot(1, c["yaw"])
  root = np.stack([c["root_x"], c["root_y"], c["root_z"]], axis=-1)  # (T, 3)
  pos[:, SPINE_BASE] = root + np.einsum("tij,tj->ti", glob[:, SPINE_BASE], _support(c, offsets))
  for joint, parent, _, _ in _TREE:
    glob[:, joint] = glob[:, parent] @ local[joint] if joint in local else glob[:, parent]
    pos[:, joint] = pos[:, parent] + glob[:, joint] @ offsets[joint]
  return pos
