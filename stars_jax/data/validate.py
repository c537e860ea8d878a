"""Checks of what a job will read, run before its first step so a bad setting or file fails in seconds, naming
the key or the file and sample: the data settings, and each split's content (present, non-empty, finite, not all
zero) and classes (held-out classes present in both splits)."""

import logging
from collections.abc import Sequence

import ml_collections
import numpy as np

from stars_jax import errors
from stars_jax.data import npz

_SCAN_SAMPLES = 1024  # samples read per chunk of the finiteness scan


def check_data_config(data: ml_collections.ConfigDict, t_patch: int) -> None:
  """The feeder settings that cannot run, naming the key: the crop window (positive, a multiple of the model's
  temporal patch `t_patch`), the crop intervals (fractions in (0, 1]) and the held-out class ids."""
  problems = []
  if data.window <= 0 or data.window % t_patch:
    problems.append(f"data.window={data.window} must be a positive multiple of model.t_patch={t_patch}")
  for key in ("train_p_interval", "eval_p_interval"):
    interval = tuple(data[key])
    if not interval or len(interval) > 2 or not all(0 < p <= 1 for p in interval) or sorted(interval) != list(interval):
      problems.append(f"data.{key}={interval} must be one or two increasing fractions in (0, 1]")
  held_out = tuple(data.held_out_classes)
  if any(not isinstance(c, int) or c < 0 for c in held_out) or len(set(held_out)) != len(held_out):
    problems.append(f"data.held_out_classes={held_out} must be distinct non-negative class ids")
  if problems:
    raise errors.BadConfig("; ".join(problems))


def check_content(split: npz.SkeletonSplit) -> int:
  """Raises NpzFormatError naming the file, split and sample when `split` is empty, holds NaN / inf, or every
  clip is zero; returns the number of all-zero clips (logged: a few are harmless, all of them are no data)."""
  where = f"{split.path}: x_{split.split}"
  if not len(split):
    raise npz.NpzFormatError(f"{where} has no samples")
  zero = 0
  for begin in range(0, len(split), _SCAN_SAMPLES):
    rows = range(begin, min(begin + _SCAN_SAMPLES, len(split)))
    chunk = split.x[begin : rows.stop] if isinstance(split.x, np.ndarray) else np.stack([split.x[i] for i in rows])
    chunk = np.asarray(chunk).reshape(len(rows), -1)  # (n, T * 150)
    finite = np.isfinite(chunk).all(axis=1)  # (n,)
    if not finite.all():
      bad = npz.source_index(split.x, rows[int(np.argmin(finite))])
      raise npz.NpzFormatError(f"{where}: sample {bad} holds non-finite values (NaN / inf)")
    zero += int((~chunk.any(axis=1)).sum())
  if zero == len(split):
    raise npz.NpzFormatError(f"{where}: all {zero} clips are zero in every frame (no skeleton data)")
  if zero:
    logging.warning("%s: %d of %d clips are zero in every frame", where, zero, len(split))
  return zero


def check_classes(train: npz.SkeletonSplit, test: npz.SkeletonSplit, held_out: Sequence[int]) -> None:
  """Both splits have the same label width; every held-out class lies in it and has samples in both splits
  (the few-shot bank and queries). Protocols that need more (two classes, ...) are skipped, not refused
  (`evaluate.protocols`)."""
  path = train.path
  if train.num_classes != test.num_classes:
    raise npz.NpzFormatError(f"{path}: y_train has {train.num_classes} columns but y_test {test.num_classes}")
  held_out = tuple(held_out)
  outside = [c for c in held_out if c >= train.num_classes]
  if outside:
    raise errors.BadConfig(f"data.held_out_classes={held_out}: {path} has classes 0..{train.num_classes - 1} only")
  for split in (train, test):
    missing = sorted(set(held_out) - set(np.unique(split.labels).tolist()))
    if missing:
      raise errors.BadInput(
        f"data.held_out_classes={held_out}: {path} has no {split.split} samples of classes {missing[:10]}"
      )
