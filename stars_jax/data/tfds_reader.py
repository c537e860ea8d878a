"""Reads a TFDS build of `tfds_builders` as a `SkeletonSplit`: array_record files through a grain data source.

Only `tensorflow_datasets` (for the feature decoding) and `grain` are needed, not TensorFlow. Samples are
decoded on access and zero-padded to the build's `max_frames`, so the training pipeline sees exactly the
rows of the npz built from the same raw files.
"""

import pathlib

import grain
import numpy as np
import tensorflow_datasets as tfds

from stars_jax.data.npz import FRAME_WIDTH, SkeletonSplit


class ArrayRecordFrames:
  """(N, max_frames, 150) float32 rows decoded from array_record on access, like the npz memmap."""

  def __init__(self, source: grain.sources.ArrayRecordDataSource, decode, max_frames: int):
    self._source, self._decode = source, decode
    self.shape = (len(source), max_frames, FRAME_WIDTH)
    self.dtype = np.dtype(np.float32)
    self.ndim = 3

  def __len__(self) -> int:
    return self.shape[0]

  def __getitem__(self, index: int) -> np.ndarray:
    sequence = self._decode(self._source[int(index)])["skeleton"]  # (T, 150)
    out = np.zeros(self.shape[1:], np.float32)  # (max_frames, 150)
    out[: len(sequence)] = sequence
    return out


def open_split(build_dir: str | pathlib.Path, split: str) -> SkeletonSplit:
  """One split of a build directory (e.g. DATA_DIR/ntu_rgbd60/xsub/1.0.0)."""
  build_dir = pathlib.Path(build_dir)
  if not (build_dir / "dataset_info.json").is_file():
    raise FileNotFoundError(
      f"{build_dir} is not a TFDS build directory (no dataset_info.json); build it with "
      "`stars-jax prepare <dataset> --format tfds` and point data.path at "
      "<out>/<builder>/<config>/<version>"
    )
  info = tfds.builder_from_directory(str(build_dir)).info
  if split not in info.splits:
    raise ValueError(f"{build_dir}: no split {split!r}; splits: {sorted(info.splits)}")
  paths = [str(p) for p in info.splits[split].filepaths]
  source = grain.sources.ArrayRecordDataSource(paths)
  labels = np.asarray(info.metadata["labels"][split], np.int32)  # (N,)
  if len(labels) != len(source):
    raise ValueError(f"{build_dir}: split {split!r} has {len(source)} records but {len(labels)} labels")
  labels.flags.writeable = False
  x = ArrayRecordFrames(source, info.features.deserialize_example_np, int(info.metadata["max_frames"]))
  return SkeletonSplit(path=build_dir, split=split, x=x, labels=labels, num_classes=info.features["label"].num_classes)
