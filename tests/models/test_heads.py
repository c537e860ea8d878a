"""STARS head (SPEC §4.2): parameter layout, PyTorch BatchNorm1d statistics, and SyncBatchNorm-style sharding."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.sharding import NamedSharding
from jax.sharding import PartitionSpec as P

from stars_jax.models.heads import BatchNorm, PretrainHead
from stars_jax.sharding import make_mesh

EPS = 1e-5


def _shapes(tree):
  return jax.tree.map(lambda x: tuple(x.shape), tree)


def _bn_variables(rng, features, updates_per_step=1):
  """BatchNorm variables with non-trivial running statistics."""
  bn = BatchNorm(updates_per_step=updates_per_step)
  variables = bn.init(jax.random.PRNGKey(0), jnp.zeros((4, features)), train=True)
  stats = {
    "mean": jnp.asarray(rng.normal(size=features), jnp.float32),
    "var": jnp.asarray(rng.uniform(0.5, 2.0, size=features), jnp.float32),
  }
  return bn, {"params": variables["params"], "batch_stats": stats}


def test_pretrain_head_parameter_tree_matches_official_layout():
  head = PretrainHead(hidden_dim=16)
  variables = head.init(jax.random.PRNGKey(0), jnp.zeros((4, 8)), train=True)
  assert set(variables) == {"params", "batch_stats"}
  assert _shapes(variables["params"]) == {
    "projector_0": {"scale": (8,), "bias": (8,)},
    "predictor_0": {"kernel": (8, 16)},  # no bias
    "predictor_1": {"scale": (16,), "bias": (16,)},
    "predictor_3": {"kernel": (16, 8), "bias": (8,)},
  }
  assert _shapes(variables["batch_stats"]) == {
    "projector_0": {"mean": (8,), "var": (8,)},
    "predictor_1": {"mean": (16,), "var": (16,)},
  }
  # Initialisation does not move the running statistics (PyTorch: zeros and ones).
  for stats in variables["batch_stats"].values():
    np.testing.assert_array_equal(stats["mean"], 0.0)
    np.testing.assert_array_equal(stats["var"], 1.0)
  p, z = head.apply(variables, jnp.ones((3, 8)), train=False)
  assert p.shape == z.shape == (3, 8) and p.dtype == z.dtype == jnp.float32


def test_batchnorm_train_normalises_with_biased_variance_and_updates_like_pytorch():
  rng = np.random.default_rng(0)
  bn, variables = _bn_variables(rng, 5)
  x = rng.normal(loc=3.0, scale=2.0, size=(6, 5)).astype(np.float32)
  y, new = bn.apply(variables, jnp.asarray(x), train=True, mutable=["batch_stats"])
  scale, bias = (np.asarray(variables["params"][k]) for k in ("scale", "bias"))
  mean, var_biased, var_unbiased = x.mean(0), x.var(0), x.var(0, ddof=1)
  np.testing.assert_allclose(y, (x - mean) / np.sqrt(var_biased + EPS) * scale + bias, rtol=1e-5, atol=1e-5)
  old = {k: np.asarray(v) for k, v in variables["batch_stats"].items()}
  np.testing.assert_allclose(new["batch_stats"]["mean"], 0.9 * old["mean"] + 0.1 * mean, rtol=1e-5)
  np.testing.assert_allclose(new["batch_stats"]["var"], 0.9 * old["var"] + 0.1 * var_unbiased, rtol=1e-5)


def test_batchnorm_two_updates_per_step_compound_the_momentum():
  rng = np.random.default_rng(1)
  bn, variables = _bn_variables(rng, 4, updates_per_step=2)
  x = rng.normal(loc=-1.0, size=(8, 4)).astype(np.float32)
  _, new = bn.apply(variables, jnp.asarray(x), train=True, mutable=["batch_stats"])
  old = {k: np.asarray(v) for k, v in variables["batch_stats"].items()}
  np.testing.assert_allclose(new["batch_stats"]["mean"], 0.81 * old["mean"] + 0.19 * x.mean(0), rtol=1e-5)
  np.testing.assert_allclose(new["batch_stats"]["var"], 0.81 * old["var"] + 0.19 * x.var(0, ddof=1), rtol=1e-5)


def test_pretrain_head_passes_updates_per_step_to_both_batchnorms():
  rng = np.random.default_rng(2)
  head = PretrainHead(hidden_dim=16, bn_updates_per_step=2)
  variables = head.init(jax.random.PRNGKey(0), jnp.zeros((4, 8)), train=True)
  h = rng.normal(loc=2.0, size=(6, 8)).astype(np.float32)
  _, new = head.apply(variables, jnp.asarray(h), train=True, mutable=["batch_stats"])
  np.testing.assert_allclose(new["batch_stats"]["projector_0"]["mean"], 0.19 * h.mean(0), rtol=1e-5)
  assert not np.allclose(new["batch_stats"]["predictor_1"]["var"], 1.0)


def test_batchnorm_eval_uses_running_statistics():
  rng = np.random.default_rng(3)
  bn, variables = _bn_variables(rng, 5)
  x = rng.normal(size=(3, 5)).astype(np.float32)
  y = bn.apply(variables, jnp.asarray(x), train=False)
  stats, params = variables["batch_stats"], variables["params"]
  want = (x - np.asarray(stats["mean"])) / np.sqrt(np.asarray(stats["var"]) + EPS) * np.asarray(params["scale"])
  np.testing.assert_allclose(y, want + np.asarray(params["bias"]), rtol=1e-5, atol=1e-6)
  # Each row is normalised independently of the others in eval mode.
  np.testing.assert_allclose(bn.apply(variables, jnp.asarray(x[:1]), train=False), y[:1], rtol=1e-6)


@pytest.mark.parametrize("updates_per_step", [1, 2])
def test_batchnorm_sharded_batch_uses_global_statistics(updates_per_step):
  rng = np.random.default_rng(4)
  bn, variables = _bn_variables(rng, 4, updates_per_step)
  # Each device's pair of rows has its own offset, so per-device statistics would differ from global ones.
  x = (rng.normal(size=(16, 4)) + np.repeat(np.arange(8), 2)[:, None] * 3.0).astype(np.float32)
  apply = jax.jit(lambda v, x: bn.apply(v, x, train=True, mutable=["batch_stats"]))
  y_one, new_one = apply(variables, jnp.asarray(x))
  mesh = make_mesh()
  assert mesh.size == 8
  x_sharded = jax.device_put(jnp.asarray(x), NamedSharding(mesh, P("data")))
  assert len(x_sharded.sharding.device_set) == 8
  y_sharded, new_sharded = apply(jax.device_put(variables, NamedSharding(mesh, P())), x_sharded)
  np.testing.assert_allclose(y_sharded, y_one, rtol=1e-5, atol=1e-6)
  for k in ("mean", "var"):
    np.testing.assert_allclose(new_sharded["batch_stats"][k], new_one["batch_stats"][k], rtol=1e-5)
  # And those are the global-batch statistics, not an average of per-device ones.
  keep = 0.9**updates_per_step
  old_var = np.asarray(variables["batch_stats"]["var"])
  np.testing.assert_allclose(
    new_sharded["batch_stats"]["var"], keep * old_var + (1 - keep) * x.var(0, ddof=1), rtol=1e-5
  )
  per_device_var = x.reshape(8, 2, 4).var(1, ddof=1).mean(0)
  assert not np.allclose(x.var(0, ddof=1), per_device_var, rtol=0.1)
