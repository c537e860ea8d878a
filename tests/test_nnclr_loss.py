"""The NNCLR loss (SPEC §4.5) against numpy: value, gradient and the uniform-logits limit."""

import jax
import jax.numpy as jnp
import numpy as np

from stars_jax import losses

TEMPERATURE = 0.07


def _unit(rng, n, d):
  x = rng.normal(size=(n, d))
  return x / np.linalg.norm(x, axis=1, keepdims=True)


def _numpy_loss(predictions, neighbours, temperature):
  """mean_i logsumexp_j(n_i . p_j / T) - n_i . p_i / T, in float64."""
  logits = neighbours @ predictions.T / temperature  # (B, B), row i = neighbour i
  top = logits.max(axis=1, keepdims=True)
  lse = np.log(np.exp(logits - top).sum(axis=1)) + top[:, 0]
  return np.mean(lse - np.diag(logits))


def test_loss_matches_numpy_formula():
  rng = np.random.default_rng(0)
  p, n = _unit(rng, 12, 16), _unit(rng, 12, 16)
  n[:6] = 0.8 * p[:6] + 0.2 * n[:6]  # some positives are close, making the target matter
  n /= np.linalg.norm(n, axis=1, keepdims=True)
  got = float(losses.nnclr_loss(jnp.asarray(p, jnp.float32), jnp.asarray(n, jnp.float32), TEMPERATURE))
  np.testing.assert_allclose(got, _numpy_loss(p, n, TEMPERATURE), rtol=1e-5)
  # Rows are neighbours, columns predictions: swapping the arguments is a different loss.
  assert abs(_numpy_loss(n, p, TEMPERATURE) - got) > 1e-3


def test_gradient_matches_analytic_softmax_gradient_and_finite_differences():
  rng = np.random.default_rng(1)
  b = 8
  p, n = _unit(rng, b, 6), _unit(rng, b, 6)
  grad = np.asarray(jax.grad(losses.nnclr_loss)(jnp.asarray(p, jnp.float32), jnp.asarray(n, jnp.float32), TEMPERATURE))
  logits = n @ p.T / TEMPERATURE
  soft = np.exp(logits - logits.max(axis=1, keepdims=True))
  soft /= soft.sum(axis=1, keepdims=True)
  want = (soft - np.eye(b)).T @ n / (b * TEMPERATURE)  # dL/dp_j = sum_i (softmax_ij - [i == j]) n_i / (B T)
  np.testing.assert_allclose(grad, want, rtol=1e-4, atol=1e-5)
  h = 1e-6
  for seed in range(3):  # central differences of the float64 formula along random directions
    d = np.random.default_rng(10 + seed).normal(size=p.shape)
    fd = (_numpy_loss(p + h * d, n, TEMPERATURE) - _numpy_loss(p - h * d, n, TEMPERATURE)) / (2 * h)
    np.testing.assert_allclose(np.sum(grad * d), fd, rtol=1e-4)


def test_identical_predictions_give_log_batch_size():
  rng = np.random.default_rng(2)
  p = np.repeat(_unit(rng, 1, 16), 8, axis=0)
  n = _unit(rng, 8, 16)
  got = float(losses.nnclr_loss(jnp.asarray(p, jnp.float32), jnp.asarray(n, jnp.float32), TEMPERATURE))
  np.testing.assert_allclose(got, np.log(8), rtol=1e-5)
