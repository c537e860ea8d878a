"""Streaming writers: an append-only store of variable-length sequences and the official npz layout.

The npz is written member by member through `zipfile` (stored, zip64), the way `np.savez` lays it out,
without ever holding a split in memory; files appear under their final name only once complete.
"""

import pathlib
import zipfile
from collections.abc import Iterator

import numpy as np
from numpy.lib import format as npy_format

from stars_jax import io

FRAME_WIDTH = 150
_CHUNK_SAMPLES = 256  # samples padded and written per chunk


class SequenceStore:
  """Append-only float32 file of (T_i, 150) sequences; read back by sample index."""

  def __init__(self, path: pathlib.Path):
    self.path = path
    self._file = open(path, "wb")
    self.offsets: list[int] = []  # first frame of each sequence
    self.lengths: list[int] = []
    self._frames = 0
    self._view: np.ndarray | None = None

  def append(self, sequence: np.ndarray) -> None:
    sequence = np.ascontiguousarray(sequence, dtype=np.float32)  # (T, 150)
    if sequence.ndim != 2 or sequence.shape[1] != FRAME_WIDTH:
      raise ValueError(f"sequence shape {sequence.shape}; expected (T, {FRAME_WIDTH})")
    self._file.write(sequence.data)
    self.offsets.append(self._frames)
    self.lengths.append(len(sequence))
    self._frames += len(sequence)

  def __len__(self) -> int:
    return len(self.lengths)

  def __getitem__(self, index: int) -> np.ndarray:
    if self._view is None:
      self._file.flush()
      self._view = (
        np.memmap(self.path, np.float32, "r", shape=(self._frames, FRAME_WIDTH))
        if self._frames
        else np.zeros((0, FRAME_WIDTH), np.float32)
      )
    start = self.offsets[index]
    return self._view[start : start + self.lengths[index]]  # (T_i, 150)

  def close(self) -> None:
    self._view = None
    self._file.close()
    self.path.unlink(missing_ok=True)


def padded_chunks(store: SequenceStore, indices: np.ndarray, max_frames: int) -> Iterator[np.ndarray]:
  """(n, max_frames, 150) float32 blocks of the store's samples at `indices`, zero-padded at the end."""
  for begin in range(0, len(indices), _CHUNK_SAMPLES):
    block = indices[begin : begin + _CHUNK_SAMPLES]
    out = np.zeros((len(block), max_frames, FRAME_WIDTH), np.float32)
    for row, index in enumerate(block):
      sequence = store[int(index)][:max_frames]
      out[row, : len(sequence)] = sequence
    yield out


def one_hot(labels: np.ndarray, num_classes: int) -> np.ndarray:
  """(N,) int -> (N, C) float64 one-hot, the official label layout."""
  out = np.zeros((len(labels), num_classes), np.float64)
  out[np.arange(len(labels)), labels] = 1.0
  return out


def _write_member(
  zf: zipfile.ZipFile, key: str, shape: tuple[int, ...], dtype: np.dtype, chunks: Iterator[np.ndarray]
) -> None:
  header = {"descr": npy_format.dtype_to_descr(np.dtype(dtype)), "fortran_order": False, "shape": shape}
  written = 0
  with zf.open(f"{key}.npy", "w", force_zip64=True) as f:
    npy_format.write_array_header_1_0(f, header)
    for chunk in chunks:
      chunk = np.ascontiguousarray(chunk, dtype=dtype)
      f.write(chunk.data)
      written += len(chunk)
  if written != shape[0]:
    raise RuntimeError(f"{key}: wrote {written} rows, declared {shape[0]}")


def write_split_npz(
  path: pathlib.Path,
  store: SequenceStore,
  labels: np.ndarray,
  num_classes: int,
  splits: dict[str, np.ndarray],
  max_frames: int,
) -> None:
  """Official npz (x_train, y_train, x_test, y_test) of the store's samples, split by index lists.

  x_*: (N, max_frames, 150) float32, y_*: (N, num_classes) float64 one-hot; `labels` is (N_store,) int.
  """
  with io.atomic_path(path) as tmp:
    with zipfile.ZipFile(tmp, "w", compression=zipfile.ZIP_STORED, allowZip64=True) as zf:
      for split in ("train", "test"):
        indices = splits[split]
        _write_member(
          zf,
          f"x_{split}",
          (len(indices), max_frames, FRAME_WIDTH),
          np.float32,
          padded_chunks(store, indices, max_frames),
        )
        y = one_hot(labels[indices], num_classes)  # (N, C), small
        _write_member(zf, f"y_{split}", y.shape, np.float64, iter([y]))
