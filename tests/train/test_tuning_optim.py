"""STARS partial tuning (SPEC §4.6): layer groups, layer-wise lr decay, per-tensor clipping, frozen tensors."""
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from stars_jax.models.stars import STARS
from stars_jax.train.state import (FROZEN, apply_tuned_updates, clip_by_tensor_norm, layer_lr_scales,
                                   path_name, tuning_labels, tuning_layer, tuning_optimizer)

OPT = dict(b1=0.9, b2=0.999, eps=1e-8)


@pytest.mark.parametrize("decay, base, blocks", [
    (0.45, 1e-3, {7: 4.5e-4, 6: 2.025e-4, 5: 9.1125e-5, 4: 4.100625e-5}),    # NTU-60
    (0.40, 1e-3, {7: 4.0e-4, 6: 1.6e-4, 5: 6.4e-5, 4: 2.56e-5}),              # NTU-120
    (0.35, 1e-4, {7: 3.5e-5, 6: 1.225e-5, 5: 4.2875e-6, 4: 1.500625e-6}),     # PKU-MMD II
])
def test_layer_lr_scales_reproduce_spec_table(decay, base, blocks):
  scales = layer_lr_scales(depth=8, layer_decay=decay)
  assert set(scales) == {f"layer_{i}" for i in range(11)}
  for k, lr in blocks.items():
    assert base * scales[f"layer_{k + 1}"] == pytest.approx(lr, rel=1e-9), k
  assert base * scales["layer_9"] == pytest.approx(base, rel=1e-9)   # final norm
  assert base * scales["layer_10"] == pytest.approx(base, rel=1e-9)  # head
  assert scales["layer_0"] == pytest.approx(decay ** 9, rel=1e-9)    # embeddings


def test_tuning_labels_on_stars_tree_freeze_the_lower_half():
  model = STARS(dim=16, depth=4, num_heads=2, num_frames=8, num_joints=25, t_patch=4, head_hidden_dim=32,
                first_tuned_layer=3)
  # The parameter tree of model.init, without running the (slow on CPU) initialisers.
  params = jax.eval_shape(lambda: model.init(jax.random.PRNGKey(0), jnp.zeros((2, 2, 8, 25, 3)),
                                             train=False))["params"]
  labels = tuning_labels(params, depth=4, first_tuned_layer=model.first_tuned_layer)
  assert jax.tree.structure(labels) == jax.tree.structure(params)
  want = {"joints_embed": FROZEN, "temp_embed": FROZEN, "pos_embed": FROZEN, "blocks_0": FROZEN,
          "blocks_1": FROZEN, "blocks_2": "layer_3", "blocks_3": "layer_4", "norm": "layer_5", "head": "layer_6"}
  assert set(params) == set(want)
  flat = jax.tree_util.tree_flatten_with_path(labels)[0]
  assert len(flat) > len(want)
  for path, label in flat:
    name = path_name(path)
    assert label == want[name.split("/")[0]], name
  assert set(layer_lr_scales(4, 0.45)) >= set(jax.tree.leaves(labels)) - {FROZEN}
  # With nothing frozen the embeddings form layer 0.
  assert tuning_labels(params, depth=4, first_tuned_layer=0)["pos_embed"] == "layer_0"


def test_unknown_parameter_belongs_to_no_layer():
  assert tuning_layer("blocks_11/attn/qkv/kernel", 12) == 12
  with pytest.raises(ValueError):
    tuning_layer("decoder_embed/kernel", 4)
  with pytest.raises(ValueError):
    tuning_labels({"norm": {"scale": jnp.ones(2)}, "mask_token": jnp.ones(2)}, depth=4, first_tuned_layer=0)


def test_clip_by_tensor_norm_clips_each_tensor_separately():
  grads = {"big": jnp.array([[3.6, 0.0], [0.0, 4.8]]), "small": jnp.array([0.6, 0.0, 0.8])}  # norms 6 and 1
  tx = clip_by_tensor_norm(3.0)
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
  f = lambda *shape: jnp.asarray(rng.normal(size=shape), jnp.float32)
  pos = np.asarray(f(1, 4, 3)).copy()
  pos[0, :2] = -0.0
  return {"pos_embed": jnp.asarray(pos),
          "blocks_0": {"fc": {"kernel": f(3, 3), "bias": f(3)}},
          "blocks_1": {"fc": {"kernel": f(3, 3), "bias": f(3)}},
          "norm": {"scale": f(3), "bias": f(3)},
          "head": {"kernel": f(3, 2)}}


def _opt_state_floats(opt_state):
  return sum(x.size for x in jax.tree.leaves(opt_state) if jnp.issubdtype(x.dtype, jnp.floating))


@pytest.mark.parametrize("clip, jit", [("per_tensor", False), ("global", False), ("none", False),
                                       ("per_tensor", True)])
def test_frozen_tensors_have_no_state_and_stay_bit_identical(clip, jit):
  params = _small_tree()
  labels = tuning_labels(params, depth=2, first_tuned_layer=2)  # pos_embed and blocks_0 frozen
  assert labels["blocks_0"]["fc"]["kernel"] == FROZEN and labels["blocks_1"]["fc"]["kernel"] == "layer_2"
  tx = tuning_optimizer(labels, layer_lr_scales(2, 0.5), optax.constant_schedule(1e-2), **OPT,
                        weight_decay=0.05, decay_groups="all", clip=clip, clip_norm=1.0)
  opt_state = tx.init(params)
  tuned = [p for p, l in zip(jax.tree.leaves(params), jax.tree.leaves(labels)) if l != FROZEN]
  assert _opt_state_floats(opt_state) == 2 * sum(p.size for p in tuned)  # Adam moments for tuned tensors only

  def step(params, opt_state, grads):
    updates, opt_state = tx.update(grads, opt_state, params)
    return apply_tuned_updates(params, updates, labels), opt_state

  step = jax.jit(step) if jit else step  # eagerly, params + 0.0 would turn -0.0 into +0.0

  new = params
  for i in range(3):
    grads = jax.tree.map(lambda p: jnp.full_like(p, 0.5 + i), params)  # non-zero on every leaf
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
  labels = tuning_labels(params, depth=2, first_tuned_layer=1)  # only pos_embed frozen
  scales = layer_lr_scales(2, 0.5)  # blocks_0: 0.25, blocks_1: 0.5, norm and head: 1
  lr, wd = 1e-3, 0.01
  tx = tuning_optimizer(labels, scales, optax.constant_schedule(lr), **OPT, weight_decay=wd,
                        decay_groups=decay_groups, clip="none", clip_norm=1.0)
  rng = np.random.default_rng(1)
  grads = jax.tree.map(lambda p: jnp.asarray(rng.normal(size=p.shape), jnp.float32), params)
  updates, _ = tx.update(grads, tx.init(params), params)
  new = apply_tuned_updates(params, updates, labels)
  flat = lambda t: {path_name(k): v for k, v in jax.tree_util.tree_flatten_with_path(t)[0]}
  p0, g, p1, lab = flat(params), flat(grads), flat(new), flat(labels)
  checked = set()
  for name, label in lab.items():
    if label == FROZEN:
      continue
    p, gr = np.asarray(p0[name], np.float64), np.asarray(g[name], np.float64)
    group_lr = lr * scales[label]
    decays = decay_groups == "all" or (p.ndim > 1 and not name.endswith("bias"))
    # PyTorch AdamW, step 1: m_hat = g, v_hat = g^2; p <- p - lr wd p - lr g / (|g| + eps).
    want = p - group_lr * (gr / (np.abs(gr) + OPT["eps"]) + (wd * p if decays else 0.0))
    np.testing.assert_allclose(p1[name], want, rtol=1e-6, atol=1e-9, err_msg=name)
    checked.add(label)
  assert checked == {"layer_1", "layer_2", "layer_3", "layer_4"}
  np.testing.assert_allclose(scales["layer_1"], 0.25)


def test_invalid_clip_or_decay_groups_raise():
  params = _small_tree()
  labels = tuning_labels(params, depth=2, first_tuned_layer=1)
  kwargs = dict(**OPT, weight_decay=0.01, clip_norm=1.0)
  with pytest.raises(ValueError):
    tuning_optimizer(labels, layer_lr_scales(2, 0.5), optax.constant_schedule(1e-3), decay_groups="all",
                     clip="norm", **kwargs)
  with pytest.raises(ValueError):
    tuning_optimizer(labels, layer_lr_scales(2, 0.5), optax.constant_schedule(1e-3), decay_groups="none",
                     clip="none", **kwargs)
