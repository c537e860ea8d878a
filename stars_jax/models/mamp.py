"""The skeleton transformer encoder and the MAMP pretraining model (SPEC §2).

Input clips are (N, M, T, V, C): clips, persons, frames, joints, xyz. Persons are folded into the batch
(person index fastest, SPEC §1.8), so every person-sequence is embedded, masked and attended on its own.

Parameter tree <-> official PyTorch state_dict (SPEC §2.10 A; the converter lives in `stars_jax.interop`):

  PyTorch name                              Flax path                                 transform
  temp_embed, pos_embed                     temp_embed, pos_embed                     identity
  mask_token                                mask_token                                identity
  decoder_temp_embed, decoder_pos_embed     decoder_temp_embed, decoder_pos_embed     identity
  joints_embed.proj.weight (256,3,4,1)      joints_embed/proj/kernel (4,1,3,256)      transpose(2,3,1,0)
  joints_embed.proj.bias                    joints_embed/proj/bias                    identity
  blocks.{i}.norm{1,2}.weight / .bias       blocks_{i}/norm{1,2}/scale / bias         identity
  blocks.{i}.attn.qkv.weight (768,256)      blocks_{i}/attn/qkv/kernel (256,768)      transpose
  blocks.{i}.attn.proj.weight               blocks_{i}/attn/proj/kernel               transpose
  blocks.{i}.mlp.fc{1,2}.weight             blocks_{i}/mlp/fc{1,2}/kernel             transpose
  (every Linear .bias)                      .../bias                                  identity
  norm.weight / norm.bias                   norm/scale / norm/bias                    identity
  decoder_embed.weight / .bias              decoder_embed/kernel / bias               transpose / identity
  decoder_blocks.{j}.*                      decoder_blocks_{j}/*                      as blocks
  decoder_norm.weight / .bias               decoder_norm/scale / bias                 identity
  decoder_pred.weight (12,256) / .bias      decoder_pred/kernel (256,12) / bias       transpose / identity

Rule: `.` -> `/`, `blocks.{i}` -> `blocks_{i}`, Linear `weight` -> `kernel` (transposed), LayerNorm
`weight` -> `scale`. The encoder alone (`Encoder`) owns exactly the non-`decoder*`/`mask*` names, which are
also the encoder names of the downstream and STARS checkpoints (SPEC §2.10 B-D) after prefix stripping.
"""

import dataclasses

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from stars_jax import masking as masking_lib
from stars_jax.models.transformer import Block, Dtype, SegmentEmbed, dense_init, layer_norm, trunc_normal


def fold_persons(x: jax.Array) -> jax.Array:
  """(N, M, T, V, C) -> (N*M, T, V, C), person index fastest."""
  n, m = x.shape[:2]
  return x.reshape(n * m, *x.shape[2:])


class Encoder(nn.Module):
  """Segment embedding + factorised learnable temporal/joint embeddings + pre-norm blocks + final LayerNorm."""

  dim: int = 256
  depth: int = 8
  num_heads: int = 8
  mlp_ratio: float = 4.0
  num_frames: int = 120
  num_joints: int = 25
  t_patch: int = 4
  drop_rate: float = 0.0
  drop_path_rate: float = 0.0
  dtype: Dtype = jnp.float32
  attention_impl: str | None = None
  remat: bool = False  # recompute each block's activations in the backward pass (memory for compute)

  @property
  def num_segments(self) -> int:
    return self.num_frames // self.t_patch

  @property
  def num_tokens(self) -> int:
    return self.num_segments * self.num_joints

  def setup(self):
    self.joints_embed = SegmentEmbed(self.dim, self.t_patch, jnp.float32)  # float32 whatever the compute dtype
    self.temp_embed = self.param("temp_embed", trunc_normal(), (1, self.num_segments, 1, self.dim))
    self.pos_embed = self.param("pos_embed", trunc_normal(), (1, 1, self.num_joints, self.dim))
    rates = np.linspace(0.0, self.drop_path_rate, self.depth)  # stochastic depth, linear over depth
    self.blocks = [
      self.block_class(self.num_heads, self.mlp_ratio, self.drop_rate, float(r), self.dtype, self.attention_impl)
      for r in rates
    ]
    self.norm = layer_norm("norm", self.dtype)

  @property
  def block_class(self) -> type[Block]:
    """Block, or Block under nn.remat (`deterministic`, argument 2 counting self, is static)."""
    return nn.remat(Block, static_argnums=(2,)) if self.remat else Block

  def embed(self, x: jax.Array) -> jax.Array:
    """(B, T, V, C) person-sequences -> (B, L, D) tokens with positional embeddings added.

    The coordinates, the segment embedding and the positional sums stay float32 (as in the official code); only
    the sum is cast to the compute dtype. bfloat16 coordinates would be rounded to 4-16 mm at 0.5-4 m, the size
    of the frame-to-frame motions MAMP learns from (benchmarks/results/precision_*.json).
    """
    tokens = self.joints_embed(x.astype(jnp.float32))  # (B, TP, V, D) float32
    tokens = tokens + (self.temp_embed + self.pos_embed).astype(jnp.float32)
    return tokens.reshape(tokens.shape[0], -1, self.dim).astype(self.dtype)

  def encode(self, tokens: jax.Array, deterministic: bool = True) -> jax.Array:
    """(B, L', D) -> (B, L', D) through the blocks and the final norm."""
    for block in self.blocks:
      tokens = block(tokens, deterministic)
    return self.norm(tokens)

  def __call__(self, x: jax.Array, deterministic: bool = True) -> jax.Array:
    """Unmasked features for downstream use: (N, M, T, V, C) -> (N, M, TP, V, D)."""
    n, m = x.shape[:2]
    features = self.encode(self.embed(fold_persons(x)), deterministic)  # (N*M, L, D)
    return features.reshape(n, m, self.num_segments, self.num_joints, self.dim)


def pooled_features(features: jax.Array) -> jax.Array:
  """Clip feature: mean over persons and all tokens. (N, M, TP, V, D) -> (N, D) float32."""
  return features.astype(jnp.float32).mean(axis=(1, 2, 3))


class MAMP(Encoder):
  """MAMP pretraining model: the encoder sees the visible tokens, the decoder predicts every token's motion."""

  decoder_dim: int = 256
  decoder_depth: int = 3
  decoder_heads: int = 8
  dim_in: int = 3

  def setup(self):
    super().setup()
    self.mask_token = self.param("mask_token", trunc_normal(), (1, 1, self.decoder_dim))
    self.decoder_embed = nn.Dense(self.decoder_dim, kernel_init=dense_init, dtype=self.dtype)
    self.decoder_temp_embed = self.param(
      "decoder_temp_embed", trunc_normal(), (1, self.num_segments, 1, self.decoder_dim)
    )
    self.decoder_pos_embed = self.param("decoder_pos_embed", trunc_normal(), (1, 1, self.num_joints, self.decoder_dim))
    # The official decoder reuses the encoder's drop-path rates by index; pretraining uses rate 0 anyway.
    self.decoder_blocks = [
      self.block_class(self.decoder_heads, self.mlp_ratio, self.drop_rate, 0.0, self.dtype, self.attention_impl)
      for _ in range(self.decoder_depth)
    ]
    self.decoder_norm = layer_norm("decoder_norm", self.dtype)
    self.decoder_pred = nn.Dense(self.t_patch * self.dim_in, kernel_init=dense_init, dtype=self.dtype)

  def decode(self, latent: jax.Array, ids_restore: jax.Array, deterministic: bool = True) -> jax.Array:
    """Visible latents (B, K, D) -> per-token predictions (B, L, t_patch * dim_in)."""
    b, k, _ = latent.shape
    latent = self.decoder_embed(latent)  # (B, K, Dd)
    mask_tokens = jnp.broadcast_to(self.mask_token.astype(self.dtype), (b, self.num_tokens - k, self.decoder_dim))
    tokens = jnp.concatenate([latent, mask_tokens], axis=1)  # (B, L, Dd), shuffled order
    tokens = jnp.take_along_axis(tokens, ids_restore[..., None], axis=1)  # (B, L, Dd), token order
    pos = (self.decoder_temp_embed + self.decoder_pos_embed).reshape(1, self.num_tokens, self.decoder_dim)
    tokens = (tokens.astype(jnp.float32) + pos.astype(jnp.float32)).astype(self.dtype)  # the sum in float32
    for block in self.decoder_blocks:
      tokens = block(tokens, deterministic)
    return self.decoder_pred(self.decoder_norm(tokens)).astype(jnp.float32)

  def __call__(self, x: jax.Array, masking: masking_lib.Masking, deterministic: bool = True) -> jax.Array:
    """x: (N*M, T, V, C) folded person-sequences; masking over their L tokens. Returns (N*M, L, t_patch*C)."""
    tokens = self.embed(x)  # (B, L, D)
    visible = jnp.take_along_axis(tokens, masking.ids_keep[..., None], axis=1)  # (B, K, D)
    latent = self.encode(visible, deterministic)
    return self.decode(latent, masking.ids_restore, deterministic)


def encoder_of(model: Encoder) -> Encoder:
  """A plain Encoder with every encoder field of `model` (e.g. the encoder of a MAMP, STARS or Classifier)."""
  return Encoder(
    **{
      f.name: getattr(model, f.name) for f in dataclasses.fields(Encoder) if f.init and f.name not in ("parent", "name")
    }
  )


def encoder_params(params: dict) -> dict:
  """The encoder's sub-tree of a pretraining, tuning or downstream parameter tree: drops decoder*, mask*, head*."""
  return {k: v for k, v in params.items() if not k.startswith(("decoder", "mask", "head"))}
