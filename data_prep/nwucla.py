"""Northwestern-UCLA Multiview Action 3D (NW-UCLA) from the CTR-GCN JSON release to the official npz layout.

The release is one `aAA_sSS_eEE_vVV.json` per clip (action, subject, repetition, view), each
{"file_name", "skeletons": [T][20][3] (Kinect v1, metres), "label": 1..10}. Every clip becomes one NTU-layout
sample (`recordings.sample_of`: 25 joints through `kinect.V1_TO_NTU`, centred on the first frame's spine-middle,
second person zero). The standard cross-view protocol (Wang et al., CVPR 2014; the protocol of every
self-supervised NW-UCLA result we know of) trains on views 1 and 2 and tests on view 3: `NWUCLA_XView.npz`.
"""

import functools
import json
import logging
import pathlib
import re

import numpy as np

from stars_jax.data_prep import recordings
from stars_jax.data_prep.prepare import Dataset, PrepareError, SourceResult

NAME_RE = re.compile(r"a(\d{2})_s(\d{2})_e(\d{2})_v(\d{2})")
# The ten actions by their id in the file names (7 and 10 are absent from the dataset); label = position + 1.
ACTIONS = {
  1: "pick up with one hand",
  2: "pick up with two hands",
  3: "drop trash",
  4: "walk around",
  5: "sit down",
  6: "stand up",
  8: "donning",
  9: "doffing",
  11: "throw",
  12: "carry",
}
ACTION_IDS = tuple(ACTIONS)
CLASS_NAMES = tuple(ACTIONS.values())
VIEWS = (1, 2, 3)
SPLITS = {"NWUCLA_XView.npz": {"train": (1, 2), "test": (3,)}}  # file -> views of each split


def parse_name(name: str) -> dict[str, int]:
  """'a01_s02_e03_v01' -> {'action': 1, 'subject': 2, 'repetition': 3, 'view': 1}; ValueError if malformed."""
  match = NAME_RE.fullmatch(name)
  if match is None:
    raise ValueError(f"{name!r} is not an NW-UCLA clip name (aAA_sSS_eEE_vVV)")
  action, subject, repetition, view = (int(g) for g in match.groups())
  if action not in ACTIONS or view not in VIEWS:
    raise ValueError(f"{name!r}: action {action} or view {view} is not in NW-UCLA (actions {ACTION_IDS}, views 1-3)")
  return {"action": action, "subject": subject, "repetition": repetition, "view": view}


def label_of(name: str) -> int:
  """0-based label of a clip name."""
  return ACTION_IDS.index(parse_name(name)["action"])


def process_file(path: str, min_frames: int) -> SourceResult:
  """One clip's JSON file -> its sample, or why it has none. A label disagreeing with the name is an error."""
  name = pathlib.Path(path).stem
  try:
    payload = json.loads(pathlib.Path(path).read_text())
    joints = np.asarray(payload["skeletons"], np.float64)
    given = payload.get("label")
  except (OSError, ValueError, KeyError, TypeError) as e:  # JSON syntax, missing key, ragged lists
    return SourceResult(name, skipped=f"unreadable: {type(e).__name__}: {e}")
  label = label_of(name)
  if given is not None and given != label + 1:
    action = f"a{ACTION_IDS[label]:02d}"
    return SourceResult(name, error=f"{path}: label {given!r} disagrees with action {action} of its name ({label + 1})")
  return recordings.sample_of(name, joints, label, min_frames)


def split_indices(names: list[str], views: dict[str, tuple[int, ...]]) -> dict[str, np.ndarray]:
  """{'train', 'test'} indices (sorted name order) of the clips whose view is in each split's views."""
  view = [parse_name(n)["view"] for n in names]
  return {split: np.array([i for i, v in enumerate(view) if v in ids], np.int64) for split, ids in views.items()}


def find_clips(raw: str | pathlib.Path) -> list[pathlib.Path]:
  """The clip files `aAA_sSS_eEE_vVV.json` anywhere under `raw`, in name order (other files are ignored)."""
  raw = pathlib.Path(raw)
  if not raw.is_dir():
    raise FileNotFoundError(f"raw NW-UCLA folder {raw} does not exist")
  found: dict[str, pathlib.Path] = {}
  bad = []
  for path in raw.rglob("*.json"):
    if NAME_RE.fullmatch(path.stem) is None:
      continue
    if not path.is_file():  # never opened: a FIFO would block the reader forever
      logging.warning("skipped %s: not a regular file (a directory, FIFO or device)", path)
      continue
    try:
      parse_name(path.stem)
    except ValueError as e:
      bad.append(f"{path}: {e}")
      continue
    if path.stem in found:
      raise PrepareError(f"clip {path.stem} found twice: {found[path.stem]} and {path}")
    found[path.stem] = path
  if bad:
    raise PrepareError(f"{len(bad)} file name(s) outside NW-UCLA's ids; nothing written:\n  " + "\n  ".join(bad[:20]))
  if not found:
    raise FileNotFoundError(f"no NW-UCLA clips (aAA_sSS_eEE_vVV.json) under {raw}")
  return [found[name] for name in sorted(found)]


def nwucla_dataset(raw: str | pathlib.Path, min_frames: int = recordings.MIN_FRAMES) -> Dataset:
  """The preparation of NW-UCLA's cross-view npz from the JSON release under `raw`."""
  return Dataset(
    name="nwucla",
    sources=tuple(str(p) for p in find_clips(raw)),
    process=functools.partial(process_file, min_frames=min_frames),
    num_classes=len(ACTIONS),
    files={file: functools.partial(split_indices, views=views) for file, views in SPLITS.items()},
    max_frames=300,  # the NTU frame axis (the longest NW-UCLA clip has 201 frames)
    truncate=False,
    class_names=CLASS_NAMES,
    options={"raw": str(raw), "min_frames": min_frames},
  )
