"""Embedded synthetic skeleton dataset written in the official NTU npz layout (SPEC §1.4).

What it is: procedurally animated 25-joint Kinect-v2 skeletons (SPEC §1.1) performing `num_classes` actions
(arm, leg, torso, whole-body, locomotion and two-person interactions; `synthetic_motions.ACTIONS`), recorded
by `num_cameras` cameras at yaw -45..+45 degrees, with per-subject bone lengths, posture and movement style,
per-sample speed and amplitude, ~1 cm sensor noise and occasional tracking glitches. Samples are centred like
NTU (actor 1's spine-middle at its first frame is the origin), zero-padded to `max_frames`, single-person
actions have an all-zero second person (NTU-60 convention), and the XSub / XView files hold the same samples
split by subject / by camera. Every camera records the same performance, as in NTU.

What it is not: a benchmark. It is a stand-in for NTU so the whole pipeline (reader, feeders, pretraining,
probes) runs on a laptop in minutes; accuracies on it say nothing about accuracies on NTU.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import pathlib
import time
from collections.abc import Callable, Iterator
from typing import BinaryIO

import numpy as np

from stars_jax import io
from stars_jax.data import synthetic_motions as motions
from stars_jax.data import synthetic_skeleton as skeleton

_FORMAT_VERSION = 3  # bump when the generator changes, so that cached files are regenerated
_SIDECAR = "synthetic_spec.json"
_FILES = {"xsub": "Synthetic_XSub.npz", "xview": "Synthetic_XView.npz"}
_NUM_PERSONS = 2
_MIN_FRAMES = 40
_CAMERA_YAW_DEG = 45.0  # cameras spread over [-45, +45] degrees, like NTU's three
_NOISE_M = 0.004  # sensor noise std, metres (temporally correlated jitter, like Kinect's)
_HAND_NOISE_M = 0.008  # hand tips and thumbs are tracked worse
_WHITE_NOISE_M = 0.001  # per-frame white noise on top of the jitter
_JITTER_FRAMES = 9  # moving-average width of the jitter (~0.3 s at 30 fps)
_GLITCH_PROB = 0.15  # probability that a recording has tracking glitches
_FACING_DEG = 40.0  # the performer's facing varies by up to this much around the middle camera
_LEFT_HANDED_PROB = 0.25  # left-handed subjects mirror one-person actions ...
_OTHER_HAND_PROB = 0.15  # ... and anyone uses the other side now and then
# NTU-120 XSub training subjects (SPEC §1.4; the first 20 are NTU-60's): 6 of subjects 1..10.
_NTU_TRAIN_SUBJECTS = (
  1,
  2,
  4,
  5,
  8,
  9,
  13,
  14,
  15,
  16,
  17,
  18,
  19,
  25,
  27,
  28,
  31,
  34,
  35,
  38,
  45,
  46,
  47,
  49,
  50,
  52,
  53,
  54,
  55,
  56,
  57,
  58,
  59,
  70,
  74,
  78,
  80,
  81,
  82,
  83,
  84,
  85,
  86,
  89,
  91,
  92,
  93,
  94,
  95,
  97,
  98,
  100,
  103,
)
# Independent random streams, each seeded by (seed, stream, ids...) so samples do not depend on the order.
_SUBJECT_STREAM, _PARTNER_STREAM, _CAMERA_STREAM, _PERFORMANCE_STREAM, _SENSOR_STREAM = range(5)


@dataclasses.dataclass(frozen=True)
class SyntheticSpec:
  """What to generate. Samples are identified like NTU files: camera, subject, repetition, action."""

  num_classes: int = 12
  actions: tuple[str, ...] = ()  # names from synthetic_motions.ACTIONS in label order (the first num_classes are
  # generated); () = ACTIONS' own order
  num_subjects: int = 10  # subjects 1..num_subjects
  num_cameras: int = 3
  num_repetitions: int = 2
  train_subjects: tuple[int, ...] | None = None  # XSub; default: NTU's training ids among 1..num_subjects
  train_cameras: tuple[int, ...] = (2, 3)  # XView; the other cameras are the test split (NTU convention)
  max_frames: int = 300
  seed: int = 0

  def xsub_subjects(self) -> tuple[tuple[int, ...], tuple[int, ...]]:
    """(train, test) subject ids."""
    subjects = range(1, self.num_subjects + 1)
    train = self.train_subjects if self.train_subjects is not None else _NTU_TRAIN_SUBJECTS
    return tuple(s for s in train if s in subjects), tuple(s for s in subjects if s not in train)

  def action_ids(self) -> tuple[int, ...]:
    """Index into `synthetic_motions.ACTIONS` of each label. A performance is seeded by this index, so an
    action's samples are the same whichever other actions are generated with it."""
    if not self.actions:
      return tuple(range(self.num_classes))
    known = {a.name: i for i, a in enumerate(motions.ACTIONS)}
    unknown = [name for name in self.actions if name not in known]
    if unknown:
      raise ValueError(f"synthetic actions {unknown} unknown; the generator knows {sorted(known)}")
    return tuple(known[name] for name in self.actions[: self.num_classes])

  def xview_cameras(self) -> tuple[tuple[int, ...], tuple[int, ...]]:
    """(train, test) camera ids."""
    cameras = range(1, self.num_cameras + 1)
    return (
      tuple(c for c in self.train_cameras if c in cameras),
      tuple(c for c in cameras if c not in self.train_cameras),
    )

  def validate(self, splits: bool = True) -> None:
    """Raises ValueError for settings the generator (and, with `splits`, the split writer) cannot honour."""
    if not 2 <= self.num_classes <= len(motions.ACTIONS):
      raise ValueError(f"num_classes={self.num_classes}; the generator knows 2..{len(motions.ACTIONS)}")
    if self.actions and (len(self.actions) < self.num_classes or len(set(self.actions)) != len(self.actions)):
      raise ValueError(f"actions={self.actions}: give at least num_classes={self.num_classes} distinct names")
    self.action_ids()
    if self.max_frames < _MIN_FRAMES:
      raise ValueError(f"max_frames={self.max_frames} < {_MIN_FRAMES}")
    if min(self.num_repetitions, self.num_subjects, self.num_cameras) < 1:
      raise ValueError("num_subjects, num_cameras and num_repetitions must be >= 1")
    for name, (train, test) in (("subjects", self.xsub_subjects()), ("cameras", self.xview_cameras())):
      if splits and (not train or not test):
        raise ValueError(f"{self}: the {name} split has an empty side (train={train}, test={test})")


@dataclasses.dataclass(frozen=True)
class _Subject:
  offsets: np.ndarray  # (25, 3) rest offsets with this subject's bone lengths
  posture: dict[str, float]
  amp: float  # movement amplitude style
  tempo: float  # duration style (> 1: slower)
  left_handed: bool


def _rng(seed: int, stream: int, *ids: int) -> np.random.Generator:
  return np.random.default_rng([seed, stream, *ids])


def _subject(rng: np.random.Generator) -> _Subject:
  """Body size (overall +-10 %, each bone group +-5 %), stance and movement style of one person."""
  size = rng.uniform(0.9, 1.1)
  scales = {g: size * rng.uniform(0.95, 1.05) for g in skeleton.BONE_GROUPS}
  return _Subject(
    skeleton.rest_offsets(scales),
    motions.random_posture(rng),
    amp=rng.uniform(0.8, 1.2),
    tempo=rng.uniform(0.8, 1.25),
    left_handed=bool(rng.random() < _LEFT_HANDED_PROB),
  )


def _rot_y(angle: float) -> np.ndarray:
  c, s = np.cos(angle), np.sin(angle)
  return np.array([[c, 0.0, s], [0.0, 1.0, 0.0], [-s, 0.0, c]])


def _rot_x(angle: float) -> np.ndarray:
  c, s = np.cos(angle), np.sin(angle)
  return np.array([[1.0, 0.0, 0.0], [0.0, c, -s], [0.0, s, c]])


def _perform(spec: SyntheticSpec, subject: _Subject, subject_id: int, rep: int, label: int) -> np.ndarray:
  """One performance of motions.ACTIONS[label] in the scene frame: (L, M, 25, 3) joints; an absent second person
  is NaN."""
  action = motions.ACTIONS[label]
  rng = _rng(spec.seed, _PERFORMANCE_STREAM, subject_id, rep, label)
  speed = rng.uniform(0.75, 1.3)
  length = int(np.clip(round(action.seconds * subject.tempo * speed * motions.FPS), _MIN_FRAMES, spec.max_frames))
  lead, tail = rng.uniform(0.03, 0.25, 2) * length
  frames = np.arange(length, dtype=np.float64)
  u = np.clip((frames - lead) / (length - lead - tail), 0.0, 1.0)  # (L,)
  u = u - rng.uniform(-0.6, 0.6) * np.sin(2 * np.pi * u) / (2 * np.pi)  # monotone time warp, fixed ends
  seconds = (length - lead - tail) / motions.FPS
  distance = rng.uniform(*action.distance) if action.two_person else 0.0
  ctx = motions.Ctx(
    u=u,
    t=u * seconds,
    seconds=seconds,
    rate=1.0 / (subject.tempo * speed),
    amp=subject.amp * rng.uniform(0.8, 1.2),
    distance=distance,
    rng=rng,
  )
  people = [skeleton.Controls(length) for _ in range(1 + action.two_person)]
  action.animate(ctx, people[0], people[1] if action.two_person else None)
  if not action.two_person and (rng.random() < _OTHER_HAND_PROB) != subject.left_handed:
    people[0] = people[0].mirrored()
  scene = np.full((length, _NUM_PERSONS, skeleton.NUM_JOINTS, 3), np.nan)  # (L, M, V, C)
  # Actor 1 roughly faces the cameras; in interactions the two face each other, seen from the side.
  facing = rng.uniform(-_FACING_DEG, _FACING_DEG) * skeleton.DEG
  if action.two_person:
    facing += rng.choice([-1, 1]) * rng.uniform(45, 90) * skeleton.DEG
  partner = _subject(_rng(spec.seed, _PARTNER_STREAM, subject_id, rep, label))  # an unlabelled performer
  placements = (
    (subject, facing, np.zeros(3)),
    (partner, facing + np.pi + rng.uniform(-10, 10) * skeleton.DEG, distance * _rot_y(facing)[:, 2]),
  )
  for m, (controls, (body, yaw, position)) in enumerate(zip(people, placements)):
    motions.add_idle(controls, body.posture, frames / motions.FPS + rng.uniform(0, 10), rng)
    joints = skeleton.forward_kinematics(controls, body.offsets)  # (L, V, C)
    scene[:, m] = joints @ _rot_y(yaw).T + position
  return scene


def _camera_rotation(spec: SyntheticSpec, camera: int, rng: np.random.Generator) -> np.ndarray:
  """Scene -> camera coordinates (3, 3): yaw around the subject, a mirror to face it, and a small tilt."""
  yaws = np.linspace(-_CAMERA_YAW_DEG, _CAMERA_YAW_DEG, spec.num_cameras) if spec.num_cameras > 1 else [0.0]
  base_pitch = _rng(spec.seed, _CAMERA_STREAM, camera).uniform(-5, 15)
  pitch = (base_pitch + rng.uniform(-3, 3)) * skeleton.DEG
  facing_camera = np.diag([-1.0, 1.0, -1.0])  # the scene's forward (+z) points at the camera
  return _rot_x(pitch) @ facing_camera @ _rot_y(-yaws[camera - 1] * skeleton.DEG)


def _smooth_noise(rng: np.random.Generator, shape: tuple[int, ...]) -> np.ndarray:
  """Unit-variance Gaussian noise, low-pass filtered along time (axis 0) by a moving average."""
  white = rng.normal(size=(shape[0] + _JITTER_FRAMES - 1, *shape[1:]))
  csum = np.cumsum(white, axis=0)
  csum = np.concatenate([np.zeros_like(csum[:1]), csum], axis=0)
  return (csum[_JITTER_FRAMES:] - csum[:-_JITTER_FRAMES]) / np.sqrt(_JITTER_FRAMES)  # (L, ...)


def _record(spec: SyntheticSpec, scene: np.ndarray, camera: int, ids: tuple[int, ...]) -> np.ndarray:
  """Camera view of a performance (L, M, V, C): rotate, add sensor noise and glitches, centre, zero absent."""
  rng = _rng(spec.seed, _SENSOR_STREAM, camera, *ids)
  x = scene @ _camera_rotation(spec, camera, rng).T  # (L, M, V, C)
  sigma = np.full(skeleton.NUM_JOINTS, _NOISE_M)
  sigma[[skeleton.L_HAND_TIP, skeleton.L_THUMB, skeleton.R_HAND_TIP, skeleton.R_THUMB]] = _HAND_NOISE_M
  x = x + _smooth_noise(rng, x.shape) * sigma[:, None] + rng.normal(size=x.shape) * _WHITE_NOISE_M
  if rng.random() < _GLITCH_PROB:
    for _ in range(rng.integers(1, 4)):
      start, joint = rng.integers(len(x)), rng.integers(skeleton.NUM_JOINTS)
      x[start : start + rng.integers(1, 5), 0, joint] += rng.normal(0, 0.06, 3)
  x = x - x[0, 0, skeleton.SPINE_MID]  # SPEC §1.4 centring: actor 1's spine-middle at its first frame
  return np.nan_to_num(x, nan=0.0)


def _sample_ids(spec: SyntheticSpec) -> Iterator[tuple[int, int, int, int]]:
  """(camera, subject, repetition, action) in NTU file-name order (setup, camera, subject, rep, action)."""
  for camera in range(1, spec.num_cameras + 1):
    for subject in range(1, spec.num_subjects + 1):
      for rep in range(1, spec.num_repetitions + 1):
        for action in range(1, spec.num_classes + 1):
          yield camera, subject, rep, action


def generate(spec: SyntheticSpec) -> dict[str, np.ndarray]:
  """All samples in NTU file order, without splitting.

  Returns x (N, max_frames, 150) float32 and the (N,) int arrays label (0-based), subject, camera, repetition
  and length (valid frames; the rest of x is zero).
  """
  spec.validate(splits=False)
  ids = list(_sample_ids(spec))
  x = np.zeros((len(ids), spec.max_frames, _NUM_PERSONS * skeleton.NUM_JOINTS * 3), np.float32)  # (N, T, M*V*C)
  lengths = np.zeros(len(ids), np.int64)
  row = {sample: i for i, sample in enumerate(ids)}
  action_ids = spec.action_ids()
  for subject in range(1, spec.num_subjects + 1):
    body = _subject(_rng(spec.seed, _SUBJECT_STREAM, subject))
    for rep in range(1, spec.num_repetitions + 1):
      for action in range(1, spec.num_classes + 1):
        kind = action_ids[action - 1]
        scene = _perform(spec, body, subject, rep, kind)  # every camera records the same performance
        for camera in range(1, spec.num_cameras + 1):
          i = row[camera, subject, rep, action]
          view = _record(spec, scene, camera, (subject, rep, kind))  # (L, M, V, C)
          lengths[i] = len(view)
          x[i, : len(view)] = view.reshape(len(view), -1)  # index = m*75 + v*3 + c
  columns = np.array(ids, np.int64).T
  return {
    "x": x,
    "label": columns[3] - 1,
    "subject": columns[1],
    "camera": columns[0],
    "repetition": columns[2],
    "length": lengths,
  }


def _split_indices(groups: np.ndarray, train: tuple[int, ...], test: tuple[int, ...]) -> tuple[np.ndarray, ...]:
  """Indices per split, concatenated over the listed ids in order (as MAMP's seq_transformation does)."""
  return tuple(np.concatenate([np.flatnonzero(groups == g) for g in ids]) for ids in (train, test))


def _atomic_write(path: pathlib.Path, write: Callable[[BinaryIO], object]) -> None:
  """Calls write(file) on a temporary file beside `path`, flushed to disk, then renamed over `path`."""
  with io.atomic_path(path) as tmp, open(tmp, "wb") as f:
    write(f)
    f.flush()
    os.fsync(f.fileno())


def write_splits(spec: SyntheticSpec, out_dir: str | os.PathLike) -> dict[str, pathlib.Path]:
  """Generates the samples and writes Synthetic_XSub.npz and Synthetic_XView.npz (uncompressed np.savez)."""
  spec.validate()
  start = time.perf_counter()
  data = generate(spec)
  out_dir = pathlib.Path(out_dir)
  out_dir.mkdir(parents=True, exist_ok=True)
  onehot = np.eye(spec.num_classes, dtype=np.float64)[data["label"]]  # (N, C)
  splits = {
    "xsub": _split_indices(data["subject"], *spec.xsub_subjects()),
    "xview": _split_indices(data["camera"], *spec.xview_cameras()),
  }
  paths = {}
  for name, (train, test) in splits.items():
    paths[name] = out_dir / _FILES[name]
    arrays = dict(x_train=data["x"][train], y_train=onehot[train], x_test=data["x"][test], y_test=onehot[test])
    _atomic_write(paths[name], lambda f, arrays=arrays: np.savez(f, **arrays))
    logging.info("Wrote %s: %d train / %d test samples.", paths[name], len(train), len(test))
  logging.info("Synthetic dataset (%d samples) generated in %.1f s.", len(data["x"]), time.perf_counter() - start)
  return paths


def _sidecar_text(spec: SyntheticSpec) -> str:
  return json.dumps({"format_version": _FORMAT_VERSION, **dataclasses.asdict(spec)}, sort_keys=True, indent=1)


def ensure_synthetic(spec: SyntheticSpec, out_dir: str | os.PathLike) -> dict[str, pathlib.Path]:
  """Generate the files if missing (or if a small sidecar JSON with the spec differs), else return the existing
  paths: {'xsub': path, 'xview': path}."""
  out_dir = pathlib.Path(out_dir)
  sidecar = out_dir / _SIDECAR
  paths = {name: out_dir / f for name, f in _FILES.items()}
  text = _sidecar_text(spec)
  if sidecar.is_file() and sidecar.read_text() == text and all(p.is_file() for p in paths.values()):
    return paths
  logging.info("Generating the synthetic dataset in %s.", out_dir)
  sidecar.unlink(missing_ok=True)  # a half-finished regeneration must not pass for the old spec
  paths = write_splits(spec, out_dir)
  _atomic_write(sidecar, lambda f: f.write(text.encode()))
  return paths
