"""The STARS tuning step and loop: masked updates, frozen layers forward-only, sharding, init, resume."""

import logging

import jax
import numpy as np
import pytest
from recipe_files import stars

from stars_jax import sharding
from stars_jax.data.npz import open_split
from stars_jax.train import pretrain, runner, tune, tuning
from stars_jax.train.optim import FROZEN


@pytest.fixture
def tune_config(tiny_config):
  """tiny_config plus STARS options sized for CPU tests ('merged' recipe, queue not a multiple of the batch)."""
  config = tiny_config
  config.stars = stars.stars_group("merged", 0.45, lr=1e-3)
  config.stars.update(dict(epochs=2, batch_size=8, head_hidden_dim=32, log_every_steps=1))
  config.stars.queue.size = 20
  config.stars.monitor.update(dict(val_fraction=0.25, ks=(1, 3), batch_size=8))
  return config


def _setup(config, devices):
  """(mesh, stage, fresh state, the stage's step jitted as the runner jits it, labels)."""
  mesh = sharding.make_mesh(devices)
  stage = tune.stage(config, mesh)
  state, step_fn = runner.compile_stage(stage, mesh, config.sharding)
  return mesh, stage, state, step_fn, stage.step.keywords["labels"]


def _run_steps(config, devices, steps=3):
  mesh, _, state, step_fn, labels = _setup(config, devices)
  split = open_split(config.data.path, "train")
  initial = jax.device_get(state.params)
  metrics = []
  b = config.stars.batch_size
  for i in range(steps):
    x, ids = np.asarray(split.x[i * b : (i + 1) * b]), np.arange(i * b, (i + 1) * b, dtype=np.int32)
    state, m = step_fn(state, sharding.global_batch({"x": x, "index": ids}, mesh))
    metrics.append(jax.device_get(m))
  return initial, state, metrics, labels


def test_frozen_parameters_are_bit_identical_and_tuned_ones_move(tune_config):
  initial, state, metrics, labels = _run_steps(tune_config, jax.devices()[:1])
  final = jax.device_get(state.params)
  frozen = tuned = 0
  for label, a, b in zip(jax.tree.leaves(labels), jax.tree.leaves(initial), jax.tree.leaves(final)):
    if label == FROZEN:
      np.testing.assert_array_equal(a, b)
      frozen += 1
    else:
      assert not np.array_equal(a, b)
      tuned += 1
  assert frozen and tuned
  assert set(jax.tree.leaves(labels)) == {FROZEN, "layer_2", "layer_3", "layer_4"}  # blocks_1, norm: 3, head
  assert all(np.isfinite(m["loss"]) for m in metrics)
  # 3 batches of 8 through a queue of 20: the ring wrapped, ids 4..23 remain.
  np.testing.assert_array_equal(np.sort(np.asarray(state.queue.ids)), np.arange(4, 24))
  assert int(state.queue.ptr) == 24 % 20


# Leaves with an exactly zero true gradient: Adam turns their float-noise gradient into +-lr steps of random
# sign. The attention key bias (softmax is shift-invariant), the final norm's bias (a constant shift of the
# pooled feature is removed by the projector's BatchNorm) and the projector's bias (a constant shift of z passes
# the bias-free predictor_0 and is removed by the predictor's BatchNorm; z itself is stop-gradient).
_ZERO_GRADIENT = ("['attn']['qkv']['bias']", "['norm']['bias']", "['head']['projector_0']['bias']")


def _assert_params_close(a, b):
  for (path, x), y in zip(jax.tree_util.tree_flatten_with_path(a)[0], jax.tree.leaves(b)):
    name = jax.tree_util.keystr(path)
    if not name.endswith(_ZERO_GRADIENT):
      np.testing.assert_allclose(x, y, rtol=1e-4, atol=2e-5, err_msg=name)


def test_sharded_step_equals_single_device_step(tune_config):
  tune_config.stars.queue.size = 24  # divides over 8 devices
  _, single, m1, _ = _run_steps(tune_config, jax.devices()[:1])
  for queue_sharding in ("replicate", "data"):
    tune_config.stars.queue.sharding = queue_sharding
    _, sharded, m8, _ = _run_steps(tune_config, jax.devices())
    rows = {str(s.index) for s in sharded.queue.embeddings.addressable_shards}
    assert len(rows) == (8 if queue_sharding == "data" else 1)
    # Global-batch reductions run in another order on 8 devices; logits / 0.07 amplify that float noise. From
    # identical parameters (step 1) the losses agree to ~1e-7; later steps carry the +-lr Adam steps of the
    # zero-gradient leaves below (seen: 6e-7 at step 2, up to 1.2e-4 at step 3).
    np.testing.assert_allclose(m1[0]["loss"], m8[0]["loss"], rtol=1e-6)
    for a, b in zip(m1[1:], m8[1:]):
      np.testing.assert_allclose(a["loss"], b["loss"], rtol=5e-4)
    _assert_params_close(jax.device_get(single.params), jax.device_get(sharded.params))
    # Running variances (running means record the random walk of the zero-gradient biases above).
    for (path, x), y in zip(
      jax.tree_util.tree_flatten_with_path(jax.device_get(single.batch_stats))[0],
      jax.tree.leaves(jax.device_get(sharded.batch_stats)),
    ):
      if jax.tree_util.keystr(path).endswith("['var']"):
        np.testing.assert_allclose(x, y, rtol=1e-4)
    np.testing.assert_array_equal(np.asarray(single.queue.ids), np.asarray(sharded.queue.ids))


def _step_flops(config) -> float:
  mesh, _, state, step_fn, _ = _setup(config, jax.devices()[:1])
  batch = sharding.global_batch(
    {
      "x": np.zeros((config.stars.batch_size, 300, 150), np.float32),
      "index": np.arange(config.stars.batch_size, dtype=np.int32),
    },
    mesh,
  )
  return step_fn.lower(state, batch).compile().cost_analysis()["flops"]


def test_frozen_layers_run_forward_only(tune_config):
  """From the compiled step's FLOP count: no backward pass below the lowest tuned block."""
  tune_config.model.depth = 4
  flops = {}
  for recipe in ("second", "merged", "full"):
    tune_config.stars.recipe = recipe
    flops[recipe] = _step_flops(tune_config)
  # Backward costs about twice the forward of the layers it covers: with half the blocks tuned the step
  # is about (1 + 2 * 1/2) / (1 + 2) = 2/3 of full tuning; head-only tuning runs the encoder forward only.
  assert flops["second"] < 0.45 * flops["full"]
  assert 0.55 * flops["full"] < flops["merged"] < 0.8 * flops["full"]


def test_init_from_mamp_checkpoint(tune_config, tmp_path):
  tune_config.pretrain.max_steps = 2
  stage1 = pretrain.train(tune_config, tmp_path / "stage1", sharding.make_mesh(jax.devices()[:1]))
  _, _, state, _, _ = _setup(tune_config, jax.devices()[:1])
  loaded = tuning.load_init(state, tmp_path / "stage1" / "checkpoints")
  mamp = jax.device_get(stage1.state.params)
  for name in ("blocks_0", "norm", "joints_embed", "temp_embed"):
    jax.tree.map(np.testing.assert_array_equal, mamp[name], jax.device_get(loaded.params[name]))
  jax.tree.map(
    np.testing.assert_array_equal, jax.device_get(state.params["head"]), jax.device_get(loaded.params["head"])
  )  # the head stays as initialised
  with pytest.raises(FileNotFoundError, match="stars.init"):
    tuning.load_init(state, tmp_path / "missing")
  assert not (tmp_path / "missing").exists()  # a wrong path is reported, not created
  tune_config.model.dim = 64
  _, _, wrong, _, _ = _setup(tune_config, jax.devices()[:1])
  with pytest.raises(ValueError, match="temp_embed|pos_embed|joints_embed|blocks_0"):
    tuning.load_init(wrong, tmp_path / "stage1" / "checkpoints")


def _losses(summary):
  """The logged history without its timing (clips/s differs between runs)."""
  return [{k: v for k, v in row.items() if k != "clips_per_s"} for row in summary["loss_history"]]


def test_resume_is_bit_identical(tune_config, tmp_path, caplog):
  mesh = sharding.make_mesh()
  tune_config.stars.max_steps = 5
  straight = tune.train(tune_config, tmp_path / "straight", mesh)
  tune_config.stars.max_steps = 2
  tune.train(tune_config, tmp_path / "resumed", mesh)
  tune_config.stars.max_steps = 5
  with caplog.at_level(logging.INFO):
    resumed = tune.train(tune_config, tmp_path / "resumed", mesh)
  assert "Resumed from step 2" in caplog.text
  assert _losses(resumed.summary) == _losses(straight.summary)
  for field in ("params", "batch_stats", "opt_state", "queue"):
    jax.tree.map(
      np.testing.assert_array_equal,
      jax.device_get(getattr(straight.state, field)),
      jax.device_get(getattr(resumed.state, field)),
    )
  assert straight.summary["monitor"] == resumed.summary["monitor"]
  assert straight.summary["monitor"]["best"]["split"] == "val"
  assert straight.summary["selection_split"] == "val"
