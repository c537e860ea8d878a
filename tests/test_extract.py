"""`stars-jax extract`: the streamed npz holds what the in-memory feature path computes, pooled and per token."""

import subprocess
import sys

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from stars_jax import extract, sharding
from stars_jax.data import sources
from stars_jax.evaluate import features
from stars_jax.models import factory
from stars_jax.train import checkpoint
from stars_jax.train.state import TrainState


@pytest.fixture
def encoder_run(tiny_config, tmp_path):
  """A checkpoint directory holding random encoder parameters, as a run's checkpoints/ would."""
  clip = jnp.zeros((1, 2, tiny_config.data.window, tiny_config.model.num_joints, 3))
  params = factory.encoder(tiny_config).init(jax.random.PRNGKey(3), clip)["params"]
  state = TrainState(step=jnp.asarray(7), params=params, batch_stats={}, opt_state=(), rng=jax.random.PRNGKey(0))
  ckpt = checkpoint.Checkpointer(tmp_path / "run" / "checkpoints", keep=1)
  ckpt.save(state, {})
  ckpt.close()
  return tmp_path / "run" / "checkpoints", params


def test_pooled_features_equal_the_in_memory_extraction(tiny_config, encoder_run, tmp_path):
  directory, params = encoder_run
  mesh = sharding.make_mesh()
  out = tmp_path / "feats" / "test.npz"
  summary = extract.extract_features(tiny_config, directory, out, split="test", batch_size=16, mesh=mesh)
  split = sources.open_split(tiny_config.data, "test")
  embed = features.make_embed_fn(factory.encoder(tiny_config), tiny_config.data, mesh)
  expected, labels = features.extract(embed, params, split, 16, mesh)
  with np.load(out) as saved:
    assert sorted(saved.files) == ["features", "labels"]
    np.testing.assert_array_equal(saved["features"], expected)  # the same jitted function on the same batches
    np.testing.assert_array_equal(saved["labels"], labels)
  assert summary["shape"] == (len(split), tiny_config.model.dim)
  assert [p.name for p in out.parent.iterdir()] == ["test.npz"]  # no temporary left behind


def test_per_token_features_pool_to_the_pooled_ones(tiny_config, encoder_run, tmp_path):
  """Per-token output (N, M, TP, V, D); its mean over the n = M * TP * V person-tokens is the pooled feature. Both
  are float32 means of the same values summed in another order, each within n * 2**-24 * max|x| of the exact
  mean, so they differ by at most twice that."""
  directory, _ = encoder_run
  mesh = sharding.make_mesh()
  extract.extract_features(tiny_config, directory, tmp_path / "p.npz", split="train", batch_size=8, mesh=mesh)
  extract.extract_features(
    tiny_config, directory, tmp_path / "t.npz", split="train", per_token=True, batch_size=8, mesh=mesh
  )
  with np.load(tmp_path / "p.npz") as pooled, np.load(tmp_path / "t.npz") as tokens:
    t = tokens["features"]
    assert t.shape == (len(pooled["labels"]), 2, tiny_config.data.window // 4, 25, tiny_config.model.dim)
    n = np.prod(t.shape[1:4])
    bound = 2 * n * 2.0**-24 * float(np.abs(t).max())
    np.testing.assert_allclose(t.mean(axis=(1, 2, 3), dtype=np.float32), pooled["features"], rtol=0, atol=bound)


def test_command_line_writes_the_file_and_names_a_missing_checkpoint(tiny_config_file, encoder_run, tmp_path):
  directory, _ = encoder_run
  cmd = [sys.executable, "-m", "stars_jax.main", "extract", f"--config={tiny_config_file}", "--batch_size=8"]
  ok = subprocess.run(cmd + [f"--init={directory}", f"--out={tmp_path / 'f.npz'}"], capture_output=True, text=True)
  assert ok.returncode == 0, ok.stderr[-2000:]
  assert "wrote" in ok.stdout and (tmp_path / "f.npz").is_file()
  missing = subprocess.run(cmd + [f"--init={tmp_path / 'nowhere'}", "--out=x.npz"], capture_output=True, text=True)
  assert missing.returncode == 2 and "no checkpoint under" in missing.stderr and "extract --init" in missing.stderr
