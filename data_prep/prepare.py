"""Dataset-independent preparation: process raw sources in parallel, stage, write split npz files and a log.

Each dataset module supplies a `Dataset`: its sorted raw sources, a picklable function turning one source
into samples, and how sample names map to train/test indices for each output file.
"""

import dataclasses
import functools
import logging
import multiprocessing
import os
import pathlib
import time
from collections.abc import Callable, Iterator

import numpy as np
import tqdm

from stars_jax import errors, io
from stars_jax.data.class_names import classes_path
from stars_jax.data_prep import writer

MAX_ABS_COORD = 100.0  # metres: NTU, PKU-MMD and Kinect skeletons lie within a few metres of the camera


class PrepareError(errors.BadInput, RuntimeError):
  """Some raw sources are malformed, or the output cannot be written as asked; nothing was written."""


@dataclasses.dataclass(frozen=True)
class Sample:
  name: str
  label: int  # 0-based
  sequence: np.ndarray  # (T, 150) float32, unpadded


@dataclasses.dataclass
class SourceResult:
  """What one raw source (file) produced."""

  source: str
  samples: list[Sample] = dataclasses.field(default_factory=list)
  skipped: str = ""  # why the source produced nothing (e.g. no skeleton); empty if it did
  error: str = ""  # malformed input: the message names the file and line
  events: dict = dataclasses.field(default_factory=dict)  # what was done to it, for the log


SplitFn = Callable[[list[str]], dict[str, np.ndarray]]  # sample names -> {'train', 'test'} indices


@dataclasses.dataclass(frozen=True)
class Dataset:
  name: str  # 'ntu60', 'ntu120', 'pku1', 'pku2'
  sources: tuple[str, ...]  # raw files, in the official sample order
  process: Callable[[str], SourceResult]  # picklable (module-level function or partial)
  num_classes: int
  files: dict[str, SplitFn]  # output npz name -> split rule
  max_frames: int
  truncate: bool  # True: cut longer samples (PKU); False: grow the frame axis to the longest (NTU)
  excluded: dict[str, str] = dataclasses.field(default_factory=dict)  # source -> reason, not read
  options: dict = dataclasses.field(default_factory=dict)  # recorded in the log
  class_names: tuple[str, ...] = ()  # label k's action name, written beside each npz (classes_path) if given


@dataclasses.dataclass
class Staged:
  """All samples of a dataset, unpadded on disk, in the official order."""

  store: writer.SequenceStore
  names: list[str]
  labels: np.ndarray  # (N,) int64
  skipped: dict[str, str]
  events: dict[str, dict]
  seconds: float

  def max_frames(self, dataset: Dataset) -> int:
    return dataset.max_frames if dataset.truncate else max([dataset.max_frames, *self.store.lengths])


def implausible(sequence: np.ndarray) -> str:
  """Why a sample's values cannot be vouched for after the float32 cast ('' if they can): NaN / inf (a float64
  value beyond float32 becomes inf) or a coordinate beyond MAX_ABS_COORD metres."""
  with np.errstate(over="ignore", invalid="ignore"):
    x = np.asarray(sequence).astype(np.float32)  # (T, ...)
  bad = ~np.isfinite(x)
  what = "non-finite (NaN / inf, or beyond float32)"
  if not bad.any():
    bad, what = np.abs(x) > MAX_ABS_COORD, f"outside the plausibility bound |x| <= {MAX_ABS_COORD:g} m"
  if not bad.any():
    return ""
  where = tuple(int(i) for i in np.argwhere(bad)[0])
  return f"{what}: {x[where]:g} at frame {where[0]}, index {where[1:]}"


def checked(process: Callable[[str], SourceResult], source: str) -> SourceResult:
  """`process(source)` with every failure kept inside this source's result, so the file is named: an exception
  (e.g. a body that is zero in every frame) or a sample whose values `implausible` refuses."""
  try:
    result = process(source)
  except Exception as e:  # noqa: BLE001  any failure of one file names that file, not the whole run
    return SourceResult(source, error=f"{source}: {type(e).__name__}: {e}")
  for sample in result.samples:
    why = implausible(sample.sequence)
    if why:
      return SourceResult(result.source, error=f"{source}: sample {sample.name}: {why}")
  return result


def _results(dataset: Dataset, workers: int) -> Iterator[SourceResult]:
  process = functools.partial(checked, dataset.process)  # picklable: module-level function of a picklable one
  if workers <= 1:
    yield from map(process, dataset.sources)
    return
  with multiprocessing.get_context("spawn").Pool(workers) as pool:
    yield from pool.imap(process, dataset.sources, chunksize=16)


def stage(dataset: Dataset, staging: pathlib.Path, workers: int = 1, progress: bool = False) -> Staged:
  """Process every source (in parallel when workers > 1) into a sequence store at `staging`.

  Raises PrepareError listing every malformed source (after reading them all).
  """
  start = time.perf_counter()
  store = writer.SequenceStore(staging)
  names, labels, errors = [], [], []
  skipped, events = dict(dataset.excluded), {}
  try:
    results = tqdm.tqdm(
      _results(dataset, workers),
      total=len(dataset.sources),
      unit="file",
      desc=f"prepare {dataset.name}",
      disable=not progress,
    )
    for result in results:
      if result.error:
        errors.append(result.error)
      if result.skipped:
        skipped[result.source] = result.skipped
      if result.events:
        events[result.source] = result.events
      for sample in result.samples:
        store.append(sample.sequence)
        names.append(sample.name)
        labels.append(sample.label)
    if errors:
      shown = "\n  ".join(errors[:20])
      more = f"\n  ... and {len(errors) - 20} more" if len(errors) > 20 else ""
      raise PrepareError(f"{len(errors)} malformed raw file(s); nothing written:\n  {shown}{more}")
  except BaseException:
    store.close()
    raise
  return Staged(
    store=store,
    names=names,
    labels=np.asarray(labels, np.int64),
    skipped=skipped,
    events=events,
    seconds=time.perf_counter() - start,
  )


def output_dir(out_dir: str | pathlib.Path) -> pathlib.Path:
  """`out_dir`, created if missing; PrepareError if it is a file (or a file stands in its path)."""
  out_dir = pathlib.Path(out_dir)
  try:
    out_dir.mkdir(parents=True, exist_ok=True)
  except (FileExistsError, NotADirectoryError) as e:
    raise PrepareError(f"--out {out_dir}: not a directory ({e.strerror}: {e.filename})") from None
  return out_dir


def empty_splits(splits: dict[str, dict[str, np.ndarray]]) -> list[str]:
  """'<file> <split>' of every empty split of {file: {split: indices}}."""
  return [f"{file} {split}" for file, by_split in splits.items() for split, ix in by_split.items() if not len(ix)]


def prepare(
  dataset: Dataset,
  out_dir: str | pathlib.Path,
  workers: int = 1,
  progress: bool = False,
  allow_empty_split: bool = False,
) -> dict:
  """Raw sources -> the dataset's official npz files plus `<name>_prepare_log.json` in out_dir.

  An empty split is a PrepareError (nothing written: no training or evaluation can use it) unless
  `allow_empty_split`. Returns the log: per-file split sizes, skipped sources with reasons, per-source events,
  throughput.
  """
  out_dir = output_dir(out_dir)
  staged = stage(dataset, out_dir / f".{dataset.name}_staging.partial", workers, progress)
  try:
    all_splits = {file: split_fn(staged.names) for file, split_fn in dataset.files.items()}
    empty = empty_splits(all_splits)
    if empty and not allow_empty_split:
      raise PrepareError(
        f"{dataset.name}: {len(staged.names)} samples leave these splits empty: {', '.join(empty)}; nothing "
        "written (a job cannot train or evaluate on an empty split). Add the missing raw files, or give "
        "--allow-empty-split to write them anyway"
      )
    for split in empty:
      logging.warning("%s: the %s split is empty (--allow-empty-split)", dataset.name, split)
    max_frames = staged.max_frames(dataset)
    if max_frames > dataset.max_frames:
      logging.warning(
        "%s: longest sample has %d frames; the frame axis grows from %d to %d",
        dataset.name,
        max_frames,
        dataset.max_frames,
        max_frames,
      )
    files = {}
    for file_name, splits in all_splits.items():
      writer.write_split_npz(out_dir / file_name, staged.store, staged.labels, dataset.num_classes, splits, max_frames)
      files[file_name] = {split: len(indices) for split, indices in splits.items()}
      if dataset.class_names:
        io.write_text_atomic(classes_path(out_dir / file_name), "".join(f"{n}\n" for n in dataset.class_names))
      logging.info("wrote %s: %s", out_dir / file_name, files[file_name])
  finally:
    staged.store.close()
  log = {
    "dataset": dataset.name,
    "options": dataset.options,
    "files": files,
    "max_frames": max_frames,
    "sources": len(dataset.sources) + len(dataset.excluded),
    "samples": len(staged.names),
    "truncated": sum(n > max_frames for n in staged.store.lengths),
    "skipped": staged.skipped,
    "empty_splits": empty,
    "events": staged.events,
    "workers": workers,
    "read_seconds": round(staged.seconds, 3),
    "files_per_second": round(len(dataset.sources) / max(staged.seconds, 1e-9), 2),
  }
  io.write_json_atomic(out_dir / f"{dataset.name}_prepare_log.json", log)
  return log


def cpu_count() -> int:
  return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
