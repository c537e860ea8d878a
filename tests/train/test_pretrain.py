"""The MAMP train step: sharded equals single-device, FSDP equals replicated, resume is bit-identical."""
import pathlib

import jax
import numpy as np

from stars_jax import masking, recipes
from stars_jax.data.npz import open_split
from stars_jax.train import pretrain, sharding


def _run_steps(config, devices, steps: int = 2):
  """`steps` train steps from the config's seed on a mesh over `devices`; returns params and metrics."""
  mesh = sharding.make_mesh(devices)
  model = pretrain.build_model(config)
  split = open_split(config.data.path, "train")
  schedule = pretrain.make_schedule(config, 3)
  state, shardings = pretrain.init_state(config, model, schedule, mesh)
  step_fn = pretrain.compile_step(config, model, schedule, mesh, shardings)
  metrics = []
  for i in range(steps):
    x = np.asarray(split.x[i * config.batch_size:(i + 1) * config.batch_size])
    state, m = step_fn(state, pretrain.global_batch(x, mesh))
    metrics.append(jax.device_get(m))
  return jax.device_get(state.params), metrics, state


def test_eight_devices_available():
  assert jax.device_count() == 8, "tests/conftest.py should force 8 CPU devices"


def test_sharded_step_equals_single_device_step(tiny_config):
  """One device vs eight (batch split over `data`), parameters replicated and FSDP-sharded."""
  single, m1, _ = _run_steps(tiny_config, jax.devices()[:1])
  for fsdp in (False, True):
    tiny_config.sharding.fsdp = fsdp
    tiny_config.sharding.fsdp_min_size = 1
    sharded, m8, state = _run_steps(tiny_config, jax.devices())
    kernel = state.params["blocks_0"]["mlp"]["fc1"]["kernel"]
    assert len({str(s.index) for s in kernel.addressable_shards}) == (8 if fsdp else 1)
    for a, b in zip(m1, m8):
      np.testing.assert_allclose(a["loss"], b["loss"], rtol=1e-5)
    # Reduction order differs across devices (float noise ~1e-7 in gradients); Adam rescales tiny gradients of
    # zero-initialised biases to full lr-sized steps, so compare with a tolerance well below one update.
    jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-4, atol=2e-5), single, sharded)


def test_loss_is_positive_and_finite(tiny_config):
  _, metrics, _ = _run_steps(tiny_config, jax.devices()[:1], steps=1)
  assert np.isfinite(metrics[0]["loss"]) and metrics[0]["loss"] > 0
  assert metrics[0]["lr"] == 0.0  # warmup starts at zero, as the official per-iteration schedule


def test_resume_from_checkpoint_is_bit_identical(tiny_config, tmp_path):
  tiny_config.max_steps = 7
  straight = pretrain.train(tiny_config, tmp_path / "straight")
  tiny_config.max_steps = 3  # an "interrupted" run: stops after the step-3 checkpoint ...
  pretrain.train(tiny_config, tmp_path / "resumed")
  tiny_config.max_steps = 7  # ... and the relaunch continues from it
  resumed = pretrain.train(tiny_config, tmp_path / "resumed")
  assert int(resumed["state"].step) == 7
  assert resumed["history"][0]["step"] == 4  # really resumed, did not start over
  jax.tree.map(np.testing.assert_array_equal, jax.device_get(straight["state"].params),
               jax.device_get(resumed["state"].params))
  jax.tree.map(np.testing.assert_array_equal, jax.device_get(straight["state"].opt_state),
               jax.device_get(resumed["state"].opt_state))
  assert straight["history"][-1]["loss"] == resumed["history"][-1]["loss"]


def test_fsdp_splits_the_wide_config_over_the_data_axis():
  """configs/mamp_ntu60_xsub_wide.py (512 wide, 12 blocks): each of 8 devices holds ~1/8 of the parameters."""
  path = pathlib.Path(__file__).parents[2] / "configs" / "mamp_ntu60_xsub_wide.py"
  config = recipes.load_config_file(path)
  assert config.sharding.fsdp
  model = pretrain.build_model(config)
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
