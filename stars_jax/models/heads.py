"""Heads on the pooled encoder: the STARS projection/prediction head (SPEC §4.2), the downstream linear-probe and
fine-tune heads (SPEC §2.9), and the BatchNorm they are built from.

PyTorch name (after `encoder_student.` is stripped)   Flax path
  head.projector.0.{weight, bias}                       head/projector_0/{scale, bias}
  head.projector.0.{running_mean, running_var}          batch_stats head/projector_0/{mean, var}
  head.predictor.0.weight (4096, 256), no bias          head/predictor_0/kernel (256, 4096), transposed
  head.predictor.1.*                                    head/predictor_1/* (as projector_0)
  head.predictor.3.{weight, bias}                       head/predictor_3/{kernel (transposed), bias}
  head.fc.0.{running_mean, running_var} (linear probe)   batch_stats head/fc_0/{mean, var} (no affine)
  head.fc.1.{weight, bias}                              head/fc_1/{kernel (transposed), bias}
  head.fc1.{weight, bias} (fine-tune)                   head/fc1/{kernel (transposed), bias}
  head.bn.{weight, bias, running_mean, running_var}     head/bn/{scale, bias}, batch_stats head/bn/{mean, var}
  head.fc2.{weight, bias}                               head/fc2/{kernel (transposed), bias}
"""

from collections.abc import Callable

import flax.linen as nn
import jax
import jax.numpy as jnp

from stars_jax.models.transformer import trunc_normal

BATCH_NORM_EPS = 1e-5  # PyTorch BatchNorm1d default
HEAD_INIT_STD = 0.02  # STARS `weights_init`: Linear ~ N(0, 0.02), BN weight ~ N(1, 0.02), zero biases (§4.3)

head_dense_init = nn.initializers.normal(HEAD_INIT_STD)


def _bn_scale_init(key, shape, dtype=jnp.float32):
  return 1.0 + HEAD_INIT_STD * jax.random.normal(key, shape, dtype)


def _ones(key, shape, dtype=jnp.float32):
  del key
  return jnp.ones(shape, dtype)


class BatchNorm(nn.Module):
  """BatchNorm1d over the leading (batch) axis with PyTorch's running-statistics rule.

  Under `jax.jit` on a batch sharded over the `data` axis the mean and variance reduce over the whole global
  batch, which is what the official SyncBatchNorm computes. Differences from `flax.linen.BatchNorm`: the
  running variance is updated with the unbiased batch variance (as PyTorch does), and the update can be
  applied `updates_per_step` times: the official STARS step runs the head on both (identical) views, so its
  running statistics move twice per step with the same batch statistics (SPEC §4.5).
  """

  momentum: float = 0.1  # PyTorch convention: running = (1 - momentum) running + momentum batch
  epsilon: float = BATCH_NORM_EPS
  updates_per_step: int = 1
  use_affine: bool = True  # False: PyTorch affine=False (no scale/bias parameters)
  scale_init: Callable = _bn_scale_init

  @nn.compact
  def __call__(self, x: jax.Array, train: bool) -> jax.Array:
    features = x.shape[-1]
    running_mean = self.variable("batch_stats", "mean", jnp.zeros, (features,), jnp.float32)
    running_var = self.variable("batch_stats", "var", jnp.ones, (features,), jnp.float32)
    x = x.astype(jnp.float32)
    if train:
      mean = x.mean(axis=0)  # (F,)
      var = jnp.square(x - mean).mean(axis=0)  # (F,) biased, used to normalise
      if not self.is_initializing():
        n = x.shape[0]
        keep = (1.0 - self.momentum) ** self.updates_per_step
        running_mean.value = keep * running_mean.value + (1.0 - keep) * mean
        running_var.value = keep * running_var.value + (1.0 - keep) * var * (n / max(n - 1, 1))
    else:
      mean, var = running_mean.value, running_var.value
    y = (x - mean) * jax.lax.rsqrt(var + self.epsilon)
    if not self.use_affine:
      return y
    return y * self.param("scale", self.scale_init, (features,)) + self.param(
      "bias", nn.initializers.zeros, (features,)
    )


class PretrainHead(nn.Module):
  """Pooled encoder feature h (N, D) -> (prediction p (N, D), projection z (N, D)), unnormalised, float32.

  projector = BatchNorm only (SPEC §7.7: z lives in the normalised encoder space);
  predictor = Linear (no bias) -> BatchNorm -> ReLU -> Linear.
  """

  hidden_dim: int = 4096
  bn_updates_per_step: int = 1

  @nn.compact
  def __call__(self, h: jax.Array, train: bool) -> tuple[jax.Array, jax.Array]:
    dim = h.shape[-1]
    z = BatchNorm(updates_per_step=self.bn_updates_per_step, name="projector_0")(h, train)  # (N, D)
    y = nn.Dense(self.hidden_dim, use_bias=False, kernel_init=head_dense_init, name="predictor_0")(z)
    y = BatchNorm(updates_per_step=self.bn_updates_per_step, name="predictor_1")(y, train)  # (N, H)
    p = nn.Dense(dim, kernel_init=head_dense_init, name="predictor_3")(nn.relu(y))  # (N, D)
    return p, z


class LinearHead(nn.Module):
  """Linear-probe head (SPEC §3.3): pooled (N, D) -> BatchNorm(affine=False, eps 1e-6) -> Linear -> (N, C) logits.
  The Linear weight is trunc-normal std 0.01, its bias 0 (`main_linprobe.py`)."""

  num_classes: int

  @nn.compact
  def __call__(self, h: jax.Array, train: bool) -> jax.Array:
    h = BatchNorm(epsilon=1e-6, use_affine=False, name="fc_0")(h, train)  # (N, D)
    return nn.Dense(self.num_classes, kernel_init=trunc_normal(0.01), name="fc_1")(h)


class FinetuneHead(nn.Module):
  """Fine-tune head (SPEC §2.9): features (N, M, TP, V, D) -> Dropout -> mean over TP -> flatten joints and
  channels per person (joint-major) -> mean over persons -> Linear(V*D -> hidden) -> BatchNorm -> ReLU ->
  Linear(-> C) logits (N, C). Linear layers xavier-uniform with zero bias, BatchNorm weight 1 and bias 0."""

  num_classes: int
  hidden_dim: int = 2048
  dropout: float = 0.3

  @nn.compact
  def __call__(self, features: jax.Array, train: bool) -> jax.Array:
    x = nn.Dropout(self.dropout, deterministic=not train)(features.astype(jnp.float32))  # (N, M, TP, V, D)
    n, m = x.shape[:2]
    x = x.mean(axis=2).reshape(n, m, -1).mean(axis=1)  # (N, V*D)
    x = nn.Dense(self.hidden_dim, kernel_init=nn.initializers.xavier_uniform(), name="fc1")(x)
    x = nn.relu(BatchNorm(scale_init=_ones, name="bn")(x, train))  # (N, hidden)
    return nn.Dense(self.num_classes, kernel_init=nn.initializers.xavier_uniform(), name="fc2")(x)
