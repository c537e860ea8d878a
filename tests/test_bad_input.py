"""One error boundary for every command (issue 28): the user's input or setting ends in one line naming it, exit 2;
a real bug keeps its traceback; what a job will read is checked before its first step."""

import os
import pathlib
import subprocess
import sys
import types

import ml_collections
import numpy as np
import pytest

from stars_jax import config_lib, errors
from stars_jax import main as main_module
from stars_jax.data import npz
from stars_jax.evaluate import preflight
from stars_jax.interop import import_torch, pth
from stars_jax.pipeline import steps as pipeline_steps
from stars_jax.train import guards

REPO = pathlib.Path(__file__).resolve().parents[1]


def _tiny(tmp_path, **data) -> ml_collections.ConfigDict:
  config = config_lib.load_config(str(REPO / "configs" / "synthetic.py:tiny"))
  config.data.synthetic.dir = str(tmp_path / "synthetic")
  config.data.update(data)
  return config


def _probe(tmp_path, **data) -> ml_collections.ConfigDict:
  """The job config of the tiny main job's probe step: what the pipeline's plan checks before the first step."""
  steps = pipeline_steps.resolve(_tiny(tmp_path, **data), tmp_path / "run")
  return next(s.config for s in steps if s.name == "probe")


def _npz(path, train_labels, test_labels, classes=6, zero_train=False):
  rng = np.random.default_rng(0)

  def clips(n):
    return np.zeros((n, 32, 150), np.float32) if zero_train else rng.standard_normal((n, 32, 150)).astype(np.float32)

  np.savez(
    path,
    x_train=clips(len(train_labels)),
    y_train=np.eye(classes)[train_labels],
    x_test=rng.standard_normal((len(test_labels), 32, 150)).astype(np.float32),
    y_test=np.eye(classes)[test_labels],
  )
  return str(path)


def test_window_zero_is_one_line_and_exit_2(tmp_path):
  """ZeroDivisionError in the model's reshape after a 50-line traceback today."""
  env = {k: v for k, v in os.environ.items() if k != "XLA_FLAGS"}
  proc = subprocess.run(
    [
      sys.executable,
      "-m",
      "stars_jax.main",
      "--config=configs/synthetic.py:tiny",
      f"--workdir={tmp_path / 'run'}",
      f"--config.data.synthetic.dir={tmp_path / 'data'}",
      "--config.data.window=0",
    ],
    env=env,
    cwd=REPO,
    capture_output=True,
    text=True,
    timeout=300,
  )
  assert proc.returncode == 2, proc.stderr[-3000:]
  assert "data.window=0 must be a positive multiple of model.t_patch=4" in proc.stderr
  assert "Traceback" not in proc.stderr
  assert not (tmp_path / "data").exists()  # refused before the dataset is even generated


def test_settings_are_refused_before_anything_runs(tmp_path):
  with pytest.raises(errors.BadConfig, match=r"job='bogus'; choose one of"):
    main_module._checked_run(ml_collections.ConfigDict({"job": "bogus"}), tmp_path / "run")
  (tmp_path / "file").write_text("")
  with pytest.raises(errors.BadInput, match=r"--workdir=.*file: a file stands in its path"):
    main_module._checked_run(_tiny(tmp_path), tmp_path / "file")
  group = ml_collections.ConfigDict(_tiny(tmp_path).steps.stage1.pretrain.to_dict())
  group.batch_size = -4
  with pytest.raises(errors.BadConfig, match=r"pretrain.batch_size=-4 must be a positive multiple"):
    guards.check_group(group, "pretrain")


def test_an_unwritable_workdir_is_refused_naming_it(tmp_path, monkeypatch):
  """A workdir that cannot be created (no permission, a read-only file system) is one line naming it."""
  config = _tiny(tmp_path)

  def refuse(self, *args, **kwargs):
    raise PermissionError(13, "Permission denied", str(self))

  monkeypatch.setattr(pathlib.Path, "mkdir", refuse)
  with pytest.raises(errors.BadInput, match=r"--workdir=.*run: cannot create it \(Permission denied\)"):
    main_module._checked_run(config, tmp_path / "run")


def test_a_missing_config_file_given_with_overrides_names_the_file():
  """Read "has no key 'pretrain.epochs'; the config has no keys" today."""
  problem = main_module.unknown_override(["--config=configs/nowhere.py", "--config.pretrain.epochs=1"])
  assert problem == "--config=configs/nowhere.py: no config file configs/nowhere.py"
  problem = main_module.unknown_override([f"--config={REPO / 'configs' / 'mamp.py'}:bogus"])
  assert "argument 'bogus' is unknown" in problem and "\n" not in problem


def _fake_command(monkeypatch, error: BaseException) -> None:
  def fails(argv):
    raise error

  monkeypatch.setitem(sys.modules, "fake_command", types.SimpleNamespace(main=fails))
  monkeypatch.setitem(main_module._SUBCOMMANDS, "fake", "fake_command")
  monkeypatch.setattr(sys, "argv", ["stars-jax", "fake"])


def test_a_subcommands_input_error_is_one_line_and_a_bug_keeps_its_traceback(monkeypatch, capsys):
  _fake_command(monkeypatch, npz.NpzFormatError("data.npz: 'x_train' has dtype float64; expected float32"))
  with pytest.raises(SystemExit) as exit_:
    main_module.run()
  assert exit_.value.code == 2
  assert capsys.readouterr().err == "stars-jax fake: data.npz: 'x_train' has dtype float64; expected float32\n"
  _fake_command(monkeypatch, RuntimeError("a bug"))
  with pytest.raises(RuntimeError, match="a bug"):
    main_module.run()


def test_import_torch_of_another_models_zip_pth_names_the_file(tmp_path, capsys):
  """KeyError: 'temp_embed' today."""
  path = tmp_path / "resnet.pth"
  pth.save({"model": {"conv1.weight": np.zeros((4, 3, 3, 3), np.float32)}}, path)
  assert import_torch.main([str(path), "--out", str(tmp_path / "out")]) == 2
  err = capsys.readouterr().err.strip().splitlines()
  assert len(err) == 1 and f"{path}: a mamp-style checkpoint without the MAMP encoder weights" in err[0]
  assert "'temp_embed'" in err[0] and "conv1.weight" in err[0]


def test_held_out_classes_missing_from_the_test_split_are_refused_before_training(tmp_path):
  """Few-shot raised on an empty array after both training stages today."""
  path = _npz(tmp_path / "d.npz", np.arange(24) % 6, np.arange(12) % 4)  # held-out 1 and 4: no test clip of 4
  with pytest.raises(errors.BadInput, match=r"held_out_classes=\(1, 4\): .*d.npz has no test samples of classes \[4\]"):
    preflight.check_inputs(_probe(tmp_path, path=path))


def test_an_empty_or_all_zero_split_is_refused_before_training(tmp_path):
  """prepare's "60 train / 0 test" file trained a whole stage and died in evaluation today; all-zero training
  clips trained and reported with exit 0."""
  empty = _npz(tmp_path / "e.npz", np.arange(24) % 6, np.zeros(0, int))
  with pytest.raises(npz.NpzFormatError, match=r"e.npz: x_test has no samples"):
    preflight.check_inputs(_probe(tmp_path, path=empty))
  zero = _npz(tmp_path / "z.npz", np.arange(24) % 6, np.arange(12) % 6, zero_train=True)
  with pytest.raises(npz.NpzFormatError, match=r"z.npz: x_train: all 24 clips are zero"):
    preflight.check_inputs(_probe(tmp_path, path=zero))


def test_a_small_valid_split_is_accepted_and_its_skipped_protocols_named(tmp_path):
  path = _npz(tmp_path / "d.npz", np.arange(24) % 6, np.arange(6))  # one test clip per class
  skips = preflight.check_inputs(_probe(tmp_path, path=path))
  assert set(skips) == {"silhouette", "oneshot"}  # 4 seen classes in 4 clips; held-out 1 and 4 one clip each
