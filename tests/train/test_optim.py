"""The optimizer module (SPEC §3.1-3.2, §3.4, §4.6): schedule, layer ids and scales, parameter labels, decay
groups, per-tensor clipping, frozen tensors, one AdamW step against PyTorch's formula."""

import math

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
import recipe_files
from recipe_files import mamp, stars

from stars_jax import masking
from stars_jax.models.mamp import MAMP
from stars_jax.models.stars import STARS
from stars_jax.pytree import path_name
from stars_jax.train import optim, schedules
from stars_jax.train.optim import FROZEN

OPT = dict(b1=0.9, b2=0.999, eps=1e-8)


@pytest.mark.parametrize("step", [0, 1, 150, 313 * 20 - 1, 313 * 20, 313 * 100 + 7, 313 * 400 - 1])
def test_warmup_half_cosine_matches_official_formula(step):
  sched = schedules.warmup_half_cosine(base_lr=1e-3, min_lr=5e-4, warmup_epochs=20, epochs=400, steps_per_epoch=313)
  e = step / 313
  want = 1e-3 * e / 20 if e < 20 else 5e-4 + 5e-4 * 0.5 * (1 + math.cos(math.pi * (e - 20) / 380))
  np.testing.assert_allclose(float(sched(step)), want, rtol=1e-5, atol=1e-12)


def test_make_schedule_reads_the_group():
  group = mamp.pretrain_group("ntu60")
  sched = optim.make_schedule(group, steps_per_epoch=313)
  assert float(sched(0)) == 0.0 and float(sched(313 * 20)) == pytest.approx(1e-3)
  assert float(sched(313 * 400)) == pytest.approx(5e-4)
  tuning = stars.stars_group("merged", 0.45, lr=1e-3)
  assert float(optim.make_schedule(tuning, 10)(123)) == pytest.approx(1e-3)
  tuning.schedule.name = "step"
  with pytest.raises(ValueError, match="schedule.name"):
    optim.make_schedule(tuning, 10)


@pytest.mark.parametrize(
  "decay, base, blocks",
  [
    (0.45, 1e-3, {7: 4.5e-4, 6: 2.025e-4, 5: 9.1125e-5, 4: 4.100625e-5}),  # NTU-60
    (0.40, 1e-3, {7: 4.0e-4, 6: 1.6e-4, 5: 6.4e-5, 4: 2.56e-5}),  # NTU-120
    (0.35, 1e-4, {7: 3.5e-5, 6: 1.225e-5, 5: 4.2875e-6, 4: 1.500625e-6}),  # PKU-MMD II
  ],
)
def test_layer_scales_reproduce_stars_table(decay, base, blocks):
  scales = optim.layer_scales(depth=8, layer_decay=decay)
  assert set(scales) == {f"layer_{i}" for i in range(11)}
  for k, lr in blocks.items():
    assert base * scales[f"layer_{k + 1}"] == pytest.approx(lr, rel=1e-9), k
  assert base * scales["layer_9"] == pytest.approx(base, rel=1e-9)  # final norm
  assert base * scales["layer_10"] == pytest.approx(base, rel=1e-9)  # head
  assert scales["layer_0"] == pytest.approx(decay**9, rel=1e-9)  # embeddings


def test_layer_scales_reproduce_finetune_table():
  """util/lr_decay.py with depth 8, decay 0.8 (SPEC §3.4): 0.8^9 = 0.1342 ... 0.8^0 = 1."""
  scales = optim.layer_scales(depth=8, layer_decay=0.8)
  assert scales["layer_0"] == pytest.approx(0.134217728)
  assert scales["layer_1"] == pytest.approx(0.16777216)
  assert scales["layer_9"] == scales["layer_10"] == 1.0


def test_labels_on_stars_tree_freeze_the_lower_half():
  model = STARS(
    dim=16, depth=4, num_heads=2, num_frames=8, num_joints=25, t_patch=4, head_hidden_dim=32, first_tuned_layer=3
  )
  # The parameter tree of model.init, without running the (slow on CPU) initialisers.
  params = jax.eval_shape(lambda: model.init(jax.random.PRNGKey(0), jnp.zeros((2, 2, 8, 25, 3)), train=False))["params"]
  labels = optim.param_labels(params, depth=4, first_tuned_layer=model.first_tuned_layer)
  assert jax.tree.structure(labels) == jax.tree.structure(params)
  want = {
    "joints_embed": FROZEN,
    "temp_embed": FROZEN,
    "pos_embed": FROZEN,
    "blocks_0": FROZEN,
    "blocks_1": FROZEN,
    "blocks_2": "layer_3",
    "blocks_3": "layer_4",
    "norm": "layer_5",
    "head": "layer_6",
  }
  assert set(params) == set(want)
  flat = jax.tree_util.tree_flatten_with_path(labels)[0]
  assert len(flat) > len(want)
  for path, label in flat:
    name = path_name(path)
    assert label == want[name.split("/")[0]], name
  assert set(optim.layer_scales(4, 0.45)) >= set(jax.tree.leaves(labels)) - {FROZEN}
  # With nothing frozen the embeddings form layer 0.
  assert optim.param_labels(params, depth=4)["pos_embed"] == "layer_0"


def test_pretraining_decoder_and_mask_token_are_the_head_layer():
  assert optim.layer_id("decoder_blocks_0/attn/qkv/kernel", 4) == 6
  assert optim.layer_id("mask_token", 4) == 6
  assert optim.layer_id("blocks_11/attn/qkv/kernel", 12) == 12


def test_parameter_outside_every_layer_raises():
  with pytest.raises(ValueError, match="cls_token"):
    optim.param_labels({"norm": {"scale": jnp.ones(2)}, "cls_token": jnp.ones(2)}, depth=4)


def test_weight_decay_groups_follow_timm():
  model = MAMP(dim=32, depth=1, num_heads=4, decoder_dim=32, decoder_depth=1, decoder_heads=4, num_frames=16)
  x = jnp.zeros((1, 16, 25, 3))
  params = jax.eval_shape(
    model.init,
    jax.random.PRNGKey(0),
    x,
    masking.sample_masking(jax.random.PRNGKey(0), x, t_patch=4, mask_ratio=0.9, tau=0.8),
  )["params"]
  flat = {path_name(p): v for p, v in jax.tree_util.tree_flatten_with_path(optim.weight_decay_mask(params))[0]}
  for name in (
    "temp_embed",
    "pos_embed",
    "mask_token",
    "decoder_pos_embed",
    "blocks_0/attn/qkv/kernel",
    "joints_embed/proj/kernel",
    "decoder_pred/kernel",
  ):
    assert flat[name], name
  for name in ("blocks_0/attn/qkv/bias", "blocks_0/norm1/scale", "norm/bias", "joints_embed/proj/bias"):
    assert not flat[name], name


def test_clip_by_tensor_norm_clips_each_tensor_separately():
  grads = {"big": jnp.array([[3.6, 0.0], [0.0, 4.8]]), "small": jnp.array([0.6, 0.0, 0.8])}  # norms 6 and 1
  tx = optim.clip_by_tensor_norm(3.0)
  clipped, _ = tx.update(grads, tx.init(grads))
  np.testing.assert_allclose(clipped["big"], np.asarray(grads["big"]) * 3.0 / (6.0 + 1e-6), rtol=1e-6)
  np.testing.assert_allclose(np.linalg.norm(clipped["big"]), 3.0, rtol=1e-6)
  np.testing.assert_array_equal(clipped["small"], grads["small"])
  glob = optax.clip_by_global_norm(3.0)
  global_clipped, _ = glob.update(grads, glob.init(grads))
  assert not np.allclose(global_clipped["small"], grads["small"])  # a global norm would shrink it too
  assert not np.allclose(global_clipped["big"], clipped["big"])


def _small_tree():
  """A depth-2 encoder + head tree; pos_embed contains signed zeros."""
  rng = np.random.default_rng(0)
  f = lambda *shape: jnp.asarray(rng.normal(size=shape), jnp.float32)  # noqa: E731
  pos = np.asarray(f(1, 4, 3)).copy()
  pos[0, :2] = -0.0
  return {
    "pos_embed": jnp.asarray(pos),
    "blocks_0": {"fc": {"kernel": f(3, 3), "bias": f(3)}},
    "blocks_1": {"fc": {"kernel": f(3, 3), "bias": f(3)}},
    "norm": {"scale": f(3), "bias": f(3)},
    "head": {"kernel": f(3, 2)},
  }


def _opt_state_floats(opt_state):
  return sum(x.size for x in jax.tree.leaves(opt_state) if jnp.issubdtype(x.dtype, jnp.floating))


@pytest.mark.parametrize("clip, jit", [("per_tensor", False), ("global", False), ("none", False), ("per_tensor", True)])
def test_frozen_tensors_have_no_state_and_stay_bit_identical(clip, jit):
  params = _small_tree()
  labels = optim.param_labels(params, depth=2, first_tuned_layer=2)  # pos_embed and blocks_0 frozen
  assert labels["blocks_0"]["fc"]["kernel"] == FROZEN and labels["blocks_1"]["fc"]["kernel"] == "layer_2"
  o = recipe_files.optim(
    lr=1e-2, **OPT, weight_decay=0.05, decay_groups="all", layer_decay=0.5, clip=clip, clip_norm=1.0
  )
  tx = optim.make_optimizer(o, optax.constant_schedule(1e-2), labels, depth=2)
  opt_state = tx.init(params)
  tuned = [p for p, lab in zip(jax.tree.leaves(params), jax.tree.leaves(labels)) if lab != FROZEN]
  assert _opt_state_floats(opt_state) == 2 * sum(p.size for p in tuned)  # Adam moments for tuned tensors only

  def step(params, opt_state, grads):
    updates, opt_state = tx.update(grads, opt_state, params)
    return optim.apply_updates(params, updates, labels), opt_state

  step = jax.jit(step) if jit else step  # eagerly, params + 0.0 would turn -0.0 into +0.0

  new = params
  for i in range(3):
    grads = jax.tree.map(lambda p, g=0.5 + i: jnp.full_like(p, g), params)  # non-zero on every leaf
    new, opt_state = step(new, opt_state, grads)
  for old_leaf, new_leaf, label in zip(jax.tree.leaves(params), jax.tree.leaves(new), jax.tree.leaves(labels)):
    if label == FROZEN:
      np.testing.assert_array_equal(new_leaf, old_leaf)
      np.testing.assert_array_equal(np.signbit(new_leaf), np.signbit(old_leaf))
    else:
      assert np.all(np.asarray(new_leaf) != np.asarray(old_leaf)), label
  assert np.signbit(np.asarray(new["pos_embed"])[0, :2]).all()  # -0.0 survives


@pytest.mark.parametrize("decay_groups", ["all", "no_1d"])
def test_one_step_matches_pytorch_adamw_with_layer_scales(decay_groups):
  params = _small_tree()
  labels = optim.param_labels(params, depth=2, first_tuned_layer=1)  # only pos_embed frozen
  scales = optim.layer_scales(2, 0.5)  # blocks_0: 0.25, blocks_1: 0.5, norm and head: 1
  lr, wd = 1e-3, 0.01
  o = recipe_files.optim(lr=lr, **OPT, weight_decay=wd, decay_groups=decay_groups, layer_decay=0.5)
  tx = optim.make_optimizer(o, optax.constant_schedule(lr), labels, depth=2)
  rng = np.random.default_rng(1)
  grads = jax.tree.map(lambda p: jnp.asarray(rng.normal(size=p.shape), jnp.float32), params)
  updates, _ = tx.update(grads, tx.init(params), params)
  new = optim.apply_updates(params, updates, labels)
  flat = lambda t: {path_name(k): v for k, v in jax.tree_util.tree_flatten_with_path(t)[0]}  # noqa: E731
  p0, g, p1, lab = flat(params), flat(grads), flat(new), flat(labels)
  checked = set()
  for name, label in lab.items():
    if label == FROZEN:
      continue
    p, gr = np.asarray(p0[name], np.float64), np.asarray(g[name], np.float64)
    group_lr = lr * scales[label]
    decays = decay_groups == "all" or (p.ndim > 1 and not name.endswith("bias"))
    # PyTorch AdamW, step 1: m_hat = g, v_hat = g^2; p <- p - lr wd p - lr g / (|g| + eps). float32 parameters
    # of size ~1 updated by ~1e-3: the float32 result is within a few ulps (1e-7 relative) of this float64 value.
    want = p - group_lr * (gr / (np.abs(gr) + OPT["eps"]) + (wd * p if decays else 0.0))
    np.testing.assert_allclose(p1[name], want, rtol=1e-6, atol=1e-9, err_msg=name)
    checked.add(label)
  assert checked == {"layer_1", "layer_2", "layer_3", "layer_4"}
  np.testing.assert_allclose(scales["layer_1"], 0.25)


def test_sgd_with_momentum_and_decay():
  """The linear probe's optimizer: p <- p - lr (g + wd p) on the first step (momentum buffer = g)."""
  params = _small_tree()
  labels = optim.param_labels(params, depth=2, first_tuned_layer=4)  # the head only
  o = recipe_files.optim(name="sgd", lr=0.1, momentum=0.9, weight_decay=0.01, decay_groups="all")
  tx = optim.make_optimizer(o, optax.constant_schedule(0.1), labels, depth=2)
  grads = jax.tree.map(jnp.ones_like, params)
  updates, _ = tx.update(grads, tx.init(params), params)
  new = optim.apply_updates(params, updates, labels)
  want = np.asarray(params["head"]["kernel"]) - 0.1 * (1.0 + 0.01 * np.asarray(params["head"]["kernel"]))
  np.testing.assert_allclose(new["head"]["kernel"], want, rtol=1e-6)
  np.testing.assert_array_equal(new["norm"]["scale"], params["norm"]["scale"])


def test_adamw_decay_is_lr_scaled_and_masked():
  params = {"blocks_0": {"w": jnp.ones((2, 2)), "bias": jnp.ones((2,))}}
  labels = optim.param_labels(params, depth=1)
  tx = optim.make_optimizer(recipe_files.optim(lr=0.1, b2=0.95, weight_decay=0.05), lambda _: 0.1, labels, depth=1)
  zero = jax.tree.map(jnp.zeros_like, params)
  updates, _ = tx.update(zero, tx.init(params), params)
  new = optim.apply_updates(params, updates, labels)["blocks_0"]
  np.testing.assert_allclose(new["w"], 1 - 0.1 * 0.05)  # PyTorch AdamW: p -= lr * wd * p
  np.testing.assert_allclose(new["bias"], 1.0)


@pytest.mark.parametrize("key, value", [("clip", "norm"), ("decay_groups", "none"), ("name", "lamb")])
def test_invalid_optimizer_settings_raise(key, value):
  params = _small_tree()
  o = recipe_files.optim(lr=1e-3, **{key: value})
  with pytest.raises(ValueError, match=f"optim.{key}"):
    optim.make_optimizer(o, optax.constant_schedule(1e-3), optim.param_labels(params, depth=2), depth=2)
