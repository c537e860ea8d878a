"""Masking: counts, motion bias, the degenerate absent-person case, and precomputed keep-indices."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from stars_jax import masking


def test_official_visible_count_is_74_of_750():
  assert masking.num_visible(750, 0.9) == 74
  x = jax.random.normal(jax.random.PRNGKey(0), (3, 120, 25, 3))
  m = masking.sample_masking(jax.random.PRNGKey(1), x, t_patch=4, mask_ratio=0.9, tau=0.8)
  assert m.ids_keep.shape == (3, 74)
  np.testing.assert_array_equal(m.mask.sum(-1), [676] * 3)
  # Visible ids are unmasked, distinct, and ids_restore inverts the shuffle.
  for b in range(3):
    assert len(set(np.asarray(m.ids_keep[b]).tolist())) == 74
    assert float(m.mask[b][m.ids_keep[b]].sum()) == 0.0
    np.testing.assert_array_equal(np.asarray(m.ids_restore[b])[np.asarray(m.ids_keep[b])], np.arange(74))


def test_patchify_order_is_frame_in_segment_then_xyz():
  x = jnp.arange(1 * 8 * 2 * 3, dtype=jnp.float32).reshape(1, 8, 2, 3)  # (B, T, V, C)
  p = masking.patchify(x, t_patch=4)  # (1, 2*2, 12)
  # token (tp=1, v=0) -> index 1*2 + 0 = 2; value (u=2, c=1) at position 2*3 + 1 = 7.
  assert p.shape == (1, 4, 12)
  assert float(p[0, 2, 7]) == float(x[0, 1 * 4 + 2, 0, 1])


def test_token_motion_matches_formula():
  rng = np.random.default_rng(0)
  x = rng.normal(size=(2, 12, 5, 3)).astype(np.float32)
  m = np.asarray(masking.token_motion(jnp.asarray(x), t_patch=4)).reshape(2, 3, 5)
  seg = x.reshape(2, 3, 4, 5, 3)
  for tp in range(1, 3):
    np.testing.assert_allclose(m[:, tp], np.abs(seg[:, tp] - seg[:, tp - 1]).mean(axis=(1, 3)), rtol=1e-6)
  np.testing.assert_allclose(m[:, 0], m[:, 1])


def _moving_clip(batch: int) -> jnp.ndarray:
  """Joint 0 moves fast in every frame, the other joints stand still (B, T, V, C)."""
  t = jnp.arange(120, dtype=jnp.float32)
  x = jnp.zeros((batch, 120, 25, 3))
  return x.at[:, :, 0, 0].set(jnp.sin(t))


def test_high_motion_tokens_are_masked_more_often():
  x = _moving_clip(2000)
  m = masking.sample_masking(jax.random.PRNGKey(0), x, t_patch=4, mask_ratio=0.9, tau=0.8)
  mask = np.asarray(m.mask).reshape(2000, 30, 25)
  moving, still = mask[:, :, 0].mean(), mask[:, :, 1:].mean()
  # With tau 0.8, moving tokens get logit +1.25: odds e^1.25 higher to be picked for masking.
  assert moving > still + 0.05, (moving, still)
  # Uniform masking (tau = 0) shows no such bias.
  u = np.asarray(masking.sample_masking(jax.random.PRNGKey(0), x, t_patch=4, mask_ratio=0.9, tau=0.0).mask)
  u = u.reshape(2000, 30, 25)
  assert abs(u[:, :, 0].mean() - u[:, :, 1:].mean()) < 0.01


def test_absent_person_is_masked_uniformly():
  x = jnp.zeros((4000, 120, 25, 3))
  m = np.asarray(masking.sample_masking(jax.random.PRNGKey(3), x, t_patch=4, mask_ratio=0.9, tau=0.8).mask)
  freq = m.mean(axis=0)  # per-token masking frequency, expected 676/750
  assert abs(freq.mean() - 676 / 750) < 1e-6
  # Binomial std with n=4000, p=0.9: 0.0047; allow 5 sigma per token.
  assert np.abs(freq - 676 / 750).max() < 0.025


def test_masking_from_keep_reproduces_sampled_masking():
  x = jax.random.normal(jax.random.PRNGKey(0), (5, 120, 25, 3))
  m = masking.sample_masking(jax.random.PRNGKey(2), x, t_patch=4, mask_ratio=0.9, tau=0.8)
  r = masking.masking_from_keep(m.ids_keep, 750)
  np.testing.assert_array_equal(r.ids_keep, m.ids_keep)
  np.testing.assert_array_equal(r.mask, m.mask)
  # Restoring [visible, mask tokens] puts each visible token back at its own position.
  for b in range(5):
    np.testing.assert_array_equal(np.asarray(r.ids_restore[b])[np.asarray(m.ids_keep[b])], np.arange(74))


def test_caller_noise_drives_the_gumbel_draw():
  """With the caller's uniform draws: the same masking as drawing them from the key; for an absent person
  (equal motion) the Gumbel score is increasing in u, so exactly the num_keep smallest draws stay visible."""
  key = jax.random.PRNGKey(4)
  x = jax.random.normal(jax.random.PRNGKey(5), (3, 16, 25, 3))
  u = jax.random.uniform(key, (3, 4 * 25))
  drawn = masking.motion_aware_masking(key, x, t_patch=4, num_keep=10, tau=0.8)
  given = masking.motion_aware_masking(None, x, t_patch=4, num_keep=10, tau=0.8, noise=u)
  np.testing.assert_array_equal(given.ids_keep, drawn.ids_keep)
  absent = masking.motion_aware_masking(None, jnp.zeros_like(x), t_patch=4, num_keep=10, tau=0.8, noise=u)
  np.testing.assert_array_equal(absent.ids_keep, np.argsort(np.asarray(u), axis=-1)[:, :10])
  with pytest.raises(ValueError, match="one draw per token"):
    masking.motion_aware_masking(None, x, t_patch=4, num_keep=10, tau=0.8, noise=u[:, :50])
