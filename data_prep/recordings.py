"""Any Kinect recordings (a lab's own, or a public set) to one npz in the official layout, with their action names.

From Python, sequences already in memory:

  from stars_jax.data_prep import recordings
  recordings.prepare_recordings(
    [recordings.Recording("clip_001", joints, label=0, split="train"), ...],  # joints (T, [P,] 20|25, 3), metres
    out_dir="data", file_name="MyLab.npz", class_names=("wave", "sit down", ...),
  )

From the command line, a folder with `index.csv` (header `file,label,split`; `file` relative to the folder, a
`.npy` array (T, [P,] 20|25, 3) or a `.json` file with a "skeletons" list of that shape; `label` 0-based; `split`
train or test) and optionally `classes.txt` (one action name per line, line k naming label k):

  stars-jax prepare kinect --raw MY_RECORDINGS --out data --name MyLab      # -> data/MyLab.npz

Each sequence gets the NTU treatment (`kinect.to_ntu_sequence`): all-zero frames dropped, joints mapped to NTU's
25, centred on the first frame's spine-middle, a lone actor's second slot zero. Sequences shorter than
`min_frames`, unreadable or with non-finite values (checked after the float32 cast) are skipped and listed in the
log with the reason; a label outside the classes stops the run, naming the file. `<name>.classes.txt` beside the
npz carries the action names to the report's tables and plots.
"""

import csv
import dataclasses
import functools
import json
import pathlib
from collections.abc import Iterable, Sequence

import numpy as np

from stars_jax.data.class_names import read_classes
from stars_jax.data_prep import kinect, prepare
from stars_jax.data_prep.prepare import Dataset, Sample, SourceResult

MIN_FRAMES = 8  # two temporal tokens of 4 frames: shorter clips are too short to mask and predict motion
SPLITS = ("train", "test")
INDEX_FILE = "index.csv"
CLASSES_FILE = "classes.txt"


@dataclasses.dataclass(frozen=True)
class Recording:
  name: str  # unique; names the sample in the log
  joints: np.ndarray  # (T, [P,] J, 3), J = 20 (Kinect v1) or 25 (Kinect v2), metres
  label: int  # 0-based
  split: str  # 'train' | 'test'


def sample_of(name: str, joints: np.ndarray, label: int, min_frames: int = MIN_FRAMES) -> SourceResult:
  """One sequence -> its NTU-layout sample, or why it has none (too short, non-finite, no actor, wrong shape)."""
  try:
    joints = kinect.to_ntu_joints(joints)  # (T, P, 25, 3)
  except kinect.KinectFormatError as e:
    return SourceResult(name, skipped=f"unreadable: {e}")
  why = prepare.implausible(joints)
  if why:
    return SourceResult(name, skipped=why)
  present = joints.reshape(len(joints), -1).any(axis=1)  # (T,) frames with any non-zero joint
  events = {"empty_frames_dropped": int((~present).sum())} if not present.all() else {}
  joints = joints[present]
  if len(joints) < min_frames:
    return SourceResult(name, skipped=f"too short: {len(joints)} frame(s) with a skeleton, fewer than {min_frames}")
  if not joints[:, 0].any():
    return SourceResult(name, skipped="actor 1 is zero in every frame")
  sequence = kinect.to_ntu_sequence(joints)  # (T, 150) float32
  return SourceResult(name, [Sample(name, int(label), sequence)], events=events)


def read_sequence(path: str | pathlib.Path) -> np.ndarray:
  """A `.npy` array or a `.json` file {"skeletons": [T][[P][]J][3], ...} -> float64 array. Raises ValueError or
  OSError naming the problem."""
  path = pathlib.Path(path)
  if path.suffix == ".npy":
    return np.load(path, allow_pickle=False).astype(np.float64)
  if path.suffix == ".json":
    payload = json.loads(path.read_text())
    if not isinstance(payload, dict) or "skeletons" not in payload:
      raise ValueError('no "skeletons" key')
    return np.asarray(payload["skeletons"], np.float64)
  raise ValueError(f"unknown file type {path.suffix!r}; expected .npy or .json")


def split_by_name(names: list[str], splits: dict[str, str]) -> dict[str, np.ndarray]:
  """{'train', 'test'} indices (in sample order) of sample names by their recorded split."""
  return {split: np.array([i for i, n in enumerate(names) if splits[n] == split], np.int64) for split in SPLITS}


def _check_label(source: str, label: int, num_classes: int) -> None:
  if not 0 <= label < num_classes:
    raise prepare.PrepareError(f"{source}: label {label} outside 0..{num_classes - 1}")


def _check_split(source: str, split: str) -> None:
  if split not in SPLITS:
    raise prepare.PrepareError(f"{source}: split {split!r}; expected one of {SPLITS}")


def _from_memory(name: str, table: dict[str, Recording], min_frames: int) -> SourceResult:
  recording = table[name]
  return sample_of(name, recording.joints, recording.label, min_frames)


def prepare_recordings(
  items: Iterable[Recording],
  out_dir: str | pathlib.Path,
  file_name: str,
  class_names: Sequence[str],
  min_frames: int = MIN_FRAMES,
  max_frames: int = 300,
  allow_empty_split: bool = False,
) -> dict:
  """Recordings in memory -> `out_dir/file_name` (official npz layout) + its `.classes.txt` + a prepare log.

  `class_names[k]` names label k (their number is the one-hot width); the frame axis is `max_frames` long, or
  the longest sample's length if that is longer; an empty split is an error unless `allow_empty_split`. Returns
  the log (split sizes, skipped recordings with reasons)."""
  table: dict[str, Recording] = {}
  for item in items:
    if item.name in table:
      raise prepare.PrepareError(f"recording name {item.name!r} given twice")
    _check_label(item.name, item.label, len(class_names))
    _check_split(item.name, item.split)
    table[item.name] = item
  stem = pathlib.Path(file_name).stem
  dataset = Dataset(
    name=stem,
    sources=tuple(table),
    process=functools.partial(_from_memory, table=table, min_frames=min_frames),
    num_classes=len(class_names),
    files={file_name: functools.partial(split_by_name, splits={n: r.split for n, r in table.items()})},
    max_frames=max_frames,
    truncate=False,
    class_names=tuple(class_names),
    options={"min_frames": min_frames},
  )
  return prepare.prepare(dataset, out_dir, workers=1, allow_empty_split=allow_empty_split)


def _process_file(
  file: str, root: str, labels: dict[str, int], min_frames: int
) -> SourceResult:  # picklable for the worker pool
  path = pathlib.Path(root) / file
  if path.exists() and not path.is_file():  # a directory or a FIFO (opening one would wait forever)
    return SourceResult(file, skipped=f"unreadable: {path} is not a regular file")
  try:
    joints = read_sequence(path)
  except (OSError, ValueError) as e:  # json.JSONDecodeError is a ValueError
    return SourceResult(file, skipped=f"unreadable: {path}: {e}")
  return sample_of(file, joints, labels[file], min_frames)


def read_index(raw: pathlib.Path) -> tuple[dict[str, int], dict[str, str], tuple[str, ...]]:
  """RAW/index.csv (+ RAW/classes.txt) -> labels and splits by file, and the class names ('0', '1', ... without
  classes.txt). Raises PrepareError naming the file and line of a bad row."""
  index = raw / INDEX_FILE
  if not index.is_file():
    raise FileNotFoundError(f"{index} does not exist (header 'file,label,split', one row per recording)")
  labels, splits = {}, {}
  with open(index, newline="") as f:
    reader = csv.DictReader(f)
    missing = {"file", "label", "split"} - set(reader.fieldnames or ())
    if missing:
      raise prepare.PrepareError(f"{index}:1: header {reader.fieldnames} lacks {sorted(missing)}")
    for row in reader:
      where = f"{index}:{reader.line_num}"
      file = (row["file"] or "").strip()
      try:
        label = int(row["label"])
      except (TypeError, ValueError):
        raise prepare.PrepareError(f"{where}: label {row['label']!r} is not an integer") from None
      if not file or file in labels:
        raise prepare.PrepareError(f"{where}: file {file!r} is empty or listed twice")
      _check_split(where, (row["split"] or "").strip())
      labels[file], splits[file] = label, row["split"].strip()
  if not labels:
    raise prepare.PrepareError(f"{index}: no recordings listed")
  classes_path = raw / CLASSES_FILE
  if classes_path.is_file():
    names = read_classes(classes_path)
  else:
    names = tuple(str(k) for k in range(max(labels.values()) + 1))
  for file, label in labels.items():
    _check_label(f"{index}: {file}", label, len(names))
  return labels, splits, names


def kinect_dataset(raw: str | pathlib.Path, name: str, min_frames: int = MIN_FRAMES) -> Dataset:
  """The preparation of the recordings listed in RAW/index.csv into `<name>.npz`."""
  raw = pathlib.Path(raw)
  if not raw.is_dir():
    raise FileNotFoundError(f"recordings folder {raw} does not exist")
  labels, splits, names = read_index(raw)
  return Dataset(
    name=name,
    sources=tuple(sorted(labels)),
    process=functools.partial(_process_file, root=str(raw), labels=labels, min_frames=min_frames),
    num_classes=len(names),
    files={f"{name}.npz": functools.partial(split_by_name, splits=splits)},
    max_frames=300,
    truncate=False,
    class_names=names,
    options={"raw": str(raw), "min_frames": min_frames},
  )
