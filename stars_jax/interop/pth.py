"""Torch-free reading and writing of PyTorch `.pth` files (the zip format `torch.save` writes since 1.6).

A `.pth` is a zip archive `<name>/data.pkl` + `<name>/data/<key>` (raw little-endian storages). The pickle
refers to storages by persistent id ('storage', torch.<Type>Storage, key, location, numel) and rebuilds
tensors with `torch._utils._rebuild_tensor_v2`. Reading uses a restricted unpickler: tensors become numpy
arrays, `OrderedDict` and `argparse.Namespace` are real, any other global becomes an inert `Opaque` record
(nothing from the file is ever called). Writing produces files that `torch.load(..., weights_only=True)`
accepts, so exported checkpoints need no torch here.
"""

import argparse
import collections
import io
import os
import pickle
import zipfile
from typing import Any

import ml_dtypes
import numpy as np

_STORAGE_DTYPES = {
  "FloatStorage": np.float32,
  "DoubleStorage": np.float64,
  "HalfStorage": np.float16,
  "BFloat16Storage": ml_dtypes.bfloat16,
  "LongStorage": np.int64,
  "IntStorage": np.int32,
  "ShortStorage": np.int16,
  "CharStorage": np.int8,
  "ByteStorage": np.uint8,
  "BoolStorage": np.bool_,
  "UntypedStorage": np.uint8,
}
_STORAGE_NAMES = {np.dtype(v): k for k, v in _STORAGE_DTYPES.items() if k != "UntypedStorage"}


class Opaque:
  """Stand-in for a pickled object of a class we do not trust or know: keeps its name, args and state."""

  qualname = "?"

  def __init__(self, *args, **kwargs):
    self.args, self.kwargs, self.state = args, kwargs, None

  def __setstate__(self, state):
    self.state = state

  def __repr__(self) -> str:
    return f"Opaque({self.qualname})"


class _StorageType:
  def __init__(self, name: str):
    self.dtype = np.dtype(_STORAGE_DTYPES[name])


def _rebuild_tensor(storage: np.ndarray, offset: int, size, stride, *_) -> np.ndarray:
  """torch._utils._rebuild_tensor_v2 on a numpy storage: a copy with the tensor's shape."""
  size, stride = tuple(size), tuple(stride)
  if not size:
    return np.array(storage[offset])
  item = storage.itemsize
  view = np.lib.stride_tricks.as_strided(storage[offset:], size, tuple(s * item for s in stride))
  return np.array(view)


def _rebuild_parameter(data, *_):
  return data


_ALLOWED = {
  ("collections", "OrderedDict"): collections.OrderedDict,
  ("argparse", "Namespace"): argparse.Namespace,
  ("torch._utils", "_rebuild_tensor_v2"): _rebuild_tensor,
  ("torch._utils", "_rebuild_parameter"): _rebuild_parameter,
  ("builtins", "set"): set,
  ("builtins", "frozenset"): frozenset,
  ("builtins", "slice"): slice,
  ("_codecs", "encode"): lambda text, encoding="latin1": text.encode(encoding),
}


class _Unpickler(pickle.Unpickler):
  def __init__(self, data: bytes, archive: zipfile.ZipFile, prefix: str):
    super().__init__(io.BytesIO(data))
    self._archive, self._prefix, self._storages = archive, prefix, {}

  def find_class(self, module: str, name: str):
    if (module, name) in _ALLOWED:
      return _ALLOWED[(module, name)]
    if module == "torch" and name in _STORAGE_DTYPES:
      return _StorageType(name)
    return type(name, (Opaque,), {"qualname": f"{module}.{name}"})

  def persistent_load(self, pid):
    kind, storage_type, key, _, _ = pid
    if kind != "storage":
      raise pickle.UnpicklingError(f"unsupported persistent id {kind!r}")
    if key not in self._storages:
      raw = self._archive.read(f"{self._prefix}data/{key}")
      self._storages[key] = np.frombuffer(raw, dtype=storage_type.dtype.newbyteorder("<"))
    return self._storages[key]


def load(path) -> Any:
  """Reads a `.pth` written by torch.save (zip format): tensors come back as numpy arrays."""
  if not os.path.isfile(path):
    raise FileNotFoundError(f"{path}: no such file")
  if not zipfile.is_zipfile(path):
    raise ValueError(
      f"{path}: not a zip-format PyTorch file (files from torch < 1.6 need torch to read; "
      "re-save them with torch.save(..., _use_new_zipfile_serialization=True))"
    )
  with zipfile.ZipFile(path) as archive:
    pickles = [n for n in archive.namelist() if n.endswith("data.pkl")]
    if len(pickles) != 1:
      raise ValueError(f"{path}: expected one data.pkl, found {pickles}")
    prefix = pickles[0][: -len("data.pkl")]
    if prefix + "byteorder" in archive.namelist() and archive.read(prefix + "byteorder") != b"little":
      raise ValueError(f"{path}: big-endian storages are not supported")
    return _Unpickler(archive.read(pickles[0]), archive, prefix).load()


class _Global:
  """Pickled as a bare global reference `module.name` (a torch function or class we cannot import)."""

  def __init__(self, module: str, name: str):
    self.module, self.name = module, name


_REBUILD_TENSOR = _Global("torch._utils", "_rebuild_tensor_v2")


class _Pickler(pickle._Pickler):  # the pure-Python pickler, whose `save` can be extended
  def __init__(self, file):
    super().__init__(file, protocol=2)
    self.storages: list[np.ndarray] = []

  def save(self, obj, save_persistent_id=True):
    if isinstance(obj, _Global):
      self.write(pickle.GLOBAL + f"{obj.module}\n{obj.name}\n".encode())
    elif isinstance(obj, np.ndarray):
      self._save_tensor(obj)
    else:
      super().save(obj, save_persistent_id)

  def _save_tensor(self, array: np.ndarray) -> None:
    array = np.array(array, order="C")  # (np.ascontiguousarray would make 0-d arrays 1-d)
    if array.dtype not in _STORAGE_NAMES:
      raise TypeError(f"cannot save arrays of dtype {array.dtype}")
    key = str(len(self.storages))
    self.storages.append(array)
    storage = ("storage", _Global("torch", _STORAGE_NAMES[array.dtype]), key, "cpu", array.size)
    strides = tuple(s // array.itemsize for s in array.strides)
    self.save(_REBUILD_TENSOR)
    self.save((_PersistentId(storage), 0, array.shape, strides, False, collections.OrderedDict()))
    self.write(pickle.REDUCE)

  def persistent_id(self, obj):
    return obj.pid if isinstance(obj, _PersistentId) else None


class _PersistentId:
  def __init__(self, pid: tuple):
    self.pid = pid


def save(obj: Any, path) -> None:
  """Writes `obj` (dicts, lists, scalars, strings, numpy arrays as tensors) in torch.save's zip format."""
  buffer = io.BytesIO()
  pickler = _Pickler(buffer)
  pickler.dump(obj)
  with zipfile.ZipFile(path, "w", zipfile.ZIP_STORED) as archive:
    archive.writestr("archive/data.pkl", buffer.getvalue())
    archive.writestr("archive/byteorder", "little")
    for key, array in enumerate(pickler.storages):
      archive.writestr(f"archive/data/{key}", array.astype(array.dtype.newbyteorder("<")).tobytes())
    archive.writestr("archive/version", "3\n")
