"""The MAMP stage: sharded gradients equal single-device ones, FSDP placement, resume is bit-identical."""

import functools
import logging
import pathlib

import jax
import numpy as np

from stars_jax import config_lib, masking, sharding
from stars_jax.models import factory
from stars_jax.train import pretrain
from stars_jax.train import state as state_lib

CONFIGS = pathlib.Path(__file__).parents[2] / "configs"


def _gradients(config, devices):
  """(loss, gradients) of step 0 on the first batch, computed on a mesh over `devices`."""
  mesh = sharding.make_mesh(devices)
  stage = pretrain.stage(config)
  state, shardings = state_lib.create_sharded(stage.create, mesh, config.sharding)
  x = np.stack([stage.train_split.x[i] for i in range(config.pretrain.batch_size)])
  grad_fn = jax.jit(
    functools.partial(pretrain.gradients, model=factory.mamp(config), config=config),
    in_shardings=(shardings.params, None, None, sharding.batch_sharding(mesh)),
  )
  loss, grads = grad_fn(state.params, state.rng, state.step, sharding.global_batch(x, mesh))
  return float(loss), jax.device_get(grads), state


def test_eight_devices_available():
  assert jax.device_count() == 8, "tests/conftest.py should force 8 CPU devices"


def test_sharded_gradients_equal_single_device_gradients(tiny_config):
  """One device vs eight (batch split over `data`), parameters replicated and FSDP-sharded.

  The devices sum their partial gradients in another order than one device does. In float32 (eps 6e-8) a sum of
  n terms reordered changes by at most ~n·eps·Σ|terms|; here n <= 8 per-device partials of batch-mean terms, so
  every gradient agrees to ~1e-6 of its own size, plus an absolute floor of 1e-6 of the largest gradient for
  leaves whose true gradient is exactly zero (the attention key bias: softmax ignores a per-row constant), whose
  computed value is pure rounding noise. Gradients, not parameters after Adam steps, are compared: Adam turns that
  noise into a full learning-rate step.
  """
  loss1, single, _ = _gradients(tiny_config, jax.devices()[:1])
  floor = 1e-6 * max(float(np.abs(g).max()) for g in jax.tree.leaves(single))
  for fsdp in (False, True):
    tiny_config.sharding.fsdp = fsdp
    tiny_config.sharding.fsdp_min_size = 1
    loss8, sharded, state = _gradients(tiny_config, jax.devices())
    kernel = state.params["blocks_0"]["mlp"]["fc1"]["kernel"]
    assert len({str(s.index) for s in kernel.addressable_shards}) == (8 if fsdp else 1)
    np.testing.assert_allclose(loss1, loss8, rtol=1e-6)
    jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-5, atol=floor), single, sharded)


def test_first_step_loss_is_positive_and_lr_starts_at_zero(tiny_config, tmp_path):
  tiny_config.pretrain.max_steps = 1
  summary = pretrain.train(tiny_config, tmp_path, sharding.make_mesh(jax.devices()[:1])).summary
  first = summary["loss_history"][0]
  assert np.isfinite(first["loss"]) and first["loss"] > 0
  assert first["lr"] == 0.0  # warmup starts at zero, as the official per-iteration schedule


def _losses(summary):
  """The logged history without its timing (clips/s differs between runs)."""
  return [{k: v for k, v in row.items() if k != "clips_per_s"} for row in summary["loss_history"]]


def test_resume_from_checkpoint_is_bit_identical(tiny_config, tmp_path, caplog):
  mesh = sharding.make_mesh()
  tiny_config.pretrain.max_steps = 7
  straight = pretrain.train(tiny_config, tmp_path / "straight", mesh)
  tiny_config.pretrain.max_steps = 3  # an "interrupted" run: stops after the step-3 checkpoint ...
  pretrain.train(tiny_config, tmp_path / "resumed", mesh)
  tiny_config.pretrain.max_steps = 7  # ... and the relaunch continues from it
  with caplog.at_level(logging.INFO):
    resumed = pretrain.train(tiny_config, tmp_path / "resumed", mesh)
  assert int(resumed.state.step) == 7 and "Resumed from step 3" in caplog.text  # did not start over
  assert _losses(resumed.summary) == _losses(straight.summary)  # the whole run's history, as if uninterrupted
  jax.tree.map(
    np.testing.assert_array_equal, jax.device_get(straight.state.params), jax.device_get(resumed.state.params)
  )
  jax.tree.map(
    np.testing.assert_array_equal, jax.device_get(straight.state.opt_state), jax.device_get(resumed.state.opt_state)
  )
  assert straight.summary["loss"] == resumed.summary["loss"]


def test_fsdp_splits_the_wide_config_over_the_data_axis():
  """configs/mamp.py:ntu60_xsub_wide (512 wide, 12 blocks): each of 8 devices holds ~1/8 of the parameters."""
  config = config_lib.load_config(f"{CONFIGS / 'mamp.py'}:ntu60_xsub_wide")
  assert config.sharding.fsdp
  model = factory.mamp(config)
  x = np.zeros((1, config.data.window, 25, 3), np.float32)
  mask = masking.sample_masking(jax.random.PRNGKey(0), x, t_patch=4, mask_ratio=0.9, tau=0.8)
  params = jax.eval_shape(model.init, jax.random.PRNGKey(0), x, mask)["params"]
  mesh = sharding.make_mesh()
  placed = sharding.tree_shardings(params, mesh, sharding.default_rules(True), config.sharding.fsdp_min_size)
  leaves, shardings = jax.tree.leaves(params), jax.tree.leaves(placed)
  total = sum(np.prod(p.shape) for p in leaves)
  per_device = sum(np.prod(s.shard_shape(p.shape)) for p, s in zip(leaves, shardings))
  assert 45e6 < total < 50e6
  assert per_device < 1.05 * total / 8  # only tensors below fsdp_min_size (norms, biases) stay replicated


def test_data_stream_reaches_the_training_step(tiny_config, tmp_path):
  """The same first batch under the joint and the bone stream: different inputs, so different first losses."""
  tiny_config.pretrain.max_steps = 1
  mesh = sharding.make_mesh(jax.devices()[:1])
  losses = {}
  for stream in ("joint", "bone"):
    tiny_config.data.stream = stream
    losses[stream] = pretrain.train(tiny_config, tmp_path / stream, mesh).summary["loss_history"][0]["loss"]
  assert all(np.isfinite(v) for v in losses.values()) and losses["joint"] != losses["bone"]
