"""Transformer building blocks shared by every model: segment embedding, pre-norm ViT block (SPEC §2.2, §2.4).

Parameters are float32; `dtype` is the compute dtype (bfloat16 on accelerators). Names follow the official
PyTorch modules so that a state_dict maps one-to-one onto the Flax tree (see `stars_jax.models.mamp`).
"""

from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp

Dtype = Any

LAYER_NORM_EPS = 1e-5  # PyTorch default; Flax's default is 1e-6 (SPEC §2.4).
dense_init = nn.initializers.xavier_uniform()  # MAMP `_init_weights`: xavier-uniform Linear, zero bias.
# PyTorch's default Conv2d init (kaiming-uniform, a=sqrt(5)) is U(+-1/sqrt(fan_in)) for weight and bias alike.
torch_conv_init = nn.initializers.variance_scaling(1 / 3, "fan_in", "uniform")


def trunc_normal(std: float = 0.02, bound: float = 2.0) -> nn.initializers.Initializer:
  """timm trunc_normal_(std, a=-bound, b=bound): bounds are absolute, not in units of std."""

  def init(key, shape, dtype=jnp.float32):
    return std * jax.random.truncated_normal(key, -bound / std, bound / std, shape, dtype)

  return init


def torch_conv_bias_init(fan_in: int) -> nn.initializers.Initializer:
  bound = fan_in**-0.5
  return lambda key, shape, dtype=jnp.float32: jax.random.uniform(key, shape, dtype, -bound, bound)


def layer_norm(name: str, dtype: Dtype) -> nn.LayerNorm:
  return nn.LayerNorm(epsilon=LAYER_NORM_EPS, dtype=dtype, name=name)


class SegmentEmbed(nn.Module):
  """Embeds each joint's t_patch-frame segment: Conv(dim_in -> dim, kernel (t_patch, 1), stride (t_patch, 1))."""

  dim: int
  t_patch: int
  dtype: Dtype = jnp.float32

  @nn.compact
  def __call__(self, x: jax.Array) -> jax.Array:
    # x: (B, T, V, C) -> (B, T/t_patch, V, dim)
    fan_in = self.t_patch * x.shape[-1]
    return nn.Conv(
      self.dim,
      (self.t_patch, 1),
      strides=(self.t_patch, 1),
      padding="VALID",
      kernel_init=torch_conv_init,
      bias_init=torch_conv_bias_init(fan_in),
      dtype=self.dtype,
      name="proj",
    )(x)


def _einsum_attention(q: jax.Array, k: jax.Array, v: jax.Array) -> jax.Array:
  """softmax(q k^T / sqrt(Dh)) v with q, k, v (B, N, H, Dh) -> (B, N, H, Dh); softmax in float32."""
  q, k, v = (t.transpose(0, 2, 1, 3) for t in (q, k, v))  # (B, H, N, Dh)
  logits = jnp.einsum("bhnd,bhmd->bhnm", q, k) * (q.shape[-1] ** -0.5)  # (B, H, N, N)
  weights = jax.nn.softmax(logits.astype(jnp.float32), axis=-1).astype(v.dtype)
  return jnp.einsum("bhnm,bhmd->bhnd", weights, v).transpose(0, 2, 1, 3)


class Attention(nn.Module):
  """Multi-head self-attention with one fused qkv projection, outputs ordered [q | k | v], each head-major."""

  num_heads: int
  dtype: Dtype = jnp.float32
  # None (auto: 'einsum' on CPU, else jax's choice), 'xla' or 'cudnn' (jax.nn.dot_product_attention), or
  # 'einsum': softmax(q k^T / sqrt(Dh)) v spelled out, about 1.5x faster than the 'xla' kernel on CPU.
  implementation: str | None = None

  @nn.compact
  def __call__(self, x: jax.Array) -> jax.Array:
    b, n, d = x.shape
    qkv = nn.Dense(3 * d, kernel_init=dense_init, dtype=self.dtype, name="qkv")(x)
    qkv = qkv.reshape(b, n, 3, self.num_heads, d // self.num_heads)  # (B, N, 3, H, Dh)
    q, k, v = qkv[:, :, 0], qkv[:, :, 1], qkv[:, :, 2]  # (B, N, H, Dh) each
    impl = self.implementation or ("einsum" if jax.default_backend() == "cpu" else None)
    if impl == "einsum":
      out = _einsum_attention(q, k, v)
    else:
      out = jax.nn.dot_product_attention(q, k, v, implementation=impl)  # scale Dh^-0.5
    return nn.Dense(d, kernel_init=dense_init, dtype=self.dtype, name="proj")(out.reshape(b, n, d))


class Mlp(nn.Module):
  hidden: int
  drop_rate: float = 0.0
  dtype: Dtype = jnp.float32

  @nn.compact
  def __call__(self, x: jax.Array, deterministic: bool) -> jax.Array:
    d = x.shape[-1]
    x = nn.Dense(self.hidden, kernel_init=dense_init, dtype=self.dtype, name="fc1")(x)
    x = nn.gelu(x, approximate=False)
    x = nn.Dropout(self.drop_rate)(x, deterministic=deterministic)
    x = nn.Dense(d, kernel_init=dense_init, dtype=self.dtype, name="fc2")(x)
    return nn.Dropout(self.drop_rate)(x, deterministic=deterministic)


class Block(nn.Module):
  """Pre-norm block: x + DropPath(Attn(LN(x))); x + DropPath(MLP(LN(x))). Joint space-time attention."""

  num_heads: int
  mlp_ratio: float = 4.0
  drop_rate: float = 0.0
  drop_path: float = 0.0
  dtype: Dtype = jnp.float32
  attention_impl: str | None = None

  @nn.compact
  def __call__(self, x: jax.Array, deterministic: bool = True) -> jax.Array:
    # x: (B, N, D). DropPath drops whole residual branches per sequence (broadcast over tokens, channels).
    drop_path = nn.Dropout(self.drop_path, broadcast_dims=(1, 2), rng_collection="drop_path")
    y = Attention(self.num_heads, self.dtype, self.attention_impl, name="attn")(layer_norm("norm1", self.dtype)(x))
    x = x + drop_path(y, deterministic=deterministic)
    y = Mlp(int(x.shape[-1] * self.mlp_ratio), self.drop_rate, self.dtype, name="mlp")(
      layer_norm("norm2", self.dtype)(x), deterministic
    )
    return x + drop_path(y, deterministic=deterministic)
