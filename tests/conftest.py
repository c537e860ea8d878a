"""Test setup: eight forced CPU devices so sharded and single-device steps can be compared."""

import os

os.environ.setdefault("XLA_FLAGS", "--xla_force_host_platform_device_count=8")
os.environ.setdefault("JAX_PLATFORMS", "cpu")

import pathlib  # noqa: E402

import numpy as np  # noqa: E402
import pytest  # noqa: E402


def write_tiny_npz(
  path: pathlib.Path, num_train: int = 24, num_test: int = 8, num_classes: int = 3, seed: int = 0
) -> pathlib.Path:
  """A small dataset in the official layout: smooth random trajectories of variable length, zero-padded."""
  rng = np.random.default_rng(seed)

  def split(n):
    x = np.zeros((n, 300, 150), np.float32)
    labels = rng.integers(0, num_classes, n)
    for i in range(n):
      length = int(rng.integers(70, 300))
      walk = np.cumsum(rng.normal(scale=0.01, size=(length, 75)), axis=0) + rng.normal(size=75)
      x[i, :length, :75] = walk + 0.05 * labels[i] * np.sin(np.arange(length) / 7.0)[:, None]
    return x, np.eye(num_classes)[labels]

  x_train, y_train = split(num_train)
  x_test, y_test = split(num_test)
  np.savez(path, x_train=x_train, y_train=y_train, x_test=x_test, y_test=y_test)
  return path


@pytest.fixture
def tiny_npz(tmp_path) -> pathlib.Path:
  """`write_tiny_npz` in the test's directory: 24 training clips of 3 classes, 8 test clips."""
  return write_tiny_npz(tmp_path / "tiny.npz")


@pytest.fixture
def tiny_config(tmp_path):
  """A pretraining config small enough for CPU tests, on a tiny npz dataset."""
  from recipe_files import mamp

  config = mamp.recipe("ntu60", "xsub")
  config.data.path = str(write_tiny_npz(tmp_path / "tiny.npz"))
  config.data.window = 16
  config.data.num_threads = 1
  config.model.update(
    dict(dim=32, depth=2, num_heads=4, decoder_dim=32, decoder_depth=1, decoder_heads=4, compute_dtype="float32")
  )
  config.pretrain.update(dict(batch_size=8, epochs=4, log_every_steps=1, checkpoint_every_steps=3))
  config.pretrain.schedule.warmup_epochs = 1
  return config


@pytest.fixture
def tiny_config_file(tiny_config, tmp_path) -> pathlib.Path:
  """`tiny_config` as a config file, for `--config=` on the command line."""
  path = tmp_path / "tiny_config.py"
  path.write_text(
    f"import ml_collections\n\n\ndef get_config():\n  return ml_collections.ConfigDict({tiny_config.to_dict()!r})\n"
  )
  return path


def pytest_addoption(parser):
  parser.addoption(
    "--torch-reference",
    default=None,
    help="directory with checkouts of the official MAMP/ and STARS/ (runs tests/interop parity tests)",
  )
