"""PKU-MMD I / II from raw skeleton, label and split files to the official npz files (SPEC §1.5).

Each labelled action instance (label, start, end, confidence) becomes one sample: rows [start, end) of its
video's skeleton (150 numbers per frame: 2 bodies x 25 joints x xyz), raw camera coordinates (no centring,
denoising or duplication), cut to the first 300 frames; all-zero instances are skipped. A video is in the
training split iff its name is on the second line of the split file. One-hot labels are 51 wide for both
phases. Official quirks kept by default: the end frame is excluded (`end_inclusive=False`) and long
instances are truncated (`max_frames=300`). The official order follows `os.listdir`; ours is sorted by
video name, then by label-file row.
"""

import dataclasses
import functools
import logging
import pathlib

import numpy as np

from stars_jax import errors
from stars_jax.data_prep.prepare import Dataset, Sample, SourceResult

NUM_CLASSES = 51
MAX_FRAMES = 300
FRAME_WIDTH = 150
SPLIT_FILES = {  # output file -> split file name read by the official code (SPEC §1.5, §7.16)
  "pku1": {"PKUv1_XSub.npz": "cross-subject.txt", "PKUv1_XView.npz": "cross-view.txt"},
  "pku2": {"PKUv2_XSub.npz": "cross_subject_v2.txt", "PKUv2_XView.npz": "cross_view_v2.txt"},
}


class PkuFormatError(errors.BadInput, ValueError):
  """A PKU-MMD file is malformed; the message names the file and the line."""


@dataclasses.dataclass(frozen=True)
class PkuOptions:
  end_inclusive: bool = False  # official: rows [start, end); True: [start, end]
  max_frames: int = MAX_FRAMES  # official: longer instances keep their first 300 frames


def read_split_file(path: str | pathlib.Path) -> set[str]:
  """Training video names: the comma-separated list on the second line of a split file."""
  lines = pathlib.Path(path).read_text().splitlines()
  if len(lines) < 2:
    raise PkuFormatError(f"{path}: expected the training video list on line 2; the file has {len(lines)} line(s)")
  return {name.strip() for name in lines[1].split(",") if name.strip()}


def read_labels(path: str | pathlib.Path) -> list[tuple[int, int, int]]:
  """(label 1..51, start, end) of each row `label,start,end,confidence` of a label file."""
  rows = []
  for number, line in enumerate(pathlib.Path(path).read_text().splitlines(), 1):
    if not line.strip():
      continue
    fields = [f.strip() for f in line.split(",")]
    try:
      label, start, end = (int(f) for f in fields[:3])
    except ValueError:
      raise PkuFormatError(
        f"{path}:{number}: expected 'label,start,end,confidence' integers, got {line.strip()!r}"
      ) from None
    if not 1 <= label <= NUM_CLASSES:
      raise PkuFormatError(f"{path}:{number}: label {label} outside 1..{NUM_CLASSES}")
    if start < 0 or end < 0:
      raise PkuFormatError(f"{path}:{number}: negative frame index in {line.strip()!r}")
    rows.append((label, start, end))
  return rows


def read_skeleton(path: str | pathlib.Path) -> np.ndarray:
  """A video's skeleton file: one row of 150 numbers per frame -> (F, 150) float32."""
  lines = pathlib.Path(path).read_text().splitlines()
  try:
    values = np.loadtxt(lines, dtype=np.float64, comments=None, ndmin=2)  # blank lines are skipped
    if values.shape[1:] == (FRAME_WIDTH,) and np.isfinite(values).all():
      with np.errstate(over="ignore"):  # beyond float32 becomes inf: refused after the cast (prepare.implausible)
        return values.astype(np.float32)
  except ValueError:
    pass
  for number, line in enumerate(lines, 1):  # name the offending line
    tokens = line.split()
    if tokens and len(tokens) != FRAME_WIDTH:
      raise PkuFormatError(f"{path}:{number}: expected {FRAME_WIDTH} numbers, got {len(tokens)}")
    for token in tokens:
      try:
        ok = np.isfinite(float(token))
      except ValueError:
        ok = False
      if not ok:
        raise PkuFormatError(f"{path}:{number}: non-numeric or non-finite value {token!r}")
  raise PkuFormatError(f"{path}: no skeleton rows")


def instances(
  skeleton: np.ndarray, rows: list[tuple[int, int, int]], options: PkuOptions
) -> tuple[list[tuple[int, int, np.ndarray]], dict]:
  """[(row index, 0-based label, (T <= max_frames, 150))] of the non-zero instances, plus log events."""
  out, events = [], {}
  for k, (label, start, end) in enumerate(rows):
    clip = skeleton[start : end + 1 if options.end_inclusive else end]  # (T, 150)
    if not clip.any():
      events.setdefault("empty_instances", []).append(k)
      continue
    if len(clip) > options.max_frames:
      events.setdefault("truncated_instances", []).append(k)
    out.append((k, label - 1, clip[: options.max_frames]))
  return out, events


def process_video(label_path: str, skeleton_dir: str, options: PkuOptions) -> SourceResult:
  """One video (its label file and skeleton file) -> one sample per non-zero instance."""
  video = pathlib.Path(label_path).stem
  skeleton_path = pathlib.Path(skeleton_dir) / f"{video}.txt"
  if skeleton_path.exists() and not skeleton_path.is_file():  # a directory or FIFO: never opened
    return SourceResult(video, skipped=f"{skeleton_path} is not a regular file (a directory, FIFO or device)")
  try:
    rows = read_labels(label_path)
    skeleton = read_skeleton(skeleton_path)
  except (PkuFormatError, FileNotFoundError) as e:
    return SourceResult(video, error=str(e))
  found, events = instances(skeleton, rows, options)
  samples = [Sample(f"{video}/{k}", label, clip) for k, label, clip in found]
  return SourceResult(video, samples, skipped="" if samples else "no non-empty instance", events=events)


def split_by_video(names: list[str], train_videos: set[str]) -> dict[str, np.ndarray]:
  """Sample names `video/row` -> {'train', 'test'} indices in sample order."""
  train = np.array([name.rsplit("/", 1)[0] in train_videos for name in names], dtype=bool)
  return {"train": np.flatnonzero(train), "test": np.flatnonzero(~train)}


def _find(raw: pathlib.Path, file_name: str) -> pathlib.Path:
  matches = sorted(raw.rglob(file_name))
  if len(matches) != 1:
    raise FileNotFoundError(
      f"expected one split file {file_name} under {raw}, found {len(matches)}: {[str(m) for m in matches]}"
    )
  return matches[0]


def pku_dataset(
  dataset: str,
  raw: str | pathlib.Path,
  options: PkuOptions = PkuOptions(),
  skeleton_dir: str | pathlib.Path | None = None,
  label_dir: str | pathlib.Path | None = None,
) -> Dataset:
  """The preparation of 'pku1' or 'pku2' from RAW/{skeleton,label}/<video>.txt and the split files."""
  if dataset not in SPLIT_FILES:
    raise ValueError(f"dataset must be one of {sorted(SPLIT_FILES)}, got {dataset!r}")
  raw = pathlib.Path(raw)
  skeleton_dir = pathlib.Path(skeleton_dir or raw / "skeleton")
  label_dir = pathlib.Path(label_dir or raw / "label")
  for folder in (skeleton_dir, label_dir):
    if not folder.is_dir():
      raise FileNotFoundError(f"PKU-MMD folder {folder} does not exist")
  labels, excluded = [], {}
  for path in sorted(label_dir.glob("*.txt")):
    if path.is_file():
      labels.append(path)
    else:  # a directory or FIFO named *.txt: never opened (a FIFO would block forever)
      excluded[str(path)] = "not a regular file (a directory, FIFO or device)"
      logging.warning("skipped %s: not a regular file (a directory, FIFO or device)", path)
  if not labels:
    raise FileNotFoundError(f"no label files (<video>.txt) in {label_dir}")
  files = {
    file: functools.partial(split_by_video, train_videos=read_split_file(_find(raw, split_file)))
    for file, split_file in SPLIT_FILES[dataset].items()
  }
  return Dataset(
    name=dataset,
    sources=tuple(str(p) for p in labels),
    process=functools.partial(process_video, skeleton_dir=str(skeleton_dir), options=options),
    num_classes=NUM_CLASSES,
    files=files,
    max_frames=options.max_frames,
    truncate=True,
    excluded=excluded,
    options={
      "raw": str(raw),
      "skeleton_dir": str(skeleton_dir),
      "label_dir": str(label_dir),
      **dataclasses.asdict(options),
    },
  )
