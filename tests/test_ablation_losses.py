"""The MoCo and DINO tuning losses (SPEC §4.11) against closed forms and their defining properties."""

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from stars_jax import losses


def _unit(x):
  return x / np.linalg.norm(x, axis=-1, keepdims=True)


def test_moco_loss_closed_form():
  """One query equal to its key and one orthogonal queue row: logits [1/T, 0] -> log(1 + exp(-1/T))."""
  q = jnp.array([[1.0, 0.0]])
  queue = jnp.array([[0.0, 1.0]])
  for t in (0.07, 0.5):
    # logsumexp(logits) - logits[0] cancels two values of size 1/T: float32 leaves ~ulp(1/T) <= 4 eps / T.
    expected = math.log1p(math.exp(-1 / t))
    np.testing.assert_allclose(losses.moco_loss(q, q, queue, t), expected, rtol=1e-6, atol=4 * 2**-23 / t)


def test_moco_loss_prefers_the_positive_key():
  rng = np.random.default_rng(0)
  q = jnp.asarray(_unit(rng.normal(size=(6, 8))), jnp.float32)
  queue = jnp.asarray(_unit(rng.normal(size=(50, 8))), jnp.float32)
  aligned = losses.moco_loss(q, q, queue, 0.07)
  shuffled = losses.moco_loss(q, q[::-1], queue, 0.07)
  assert float(aligned) < float(shuffled)
  # Each row is a softmax cross-entropy over 1 + K logits: the loss is below log(1 + K) + 2/T, above 0.
  assert 0.0 < float(aligned) < math.log(51) + 2 / 0.07


def test_sinkhorn_rows_are_distributions_and_columns_balance():
  rng = np.random.default_rng(1)
  t = jnp.asarray(_unit(rng.normal(size=(64, 16))), jnp.float32)
  q = np.asarray(losses.sinkhorn_knopp(t, 0.04, iterations=3), np.float64)
  # The last normalisation is per sample: rows sum to 1 up to float32 rounding of a 16-term sum (< 16 eps).
  np.testing.assert_allclose(q.sum(axis=1), 1.0, atol=16 * 2**-23)
  assert (q >= 0).all()
  # More iterations approach the balanced assignment: every prototype gets B / K = 4 samples' worth.
  balanced = np.asarray(losses.sinkhorn_knopp(t, 0.04, iterations=200), np.float64)
  spread = lambda a: np.abs(a.sum(axis=0) - 64 / 16).max()  # noqa: E731
  assert spread(balanced) < 1e-3
  assert spread(balanced) <= spread(q)


def test_sinkhorn_is_shift_invariant_and_uniform_on_ties():
  """A constant added to every score divides out; equal scores give 1/K everywhere."""
  rng = np.random.default_rng(2)
  t = jnp.asarray(rng.normal(size=(8, 5)), jnp.float32)
  a, b = losses.sinkhorn_knopp(t, 0.5), losses.sinkhorn_knopp(t + 0.3, 0.5)
  # exp of (t - max) / T is shift-free by construction; only the shifted input's rounding (|t| ~ 3, eps 2^-22)
  # over T = 0.5 reaches the assignments: relative 2^-21 per exponent, well inside 1e-5.
  np.testing.assert_allclose(a, b, rtol=1e-5)
  np.testing.assert_allclose(losses.sinkhorn_knopp(jnp.zeros((8, 5)), 0.04), np.full((8, 5), 1 / 5), rtol=1e-6)


def test_dino_cross_entropy_uses_cross_view_pairs_only():
  """Targets of view i score the student's other views: with two views, (t0, s1) and (t1, s0), averaged."""
  rng = np.random.default_rng(3)
  s = jnp.asarray(rng.normal(size=(2, 4, 6)), jnp.float32)
  t = jax.nn.softmax(jnp.asarray(rng.normal(size=(2, 4, 6)), jnp.float32), axis=-1)
  ce = lambda target, student: float(jnp.mean(jnp.sum(-target * jax.nn.log_softmax(student / 0.1), -1)))  # noqa: E731
  expected = 0.5 * (ce(t[0], s[1]) + ce(t[1], s[0]))
  np.testing.assert_allclose(losses.dino_cross_entropy(s, t, 0.1), expected, rtol=1e-6)
  # A one-hot target and a student that puts all its mass there costs ~0; same-view pairs never count.
  one_hot = jax.nn.one_hot(jnp.zeros((2, 4), jnp.int32), 6)
  confident = jnp.broadcast_to(100.0 * one_hot[0], (2, 4, 6))
  assert float(losses.dino_cross_entropy(confident, one_hot, 0.1)) < 1e-6
  wrong_self = confident.at[0].set(100.0 * jax.nn.one_hot(jnp.ones((4,), jnp.int32), 6))  # view 0 disagrees
  assert float(losses.dino_cross_entropy(wrong_self, one_hot[:1], 0.1)) < 1e-6  # t0 only meets s1


@pytest.mark.parametrize("n", [3, 6, 12])
def test_koleo_of_a_regular_polygon(n):
  """n unit vectors evenly on a circle: every nearest neighbour is 2 sin(pi / n) away."""
  angles = 2 * np.pi * np.arange(n) / n
  x = jnp.asarray(np.stack([np.cos(angles), np.sin(angles)], axis=1), jnp.float32)
  # Coordinates carry float32 rounding (eps 2^-23 relative), so each distance is off by a few eps: the log by
  # about as much in absolute terms (it is 0 for n = 6, where a relative bound would mean nothing).
  np.testing.assert_allclose(losses.koleo_loss(x), -math.log(2 * math.sin(math.pi / n)), rtol=1e-5, atol=8 * 2**-23)


def test_koleo_pushes_the_closest_pair_apart():
  x = jnp.asarray(_unit(np.array([[1.0, 0.0], [0.99, 0.14], [0.0, 1.0], [-1.0, 0.0]])), jnp.float32)
  g = jax.grad(losses.koleo_loss)(x)
  step = np.asarray(x - 0.01 * g)
  assert np.linalg.norm(_unit(step[0]) - _unit(step[1])) > np.linalg.norm(np.asarray(x[0] - x[1]))
