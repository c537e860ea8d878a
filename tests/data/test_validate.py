"""Checks of a job's data before its first step: each refusal names the key, or the file, split and sample."""

import numpy as np
import pytest
from ml_collections import ConfigDict

from stars_jax import errors
from stars_jax.data import npz, validate


def _write(path, x_train, y_train, x_test, y_test, classes=4):
  np.savez(path, x_train=x_train, y_train=np.eye(classes)[y_train], x_test=x_test, y_test=np.eye(classes)[y_test])
  return path


def _clips(n, seed=0):
  return np.random.default_rng(seed).standard_normal((n, 8, 150)).astype(np.float32)  # (N, T, 150)


def _data(**changes):
  data = ConfigDict(dict(window=16, train_p_interval=(0.5, 1.0), eval_p_interval=(0.95,), held_out_classes=()))
  data.update(changes)
  return data


def test_a_valid_data_config_passes():
  validate.check_data_config(_data(held_out_classes=(1, 3)), t_patch=4)


@pytest.mark.parametrize(
  ("changes", "message"),
  [
    ({"window": 0}, "data.window=0 must be a positive multiple of model.t_patch=4"),  # ZeroDivisionError today
    ({"window": 18}, "data.window=18 must be a positive multiple"),
    ({"eval_p_interval": (0.0,)}, "data.eval_p_interval=(0.0,) must be one or two increasing fractions"),
    ({"train_p_interval": (1.0, 0.5)}, "data.train_p_interval=(1.0, 0.5)"),
    ({"held_out_classes": (2, 2)}, "data.held_out_classes=(2, 2) must be distinct"),
  ],
)
def test_impossible_data_settings_name_the_key(changes, message):
  with pytest.raises(errors.BadConfig, match=message.replace("(", r"\(").replace(")", r"\)")):
    validate.check_data_config(_data(**changes), t_patch=4)


def test_non_finite_clips_are_found_before_training_naming_the_sample(tmp_path, monkeypatch):
  monkeypatch.setattr(validate, "_SCAN_SAMPLES", 4)  # the bad sample lies in the third chunk
  x = _clips(10)
  x[9, 3, 7] = np.inf
  path = _write(tmp_path / "d.npz", x, np.arange(10) % 4, _clips(4), np.arange(4))
  with pytest.raises(npz.NpzFormatError, match=r"d.npz: x_train: sample 9 holds non-finite"):
    validate.check_content(npz.open_split(path, "train"))
  sub = npz.take(npz.open_split(path, "train"), np.array([2, 9]))  # a view keeps the file's row number
  with pytest.raises(npz.NpzFormatError, match=r"sample 9 holds"):
    validate.check_content(sub)


def test_all_zero_and_empty_splits_are_refused(tmp_path):
  x = _clips(6)
  x[:2] = 0.0
  path = _write(tmp_path / "d.npz", np.zeros((6, 8, 150), np.float32), np.arange(6) % 4, x, np.arange(6) % 4)
  with pytest.raises(npz.NpzFormatError, match=r"x_train: all 6 clips are zero in every frame"):
    validate.check_content(npz.open_split(path, "train"))
  assert validate.check_content(npz.open_split(path, "test")) == 2  # a few zero clips: counted, not refused
  empty = _write(tmp_path / "e.npz", _clips(4), np.arange(4), np.zeros((0, 8, 150), np.float32), np.zeros(0, int))
  with pytest.raises(npz.NpzFormatError, match=r"e.npz: x_test has no samples"):
    validate.check_content(npz.open_split(empty, "test"))


def test_held_out_classes_must_be_in_both_splits(tmp_path):
  path = _write(tmp_path / "d.npz", _clips(8), np.arange(8) % 4, _clips(4), np.array([0, 0, 1, 2]))
  train, test = npz.open_split(path, "train"), npz.open_split(path, "test")
  validate.check_classes(train, test, (2,))
  with pytest.raises(errors.BadInput, match=r"held_out_classes=\(2, 3\): .*d.npz has no test samples of classes \[3\]"):
    validate.check_classes(train, test, (2, 3))
  with pytest.raises(errors.BadConfig, match=r"has classes 0..3 only"):
    validate.check_classes(train, test, (4,))
