"""Memory-mapped npz reader: values equal np.load's; layout errors name the file, key and sample."""

import pathlib

import numpy as np
import pytest

from stars_jax.data import npz

NUM_CLASSES = 5


def _make_arrays(n: int, t: int = 300, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
  rng = np.random.default_rng(seed)
  x = rng.standard_normal((n, t, 150)).astype(np.float32)  # (N, T, 150)
  y = np.eye(NUM_CLASSES)[np.arange(n) % NUM_CLASSES]  # (N, C) float64 one-hot
  return x, y


@pytest.fixture(scope="module")
def npz_path(tmp_path_factory) -> pathlib.Path:
  path = tmp_path_factory.mktemp("npz") / "skel.npz"
  x_train, y_train = _make_arrays(37)
  x_test, y_test = _make_arrays(11, seed=1)
  np.savez(path, x_train=x_train, y_train=y_train, x_test=x_test, y_test=y_test)
  return path


@pytest.mark.parametrize("split,n", [("train", 37), ("test", 11)])
def test_open_split_is_memmap_and_matches_np_load(npz_path, split, n):
  s = npz.open_split(npz_path, split)
  ref = np.load(npz_path)
  assert isinstance(s.x, np.memmap)
  assert not s.x.flags.writeable
  assert s.x.shape == (n, 300, 150) and s.x.dtype == np.float32
  np.testing.assert_array_equal(s.x, ref[f"x_{split}"])
  np.testing.assert_array_equal(s.labels, np.arange(n) % NUM_CLASSES)
  assert s.labels.dtype == np.int32
  assert s.num_classes == NUM_CLASSES and len(s) == n and s.split == split
  assert s.path == npz_path


def test_fortran_order_member(tmp_path):
  x, y = _make_arrays(3, t=7)
  path = tmp_path / "f.npz"
  np.savez(path, x_train=np.asfortranarray(x), y_train=y)
  np.testing.assert_array_equal(npz.open_split(path, "train").x, x)


def test_missing_file(tmp_path):
  path = tmp_path / "nope.npz"
  with pytest.raises(FileNotFoundError, match="nope.npz"):
    npz.open_split(path, "train")


def test_bad_split_name(npz_path):
  with pytest.raises(ValueError, match="split"):
    npz.open_split(npz_path, "val")


def test_missing_key_lists_keys(tmp_path):
  x, y = _make_arrays(3, t=5)
  path = tmp_path / "only_train.npz"
  np.savez(path, x_train=x, y_train=y)
  with pytest.raises(KeyError) as e:
    npz.open_split(path, "test")
  msg = str(e.value)
  assert "only_train.npz" in msg and "'x_test'" in msg and "x_train" in msg and "y_train" in msg


def test_compressed_member_rejected(tmp_path):
  x, y = _make_arrays(3, t=5)
  path = tmp_path / "comp.npz"
  np.savez_compressed(path, x_train=x, y_train=y)
  with pytest.raises(ValueError, match=r"comp\.npz.*x_train.*np\.savez, not np\.savez_compressed"):
    npz.open_split(path, "train")


def test_not_a_zip(tmp_path):
  path = tmp_path / "junk.npz"
  path.write_bytes(b"not a zip file at all")
  with pytest.raises(ValueError, match="junk.npz"):
    npz.open_split(path, "train")


@pytest.mark.parametrize(
  "x,pattern",
  [
    (np.zeros((3, 5), np.float32), r"'x_train' has shape \(3, 5\)"),
    (np.zeros((3, 5, 149), np.float32), r"'x_train' has shape \(3, 5, 149\)"),
    (np.zeros((3, 5, 150), np.float64), r"'x_train' has dtype float64"),
  ],
)
def test_bad_x_layout(tmp_path, x, pattern):
  path = tmp_path / "bad_x.npz"
  np.savez(path, x_train=x, y_train=np.eye(NUM_CLASSES)[:3])
  with pytest.raises(ValueError, match=r"bad_x\.npz.*" + pattern):
    npz.open_split(path, "train")


def test_label_count_mismatch(tmp_path):
  x, y = _make_arrays(4, t=5)
  path = tmp_path / "count.npz"
  np.savez(path, x_train=x, y_train=y[:3])
  with pytest.raises(ValueError, match=r"count\.npz.*'y_train' has 3 labels but 'x_train' has 4"):
    npz.open_split(path, "train")


def test_labels_must_be_2d(tmp_path):
  x, _ = _make_arrays(4, t=5)
  path = tmp_path / "flat.npz"
  np.savez(path, x_train=x, y_train=np.arange(4))
  with pytest.raises(ValueError, match=r"flat\.npz.*'y_train'.*one-hot"):
    npz.open_split(path, "train")


@pytest.mark.parametrize("bad_row,row", [(2, np.zeros(NUM_CLASSES)), (1, np.array([1, 0, 1, 0, 0.0]))])
def test_non_one_hot_row_named(tmp_path, bad_row, row):
  x, y = _make_arrays(6, t=5)
  y[bad_row] = row
  y[4] = 0  # a later bad row must not be the one reported
  path = tmp_path / "hot.npz"
  np.savez(path, x_train=x, y_train=y)
  with pytest.raises(ValueError, match=rf"hot\.npz.*'y_train' row {bad_row} \(sample {bad_row}\)"):
    npz.open_split(path, "train")
