"""Host-side grain input pipeline: reads raw samples; augmentation runs on device (transforms.py).

Records are {'x': (T, 150) float32, 'label': int32, 'index': int32 (dataset index)}. Both iterators
are defined by random access on a global element stream: global batch i holds stream elements
[i B, (i + 1) B), and host p of P takes the contiguous slice [p B/P, (p + 1) B/P) of every global
batch, so the global batch sequence does not depend on the number of hosts.
"""

import functools
import logging
import sys
from collections.abc import Iterator
from typing import Any

import grain
import numpy as np

from stars_jax.data.npz import SkeletonSplit, read_sample

_STATE_KEYS = ("step", "seed", "global_batch_size", "num_samples")


def steps_per_epoch(num_samples: int, global_batch_size: int) -> int:
  """Number of full global batches per epoch (drop_last)."""
  if global_batch_size <= 0:
    raise ValueError(f"global_batch_size must be positive, got {global_batch_size}")
  return num_samples // global_batch_size


def _host_batch_size(global_batch_size: int, process_index: int, process_count: int) -> int:
  """Per-host batch size B/P, validating the host layout."""
  if process_count <= 0 or not 0 <= process_index < process_count:
    raise ValueError(f"invalid process_index {process_index} for process_count {process_count}")
  if global_batch_size <= 0 or global_batch_size % process_count:
    raise ValueError(
      f"global_batch_size {global_batch_size} must be a positive multiple of process_count {process_count}"
    )
  return global_batch_size // process_count


def _global_position(local: int, global_batch_size: int, host_batch: int, process_index: int) -> int:
  """Stream position of this host's `local`-th element: its slice of global batch local // (B/P)."""
  step, offset = divmod(local, host_batch)
  return step * global_batch_size + process_index * host_batch + offset


def _read_record(split: SkeletonSplit, index: int) -> dict[str, np.ndarray]:
  """One raw sample copied out of the memmap."""
  return {
    "x": read_sample(split, index),  # (T, 150)
    "label": np.int32(split.labels[index]),
    "index": np.int32(index),
  }


class _EpochPermutations:
  """Sample order of each epoch: a permutation derived from (seed, epoch) only."""

  def __init__(self, seed: int, num_samples: int):
    if seed < 0:
      raise ValueError(f"seed must be non-negative, got {seed}")
    self._seed = seed
    self._num_samples = num_samples
    self._cached = functools.lru_cache(maxsize=4)(self._permutation)  # epochs in flight

  def __call__(self, epoch: int) -> np.ndarray:
    return self._cached(epoch)

  def _permutation(self, epoch: int) -> np.ndarray:
    rng = np.random.default_rng([self._seed, epoch])
    return rng.permutation(self._num_samples)  # (N,)


class ResumableIterator(Iterator[dict[str, np.ndarray]]):
  """Infinite iterator over this host's slices of the global training batches.

  Its position is the global step; `get_state()`/`set_state()` save and restore it.
  """

  def __init__(self, dataset: grain.MapDataset, read_options: grain.ReadOptions, config: dict[str, int]):
    self._dataset = dataset
    self._read_options = read_options
    self._config = config
    self._step = 0
    self._iter = iter(dataset.to_iter_dataset(read_options))

  def __iter__(self) -> "ResumableIterator":
    return self

  def __next__(self) -> dict[str, np.ndarray]:
    batch = next(self._iter)
    self._step += 1
    return batch

  @property
  def step(self) -> int:
    """Global step of the next batch."""
    return self._step

  def get_state(self) -> dict[str, int]:
    """JSON-serialisable position: the next global step plus the settings that define the stream."""
    return {"step": self._step, **self._config}

  def set_state(self, state: dict[str, Any]) -> None:
    """Continue from a saved position; the settings defining the stream must match."""
    missing = [k for k in _STATE_KEYS if k not in state]
    if missing:
      raise ValueError(f"iterator state is missing keys {missing}: {state}")
    for key, value in self._config.items():
      if int(state[key]) != value:
        raise ValueError(f"iterator state has {key}={state[key]} but this pipeline has {value}")
    step = int(state["step"])
    if step < 0:
      raise ValueError(f"iterator state has negative step {step}")
    self.close()
    self._step = step
    self._iter = iter(self._dataset[step:].to_iter_dataset(self._read_options))

  def close(self) -> None:
    """Stop the prefetch threads."""
    close = getattr(self._iter, "close", None)
    if close is not None:
      close()


def train_iterator(
  split: SkeletonSplit,
  *,
  global_batch_size: int,
  seed: int,
  process_index: int = 0,
  process_count: int = 1,
  num_threads: int = 2,
  prefetch: int = 4,
) -> ResumableIterator:
  """Shuffled (per epoch, from (seed, epoch)), drop_last, infinite training batches for this host.

  Yields {'x': (B/P, T, 150) float32, 'label': (B/P,) int32, 'index': (B/P,) int32}.
  """
  host_batch = _host_batch_size(global_batch_size, process_index, process_count)
  num_samples = len(split)
  epoch_steps = steps_per_epoch(num_samples, global_batch_size)
  if epoch_steps == 0:
    raise ValueError(
      f"{split.path} ({split.split}): {num_samples} samples is fewer than one global batch of {global_batch_size}"
    )
  epoch_size = epoch_steps * global_batch_size
  permutation = _EpochPermutations(seed, num_samples)

  def load(local: int) -> dict[str, np.ndarray]:
    position = _global_position(local, global_batch_size, host_batch, process_index)
    epoch, offset = divmod(position, epoch_size)
    return _read_record(split, int(permutation(epoch)[offset]))

  max_steps = sys.maxsize // global_batch_size  # "infinite"
  dataset = grain.MapDataset.range(max_steps * host_batch).map(load).batch(host_batch, drop_remainder=True)
  logging.info(
    "train pipeline: %d samples, %d steps/epoch, host %d/%d gets %d of %d per step",
    num_samples,
    epoch_steps,
    process_index,
    process_count,
    host_batch,
    global_batch_size,
  )
  config = {"seed": int(seed), "global_batch_size": int(global_batch_size), "num_samples": num_samples}
  read_options = grain.ReadOptions(num_threads=num_threads, prefetch_buffer_size=prefetch)
  return ResumableIterator(dataset, read_options, config)


def eval_batches(
  split: SkeletonSplit,
  *,
  global_batch_size: int,
  process_index: int = 0,
  process_count: int = 1,
  num_threads: int = 2,
  prefetch: int = 4,
) -> Iterator[dict[str, np.ndarray]]:
  """Every sample exactly once, in order; the last global batch is padded to full size.

  Yields the train keys plus 'valid': (B/P,) bool marking real samples; padding rows have
  x = 0, label = -1 and index = -1. All hosts yield the same number of batches.
  """
  host_batch = _host_batch_size(global_batch_size, process_index, process_count)
  num_samples = len(split)
  num_batches = -(-num_samples // global_batch_size)
  pad = {"x": np.zeros(split.x.shape[1:], np.float32), "label": np.int32(-1), "index": np.int32(-1)}

  def load(local: int) -> dict[str, np.ndarray]:
    position = _global_position(local, global_batch_size, host_batch, process_index)
    if position >= num_samples:
      return {**pad, "valid": np.bool_(False)}
    return {**_read_record(split, position), "valid": np.bool_(True)}

  dataset = grain.MapDataset.range(num_batches * host_batch).map(load).batch(host_batch, drop_remainder=True)
  read_options = grain.ReadOptions(num_threads=num_threads, prefetch_buffer_size=prefetch)
  return iter(dataset.to_iter_dataset(read_options))
