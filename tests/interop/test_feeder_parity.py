"""The feeder transforms against the official feeder functions (`MAMP:feeder/tools.py`, SPEC §1.6).

Runs with `pytest tests/interop --torch-reference DIR` (DIR/MAMP an official checkout, torch importable); skipped
otherwise. The random training crop draws its length and start from numpy in the official code and from JAX
here, so only its resize is compared (every crop length, through the deterministic crops); the crop rule itself is
tested against its formula in tests/data/test_transforms.py.
"""

import importlib.util

import jax.numpy as jnp
import numpy as np
import pytest

from stars_jax.data import transforms

T, WINDOW = 300, 120


@pytest.fixture(scope="module")
def tools(request):
  root = request.config.getoption("--torch-reference")
  if not root:
    pytest.skip("needs --torch-reference DIR (official MAMP checkout)")
  pytest.importorskip("torch")
  spec = importlib.util.spec_from_file_location("official_feeder_tools", f"{root}/MAMP/feeder/tools.py")
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  return module


def _samples(seed: int) -> np.ndarray:
  """(300, 300, 150): sample v - 1 has v valid frames of N(0, 1) values, then zero padding."""
  x = np.random.default_rng(seed).standard_normal((T, T, 150)).astype(np.float32)
  x[np.arange(T)[None, :] >= np.arange(1, T + 1)[:, None]] = 0
  return x


def _official_layout(sample: np.ndarray) -> np.ndarray:
  """(T, 150) person-major -> the official (C, T, V, M)."""
  return sample.reshape(len(sample), 2, 25, 3).transpose(3, 0, 2, 1)


def _bound(x: np.ndarray) -> float:
  """Each output is (1 - w1) x0 + w1 x1 with PyTorch's exact weights: PyTorch rounds a fused multiply-add once
  more than the product it adds, we round both products and the sum; both stay within 2**-23 max|x| of the exact
  value, so they differ by at most 2**-22 max|x|."""
  return 2.0**-22 * float(np.abs(x).max())


@pytest.mark.torch
@pytest.mark.parametrize("p", [1.0, 0.95, 0.9])
def test_eval_crop_and_resize_match_the_official_feeder_for_every_length(tools, p):
  """valid_crop_resize with a one-element p_interval, valid lengths 1..300 (p = 1: the resize of every crop
  length the training crop can produce)."""
  x = _samples(int(p * 100))
  ours = np.asarray(transforms.augment_batch(None, jnp.asarray(x), p_interval=(p,), window=WINDOW, rotate=False))
  for v in range(1, T + 1):
    reference = tools.valid_crop_resize(_official_layout(x[v - 1]), v, [p], WINDOW)  # (C, window, V, M)
    got = ours[v - 1].transpose(3, 1, 2, 0)  # (M, window, V, C) -> (C, window, V, M)
    np.testing.assert_allclose(got, reference, rtol=0, atol=_bound(x[v - 1]), err_msg=f"valid length {v}")


@pytest.mark.torch
def test_rotation_matches_the_official_random_rot(tools):
  """random_rot draws its three angles with torch's RNG: the same seed gives the angles, our rotation_matrix and
  apply_rotation the rest. Float32 sines/cosines (1 ulp), two 3x3 products and a 3-term dot product: within 2**-19
  max|x| (16 ulps at the largest coordinate)."""
  import torch

  x = _samples(7)[T - 1, :WINDOW]  # (120, 150) clip
  data = _official_layout(x)  # (C, T, V, M)
  for seed in range(5):
    torch.manual_seed(seed)
    reference = tools.random_rot(data.copy(), theta=0.3).numpy()
    torch.manual_seed(seed)
    angles = torch.zeros(3).uniform_(-0.3, 0.3).numpy()
    ours = transforms.apply_rotation(transforms.to_persons(jnp.asarray(x)), transforms.rotation_matrix(angles))
    got = np.asarray(ours).transpose(3, 1, 2, 0)  # (M, T, V, C) -> (C, T, V, M)
    np.testing.assert_allclose(got, reference, rtol=0, atol=2.0**-19 * float(np.abs(x).max()), err_msg=f"seed {seed}")
