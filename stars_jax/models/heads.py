"""STARS projection/prediction head (SPEC §4.2) and the BatchNorm it is built from.

PyTorch name (after `encoder_student.` is stripped)   Flax path
  head.projector.0.{weight, bias}                       head/projector_0/{scale, bias}
  head.projector.0.{running_mean, running_var}          batch_stats head/projector_0/{mean, var}
  head.predictor.0.weight (4096, 256), no bias          head/predictor_0/kernel (256, 4096), transposed
  head.predictor.1.*                                    head/predictor_1/* (as projector_0)
  head.predictor.3.{weight, bias}                       head/predictor_3/{kernel (transposed), bias}
"""
import flax.linen as nn
import jax
import jax.numpy as jnp

BATCH_NORM_EPS = 1e-5  # PyTorch BatchNorm1d default
HEAD_INIT_STD = 0.02   # STARS `weights_init`: Linear ~ N(0, 0.02), BN weight ~ N(1, 0.02), zero biases (§4.3)

head_dense_init = nn.initializers.normal(HEAD_INIT_STD)


def _bn_scale_init(key, shape, dtype=jnp.float32):
  return 1.0 + HEAD_INIT_STD * jax.random.normal(key, shape, dtype)


class BatchNorm(nn.Module):
  """BatchNorm1d over the leading (batch) axis with PyTorch's running-statistics rule.

  Under `jax.jit` on a batch sharded over the `data` axis the mean and variance reduce over the whole global
  batch, which is what the official SyncBatchNorm computes. Differences from `flax.linen.BatchNorm`: the
  running variance is updated with the unbiased batch variance (as PyTorch does), and the update can be
  applied `updates_per_step` times: the official STARS step runs the head on both (identical) views, so its
  running statistics move twice per step with the same batch statistics (SPEC §4.5).
  """
  momentum: float = 0.1        # PyTorch convention: running = (1 - momentum) running + momentum batch
  epsilon: float = BATCH_NORM_EPS
  updates_per_step: int = 1

  @nn.compact
  def __call__(self, x: jax.Array, train: bool) -> jax.Array:
    features = x.shape[-1]
    scale = self.param("scale", _bn_scale_init, (features,))
    bias = self.param("bias", nn.initializers.zeros, (features,))
    running_mean = self.variable("batch_stats", "mean", jnp.zeros, (features,), jnp.float32)
    running_var = self.variable("batch_stats", "var", jnp.ones, (features,), jnp.float32)
    x = x.astype(jnp.float32)
    if train:
      mean = x.mean(axis=0)                          # (F,)
      var = jnp.square(x - mean).mean(axis=0)        # (F,) biased, used to normalise
      if not self.is_initializing():
        n = x.shape[0]
        keep = (1.0 - self.momentum) ** self.updates_per_step
        running_mean.value = keep * running_mean.value + (1.0 - keep) * mean
        running_var.value = keep * running_var.value + (1.0 - keep) * var * (n / max(n - 1, 1))
    else:
      mean, var = running_mean.value, running_var.value
    return (x - mean) * jax.lax.rsqrt(var + self.epsilon) * scale + bias


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
