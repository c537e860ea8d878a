"""Learning-rate schedule and weight-decay groups (SPEC §3.1–3.2)."""
import math

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from stars_jax import masking
from stars_jax.models.mamp import MAMP
from stars_jax.train import schedules
from stars_jax.train.state import adamw, path_name, weight_decay_mask


@pytest.mark.parametrize("step", [0, 1, 150, 313 * 20 - 1, 313 * 20, 313 * 100 + 7, 313 * 400 - 1])
def test_warmup_half_cosine_matches_official_formula(step):
  sched = schedules.warmup_half_cosine(base_lr=1e-3, min_lr=5e-4, warmup_epochs=20, epochs=400,
                                       steps_per_epoch=313)
  e = step / 313
  want = 1e-3 * e / 20 if e < 20 else 5e-4 + 5e-4 * 0.5 * (1 + math.cos(math.pi * (e - 20) / 380))
  np.testing.assert_allclose(float(sched(step)), want, rtol=1e-5, atol=1e-12)


def test_weight_decay_groups_follow_timm():
  model = MAMP(dim=32, depth=1, num_heads=4, decoder_dim=32, decoder_depth=1, decoder_heads=4, num_frames=16)
  x = jnp.zeros((1, 16, 25, 3))
  params = jax.eval_shape(model.init, jax.random.PRNGKey(0), x,
                          masking.sample_masking(jax.random.PRNGKey(0), x, t_patch=4, mask_ratio=0.9,
                                                 tau=0.8))["params"]
  flat = {path_name(p): v for p, v in jax.tree_util.tree_flatten_with_path(weight_decay_mask(params))[0]}
  for name in ("temp_embed", "pos_embed", "mask_token", "decoder_pos_embed", "blocks_0/attn/qkv/kernel",
               "joints_embed/proj/kernel", "decoder_pred/kernel"):
    assert flat[name], name
  for name in ("blocks_0/attn/qkv/bias", "blocks_0/norm1/scale", "norm/bias", "joints_embed/proj/bias"):
    assert not flat[name], name


def test_adamw_decay_is_lr_scaled_and_masked():
  params = {"w": jnp.ones((2, 2)), "bias": jnp.ones((2,))}
  tx = adamw(lambda _: 0.1, b1=0.9, b2=0.95, eps=1e-8, weight_decay=0.05, params=params)
  zero = jax.tree.map(jnp.zeros_like, params)
  updates, _ = tx.update(zero, tx.init(params), params)
  new = optax.apply_updates(params, updates)
  np.testing.assert_allclose(new["w"], 1 - 0.1 * 0.05)  # PyTorch AdamW: p -= lr * wd * p
  np.testing.assert_allclose(new["bias"], 1.0)
