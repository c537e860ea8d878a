"""Dataset-independent preparation: process raw sources in parallel, stage, write split npz files and a log.

Each dataset module supplies a `Dataset`: its sorted raw sources, a picklable function turning one source
into samples, and how sample names map to train/test indices for each output file.
"""

import dataclasses
import logging
import multiprocessing
import os
import pathlib
import time
from collections.abc import Callable, Iterator

import numpy as np
import tqdm

from stars_jax import io
from stars_jax.data.class_names import classes_path
from stars_jax.data_prep import writer


class PrepareError(RuntimeError):
  """Some raw sources are malformed; nothing was written."""


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


def _results(dataset: Dataset, workers: int) -> Iterator[SourceResult]:
  if workers <= 1:
    yield from map(dataset.process, dataset.sources)
    return
  with multiprocessing.get_context("spawn").Pool(workers) as pool:
    yield from pool.imap(dataset.process, dataset.sources, chunksize=16)


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


def prepare(dataset: Dataset, out_dir: str | pathlib.Path, workers: int = 1, progress: bool = False) -> dict:
  """Raw sources -> the dataset's official npz files plus `<name>_prepare_log.json` in out_dir.

  Returns the log: per-file split sizes, skipped sources with reasons, per-source events, throughput.
  """
  out_dir = pathlib.Path(out_dir)
  out_dir.mkdir(parents=True, exist_ok=True)
  staged = stage(dataset, out_dir / f".{dataset.name}_staging.partial", workers, progress)
  try:
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
    for file_name, split_fn in dataset.files.items():
      splits = split_fn(staged.names)
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
    "events": staged.events,
    "workers": workers,
    "read_seconds": round(staged.seconds, 3),
    "files_per_second": round(len(dataset.sources) / max(staged.seconds, 1e-9), 2),
  }
  io.write_json_atomic(out_dir / f"{dataset.name}_prepare_log.json", log)
  return log


def cpu_count() -> int:
  return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
