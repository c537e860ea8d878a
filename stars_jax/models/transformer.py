"""Transformer building blocks shared by every model: segment embedding, pre-norm ViT block (SPEC §2.2, §2.4).

Parameters are float32; `dtype` is the compute dtype (bfloat16 on accelerators). Names follow the official
PyTorch modules so that a state_dict maps one-to-one onto the Flax tree (see `stars_jax.models.mamp`).
"""

import math
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp

from stars_jax import device

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


def _attention_weights(q: jax.Array, k: jax.Array) -> jax.Array:
  """softmax(q k^T / sqrt(Dh)) in float32 of q, k (..., N, Dh) -> (..., N, N)."""
  logits = jnp.einsum("...nd,...md->...nm", q, k) * (q.shape[-1] ** -0.5)
  return jax.nn.softmax(logits.astype(jnp.float32), axis=-1)


def _einsum_attention(q: jax.Array, k: jax.Array, v: jax.Array) -> jax.Array:
  """softmax(q k^T / sqrt(Dh)) v with q, k, v (B, N, H, Dh) -> (B, N, H, Dh); softmax in float32."""
  q, k, v = (t.transpose(0, 2, 1, 3) for t in (q, k, v))  # (B, H, N, Dh)
  weights = _attention_weights(q, k).astype(v.dtype)
  return jnp.einsum("bhnm,bhmd->bhnd", weights, v).transpose(0, 2, 1, 3)


def _loop_groups(batch: int) -> int:
  """(sequence, head) pairs per step of the chunked loop: one per device, as a sharded batch lies."""
  return math.gcd(batch, jax.device_count())


def _to_groups(t: jax.Array, groups: int) -> jax.Array:
  """(B, N, H, Dh) -> (B*H/groups, groups, N, Dh); loop step i takes (sequence, head) pairs i, i + B*H/groups, ..."""
  b, n, h, dh = t.shape
  return t.transpose(0, 2, 1, 3).reshape(groups, b * h // groups, n, dh).swapaxes(0, 1)


def _from_groups(t: jax.Array, heads: int) -> jax.Array:
  """Inverse of `_to_groups`: (B*H/groups, groups, N, Dh) -> (B, N, H, Dh)."""
  steps, groups, n, dh = t.shape
  return t.swapaxes(0, 1).reshape(steps * groups // heads, heads, n, dh).transpose(0, 2, 1, 3)


@jax.custom_vjp
def _chunked_attention(q: jax.Array, k: jax.Array, v: jax.Array) -> jax.Array:
  """`_einsum_attention` one (sequence, head) pair per device at a time, weights recomputed for the backward pass.

  On CPU the (N, N) weights of one head (2.1 MiB at 750 tokens) stay in cache, while the whole batch's
  (B, H, N, N) spill to memory several times per softmax, and autodiff keeps them (and the unnormalised exp) for
  every block until the backward pass. Measured (MAMP decoder attention, B 16, N 750, 2 shared cores): forward +
  backward 2.3x faster than 'einsum', temporaries 1100 -> 47 MiB (looping over whole sequences: 2.1x, 72 MiB).
  The whole MAMP step at batch 8 (benchmarks/compare_torch.py): XLA temporaries 4244 -> 1562 MiB, peak RSS
  6.3 -> 2.7 GB, 1.33x -> 2.2x the official step's speed.
  """
  return _chunked_attention_fwd(q, k, v)[0]


def _chunked_attention_fwd(q: jax.Array, k: jax.Array, v: jax.Array) -> tuple[jax.Array, tuple]:
  groups = _loop_groups(q.shape[0])

  def one(qkv):  # (groups, N, Dh) each
    qc, kc, vc = qkv
    return jnp.einsum("gnm,gmd->gnd", _attention_weights(qc, kc).astype(vc.dtype), vc)

  out = jax.lax.map(one, tuple(_to_groups(t, groups) for t in (q, k, v)))
  return _from_groups(out, q.shape[2]), (q, k, v)


def _chunked_attention_bwd(res: tuple, d_out: jax.Array) -> tuple[jax.Array, jax.Array, jax.Array]:
  q, k, v = res
  groups, scale = _loop_groups(q.shape[0]), q.shape[-1] ** -0.5

  def one(args):  # the einsum attention's vjp, with softmax'(s)^T g = p * (g - sum(g * p))
    qc, kc, vc, dc = args
    p = _attention_weights(qc, kc)  # (groups, N, N) float32
    dv = jnp.einsum("gnm,gnd->gmd", p.astype(vc.dtype), dc)
    dp = jnp.einsum("gnd,gmd->gnm", dc, vc).astype(jnp.float32)
    ds = (p * (dp - jnp.sum(dp * p, axis=-1, keepdims=True))).astype(qc.dtype) * scale
    return jnp.einsum("gnm,gmd->gnd", ds, kc), jnp.einsum("gnm,gnd->gmd", ds, qc), dv

  grads = jax.lax.map(one, tuple(_to_groups(t, groups) for t in (q, k, v, d_out)))
  return tuple(_from_groups(g, q.shape[2]) for g in grads)


_chunked_attention.defvjp(_chunked_attention_fwd, _chunked_attention_bwd)


class Attention(nn.Module):
  """Multi-head self-attention with one fused qkv projection, outputs ordered [q | k | v], each head-major."""

  num_heads: int
  dtype: Dtype = jnp.float32
  # None or 'auto' (stars_jax.device: the chip decides), 'xla' or 'cudnn' (jax.nn.dot_product_attention),
  # 'einsum': softmax(q k^T / sqrt(Dh)) v spelled out, about 1.5x faster than the 'xla' kernel on CPU, or
  # 'chunked': the same one head at a time, recomputed for the backward pass (2.3x faster again on CPU).
  implementation: str | None = None

  @nn.compact
  def __call__(self, x: jax.Array) -> jax.Array:
    b, n, d = x.shape
    qkv = nn.Dense(3 * d, kernel_init=dense_init, dtype=self.dtype, name="qkv")(x)
    qkv = qkv.reshape(b, n, 3, self.num_heads, d // self.num_heads)  # (B, N, 3, H, Dh)
    q, k, v = qkv[:, :, 0], qkv[:, :, 1], qkv[:, :, 2]  # (B, N, H, Dh) each
    impl = device.attention_impl(  # the factory passes a resolved name; this resolves a module built directly
      self.implementation or "auto", device.describe(), jnp.dtype(self.dtype).name, (d // self.num_heads,)
    )
    if impl == "einsum":
      out = _einsum_attention(q, k, v)
    elif impl == "chunked":
      out = _chunked_attention(q, k, v)
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
