"""Sequence transformation and splits of NTU RGB+D (SPEC §1.4): centring, second person, padding, labels.

Split order: the concatenation over the id list in its listed order, each id's samples in name order.
"""

import dataclasses

import numpy as np

from stars_jax.data_prep.ntu_denoise import PERSON_WIDTH
from stars_jax.data_prep.ntu_skeleton import parse_name

MAX_FRAMES = 300  # max frame count over NTU-60 (official comment); the writer checks every sample fits
SPINE_MIDDLE = slice(3, 6)  # joint 2 of actor 1: columns 3-5
SECOND_PERSON = ("zeros", "duplicate")  # NTU-60 convention | NTU-120 convention (SPEC §7.10)


@dataclasses.dataclass(frozen=True)
class SplitRule:
  """Train/test membership by one name field; both id lists in the official order."""

  field: str  # 'performer' | 'camera' | 'setup'
  train: tuple[int, ...]
  test: tuple[int, ...]


_NTU60_TRAIN_SUBJECTS = (1, 2, 4, 5, 8, 9, 13, 14, 15, 16, 17, 18, 19, 25, 27, 28, 31, 34, 35, 38)
_NTU120_TRAIN_SUBJECTS = _NTU60_TRAIN_SUBJECTS + (
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

# (dataset, split) -> rule, SPEC §1.4.
SPLITS = {
  ("ntu60", "xsub"): SplitRule(
    "performer", _NTU60_TRAIN_SUBJECTS, tuple(p for p in range(1, 41) if p not in _NTU60_TRAIN_SUBJECTS)
  ),
  ("ntu60", "xview"): SplitRule("camera", (2, 3), (1,)),
  ("ntu120", "xsub"): SplitRule(
    "performer", _NTU120_TRAIN_SUBJECTS, tuple(p for p in range(1, 107) if p not in _NTU120_TRAIN_SUBJECTS)
  ),
  ("ntu120", "xset"): SplitRule("setup", tuple(range(2, 33, 2)), tuple(range(1, 32, 2))),
}
NUM_CLASSES = {"ntu60": 60, "ntu120": 120}
MAX_SETUP = {"ntu60": 17, "ntu120": 32}  # NTU-60 = setups 1-17 (actions 1-60) of NTU-120


def split_indices(names: list[str], rule: SplitRule) -> dict[str, np.ndarray]:
  """{'train', 'test'}: indices into `names` (sorted) in the official split order."""
  by_id: dict[int, list[int]] = {}
  for i, name in enumerate(names):
    by_id.setdefault(parse_name(name)[rule.field], []).append(i)
  return {
    split: np.array([i for key in ids for i in by_id.get(key, [])], dtype=np.int64)
    for split, ids in (("train", rule.train), ("test", rule.test))
  }


def label_of(name: str) -> int:
  """0-based action label of a sample name."""
  return parse_name(name)["action"] - 1


def centre(joints: np.ndarray) -> np.ndarray:
  """Subtract actor 1's spine-middle at its first non-zero frame from every joint. (T, 75|150) float32.

  With two persons, the frames where a person was all zero stay zero.
  """
  present = joints[:, :PERSON_WIDTH].any(axis=1)  # (T,)
  if not present.any():
    raise ValueError("actor 1 is zero in every frame; nothing to centre on")
  origin = joints[np.argmax(present), SPINE_MIDDLE]  # (3,)
  persons = joints.shape[1] // PERSON_WIDTH
  out = joints - np.tile(origin, persons * PERSON_WIDTH // 3)
  if persons == 2:
    out[~present, :PERSON_WIDTH] = 0
    out[~joints[:, PERSON_WIDTH:].any(axis=1), PERSON_WIDTH:] = 0
  return out


def two_persons(joints: np.ndarray, second_person: str) -> np.ndarray:
  """(T, 75|150) -> (T, 150): a lone actor gets a zero second person or a copy of itself."""
  if second_person not in SECOND_PERSON:
    raise ValueError(f"second_person must be one of {SECOND_PERSON}, got {second_person!r}")
  if joints.shape[1] == 2 * PERSON_WIDTH:
    return joints
  other = joints if second_person == "duplicate" else np.zeros_like(joints)
  return np.concatenate([joints, other], axis=1)


def transform(joints: np.ndarray, second_person: str) -> np.ndarray:
  """A denoised sequence (T, 75|150) into its unpadded official form (T, 150) float32."""
  return two_persons(centre(joints), second_person).astype(np.float32, copy=False)


def pad(sequence: np.ndarray, max_frames: int) -> np.ndarray:
  """(T, 150) -> (max_frames, 150), zeros after the end."""
  if len(sequence) > max_frames:
    raise ValueError(f"sequence of {len(sequence)} frames is longer than max_frames={max_frames}")
  out = np.zeros((max_frames, sequence.shape[1]), np.float32)
  out[: len(sequence)] = sequence
  return out
