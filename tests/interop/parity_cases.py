"""Shared pieces of the parity tests: the official encoder's keyword arguments, raw samples, official gradients."""

import numpy as np

from stars_jax.interop import torch_checkpoint


def official_encoder(depth: int, num_heads: int, num_frames: int, num_joints: int, t_patch: int) -> dict:
  """Keyword arguments of the official `Transformer` encoders (patch 1, qkv bias, MLP ratio 4)."""
  return dict(
    dim_in=3,
    depth=depth,
    num_heads=num_heads,
    mlp_ratio=4,
    num_frames=num_frames,
    num_joints=num_joints,
    patch_size=1,
    t_patch_size=t_patch,
    qkv_bias=True,
  )


def raw_samples(n: int, seed: int = 0, second_person: bool = False) -> tuple[np.ndarray, np.ndarray]:
  """Raw (n, 300, 150) samples of varied length (with `second_person`, a second actor in every other one) and
  their dataset ids."""
  rng = np.random.default_rng(seed)
  x = np.zeros((n, 300, 150), np.float32)
  for i in range(n):
    length = int(rng.integers(40, 300))
    width = 150 if second_person and i % 2 else 75
    x[i, :length, :width] = np.cumsum(rng.normal(scale=0.02, size=(length, width)), axis=0) + rng.normal(size=width)
  return x, rng.permutation(2 * n)[:n]


def official_grads(module) -> dict:
  """The .grad of every parameter of an official module, as our (params) tree."""
  return torch_checkpoint.to_flax(
    {k: p.grad.numpy().copy() for k, p in module.named_parameters() if p.grad is not None}
  )["params"]
