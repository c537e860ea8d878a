"""Motion target, per-token normalisation and the masked MSE against numpy formulas (SPEC §2.6–2.7)."""

import jax.numpy as jnp
import numpy as np

from stars_jax import losses


def test_motion_target_is_next_frame_difference_with_zero_last_frame():
  x = np.random.default_rng(0).normal(size=(2, 8, 3, 3)).astype(np.float32)
  m = np.asarray(losses.motion_target(jnp.asarray(x)))
  np.testing.assert_allclose(m[:, :-1], x[:, 1:] - x[:, :-1], rtol=1e-6)
  assert np.all(m[:, -1] == 0)


def test_normalisation_uses_unbiased_variance():
  t = np.random.default_rng(1).normal(size=(3, 5, 12)).astype(np.float32)
  got = np.asarray(losses.normalize_tokens(jnp.asarray(t)))
  want = (t - t.mean(-1, keepdims=True)) / np.sqrt(t.var(-1, ddof=1, keepdims=True) + 1e-6)
  np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)


def test_zero_motion_tokens_give_zero_target():
  x = np.zeros((1, 8, 2, 3), np.float32)
  x[0, 4:, 1] = np.arange(12, dtype=np.float32).reshape(4, 3)  # joint 1 moves in segment 1 only
  target = np.asarray(losses.reconstruction_target(jnp.asarray(x), t_patch=4))  # (1, 4 tokens, 12)
  assert target.shape == (1, 4, 12)
  assert np.all(target[0, [0, 2]] == 0.0)  # joint 0 never moves: exactly zero, not NaN
  assert np.any(target[0, 3] != 0.0)


def test_masked_mse_counts_masked_tokens_only():
  rng = np.random.default_rng(2)
  pred, target = rng.normal(size=(2, 6, 12)), rng.normal(size=(2, 6, 12))
  mask = np.array([[1, 0, 0, 1, 0, 0], [0, 0, 1, 0, 0, 0]], np.float32)
  per_token = ((pred - target) ** 2).mean(-1)
  want = (per_token * mask).sum() / 3
  got = float(losses.masked_mse(jnp.asarray(pred, jnp.float32), jnp.asarray(target, jnp.float32), jnp.asarray(mask)))
  np.testing.assert_allclose(got, want, rtol=1e-5)
  # Changing a visible token's prediction does not change the loss.
  pred2 = pred.copy()
  pred2[0, 1] += 100.0
  got2 = float(losses.masked_mse(jnp.asarray(pred2, jnp.float32), jnp.asarray(target, jnp.float32), jnp.asarray(mask)))
  np.testing.assert_allclose(got2, got, rtol=1e-6)
