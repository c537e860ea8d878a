"""Memory-mapped reader for the official skeleton npz files (SPEC §1.4).

The files are `np.savez` archives of 10-20 GB with keys x_train (N, 300, 150) float32,
y_train (N, C) one-hot, x_test, y_test. `np.load(path, mmap_mode='r')` does not memory-map npz
members (it reads a whole member on access), so we locate each uncompressed member inside the zip
and map it directly.
"""

import dataclasses
import errno
import pathlib
import struct
import zipfile
from collections.abc import Sequence
from typing import Any

import numpy as np
from numpy.lib import format as npy_format

from stars_jax import errors

SPLITS = ("train", "test")
NUM_PERSONS = 2
NUM_JOINTS = 25
NUM_COORDS = 3
FRAME_WIDTH = NUM_PERSONS * NUM_JOINTS * NUM_COORDS  # 150 values per frame: (person, joint, xyz)

_LOCAL_HEADER = struct.Struct("<IHHHHHIIIHH")  # zip local file header, 30 bytes
_LOCAL_HEADER_SIGNATURE = 0x04034B50


class NpzFormatError(errors.BadInput, ValueError):
  """The npz file or one of its members does not have the expected layout."""


class NpzKeyError(errors.BadInput, KeyError):
  """A required member is missing from the npz file."""

  def __str__(self) -> str:  # KeyError would repr() the message
    return str(self.args[0])


@dataclasses.dataclass(frozen=True, eq=False)
class SkeletonSplit:
  """One split of a skeleton npz: memory-mapped samples plus integer labels."""

  path: pathlib.Path
  split: str  # 'train' | 'test'
  x: np.ndarray  # (N, T, 150) float32 read-only memmap
  labels: np.ndarray  # (N,) int32, argmax of the one-hot rows
  num_classes: int  # width of the one-hot

  def __len__(self) -> int:
    return len(self.labels)


def memmap_member(path: str | pathlib.Path, key: str) -> np.ndarray:
  """Read-only np.memmap of the uncompressed member `<key>.npy` of an npz file (no data is read)."""
  path = pathlib.Path(path)
  try:
    with zipfile.ZipFile(path) as zf:
      names = zf.namelist()
      member = f"{key}.npy"
      if member not in names:
        keys = sorted(n[:-4] if n.endswith(".npy") else n for n in names)
        raise NpzKeyError(f"{path}: key {key!r} not found; keys present: {keys}")
      info = zf.getinfo(member)
  except zipfile.BadZipFile as e:
    raise NpzFormatError(f"{path}: not an npz (zip) file: {e}") from e
  if info.compress_type != zipfile.ZIP_STORED:
    raise NpzFormatError(
      f"{path}: member {member!r} is compressed and cannot be memory-mapped; write the file with "
      "np.savez, not np.savez_compressed"
    )
  with open(path, "rb") as f:
    f.seek(info.header_offset)
    fields = _LOCAL_HEADER.unpack(f.read(_LOCAL_HEADER.size))
    if fields[0] != _LOCAL_HEADER_SIGNATURE:
      raise NpzFormatError(f"{path}: corrupt zip local header for member {member!r}")
    name_len, extra_len = fields[-2], fields[-1]
    f.seek(info.header_offset + _LOCAL_HEADER.size + name_len + extra_len)
    try:
      version = npy_format.read_magic(f)
      if version == (1, 0):
        shape, fortran_order, dtype = npy_format.read_array_header_1_0(f)
      elif version == (2, 0):
        shape, fortran_order, dtype = npy_format.read_array_header_2_0(f)
      else:
        raise ValueError(f"unsupported .npy format version {version}")
    except ValueError as e:
      raise NpzFormatError(f"{path}: member {member!r} is not a readable .npy array: {e}") from e
    offset = f.tell()
  if dtype.hasobject:
    raise NpzFormatError(f"{path}: member {member!r} holds Python objects; cannot memory-map it")
  if np.prod(shape) == 0:  # mmap cannot map zero bytes
    empty = np.empty(shape, dtype)
    empty.flags.writeable = False
    return empty
  return np.memmap(path, dtype=dtype, mode="r", offset=offset, shape=shape, order="F" if fortran_order else "C")


def open_split(path: str | pathlib.Path, split: str) -> SkeletonSplit:
  """Open x_<split> (memory-mapped) and y_<split> (loaded as int labels) of a skeleton npz."""
  path = pathlib.Path(path)
  if split not in SPLITS:
    raise ValueError(f"split must be one of {SPLITS}, got {split!r}")
  if not path.is_file():
    raise FileNotFoundError(errno.ENOENT, "skeleton npz file not found", str(path))
  x_key, y_key = f"x_{split}", f"y_{split}"

  x = memmap_member(path, x_key)
  if x.ndim != 3 or x.shape[-1] != FRAME_WIDTH:
    raise NpzFormatError(
      f"{path}: {x_key!r} has shape {x.shape}; expected (N, T, {FRAME_WIDTH}) with "
      f"{FRAME_WIDTH} = {NUM_PERSONS} persons x {NUM_JOINTS} joints x {NUM_COORDS} coords"
    )
  if x.dtype != np.float32:
    raise NpzFormatError(f"{path}: {x_key!r} has dtype {x.dtype}; expected float32")

  y = np.array(memmap_member(path, y_key))  # (N, C), small enough to load
  if y.ndim != 2:
    raise NpzFormatError(f"{path}: {y_key!r} has shape {y.shape}; expected one-hot rows (N, C)")
  if y.shape[0] != x.shape[0]:
    raise NpzFormatError(f"{path}: {y_key!r} has {y.shape[0]} labels but {x_key!r} has {x.shape[0]} samples")
  one_hot = ((y == 0) | (y == 1)).all(axis=1) & ((y == 1).sum(axis=1) == 1)  # (N,)
  if not one_hot.all():
    bad = int(np.argmin(one_hot))
    raise NpzFormatError(
      f"{path}: {y_key!r} row {bad} (sample {bad}) is not one-hot: nonzero at columns {np.flatnonzero(y[bad]).tolist()}"
    )
  labels = y.argmax(axis=1).astype(np.int32)  # (N,)
  labels.flags.writeable = False
  return SkeletonSplit(path=path, split=split, x=x, labels=labels, num_classes=int(y.shape[1]))


class _Rows:
  """Read-only row view base[indices[i]] of a (memory-mapped) array; rows are read on access."""

  def __init__(self, base: np.ndarray, indices: np.ndarray):
    self._base, self._indices = base, indices
    self.shape = (len(indices), *base.shape[1:])
    self.dtype = base.dtype

  def __len__(self) -> int:
    return len(self._indices)

  def __getitem__(self, i: int) -> np.ndarray:
    return self._base[self._indices[i]]

  def source_index(self, i: int) -> int:
    """Row index of item i in the file's array."""
    return source_index(self._base, int(self._indices[i]))


def source_index(x: Any, i: int) -> int:
  """Row index in the file of row i of a split's `x` (a memmap, or a view of one after `take`)."""
  return x.source_index(i) if isinstance(x, _Rows) else i


def read_sample(split: SkeletonSplit, i: int) -> np.ndarray:
  """Sample i of the split as float32 (T, 150); raises NpzFormatError naming the file, split and file row when it
  holds NaN or inf (they would turn every later step non-finite)."""
  x = np.array(split.x[i], dtype=np.float32)
  if not np.isfinite(x).all():
    raise NpzFormatError(
      f"{split.path}: sample {source_index(split.x, i)} of x_{split.split} holds non-finite values (NaN / inf); "
      "fix or drop it (stars-jax prepare writes finite values only)"
    )
  return x


def take(split: SkeletonSplit, indices: np.ndarray) -> SkeletonSplit:
  """The samples `indices` of a split (e.g. a semi-supervised subset), without reading them."""
  indices = np.asarray(indices, np.int64)
  if len(indices) and (indices.min() < 0 or indices.max() >= len(split)):
    raise IndexError(f"{split.path} ({split.split}): subset indices outside [0, {len(split)})")
  return dataclasses.replace(split, x=_Rows(split.x, indices), labels=np.asarray(split.labels)[indices])


def without_classes(split: SkeletonSplit, classes: Sequence[int]) -> SkeletonSplit:
  """The split minus every sample of `classes` (classes held out of training for the few-shot protocol)."""
  if not len(classes):
    return split
  return take(split, np.flatnonzero(~np.isin(split.labels, np.asarray(classes))))
