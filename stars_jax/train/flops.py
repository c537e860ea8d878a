"""Analytic FLOP count of one MAMP pretraining step (SPEC §2.1–2.6), for throughput / MFU reporting.

Convention
----------
* Matmuls only: one multiply-add = 2 flops, so a (m, k) @ (k, n) product costs 2·m·k·n. Counted: the
  segment embedding (the Conv2d with kernel = stride = (t_patch, 1) is a Dense on each token's
  t_patch·dim_in values), qkv, q·kᵀ, attn·v, attention proj, MLP fc1/fc2, decoder_embed, decoder_pred.
* Not counted: biases, LayerNorm, softmax, GELU, residual adds, positional-embedding adds, masking
  (motion, Gumbel noise, argsort), gathers, the loss, on-device augmentation and the optimizer update.
  These are elementwise / O(tokens·dim) and contribute a few percent at the full size (see
  tests/train/test_flops.py for a comparison with XLA's own count, which includes them).
* The embedding is applied to all L tokens (before masking); the encoder sees the K visible tokens of
  each person-sequence; the decoder attends over all L tokens (visible latents + mask tokens).
* `train` = 3 × forward: the backward pass costs ≈ 2 × forward (gradients w.r.t. activations and
  weights, one matmul each). This slightly over-counts the first layer (no input gradient is needed
  for the raw skeleton), which is negligible.
* Persons are folded into the batch: a clip contributes `persons` person-sequences.

Return values are Python ints (exact), per step for `batch_clips` clips.
"""

from typing import Any

from stars_jax import masking


def block_flops(tokens: int, dim: int, mlp_ratio: float) -> dict[str, int]:
  """Forward matmul flops of one pre-norm transformer block on one sequence of `tokens` tokens."""
  n, d, h = tokens, dim, int(dim * mlp_ratio)
  return {
    "qkv": 2 * n * d * 3 * d,
    "attn_scores": 2 * n * n * d,  # q·kᵀ summed over heads: heads · n · n · head_dim = n · n · d
    "attn_values": 2 * n * n * d,  # attn·v
    "proj": 2 * n * d * d,
    "mlp": 2 * n * d * h * 2,  # fc1 + fc2
  }


def mamp_step_flops(
  *,
  batch_clips: int,
  persons: int = 2,
  num_frames: int = 120,
  num_joints: int = 25,
  t_patch: int = 4,
  dim: int = 256,
  depth: int = 8,
  num_heads: int = 8,
  mlp_ratio: float = 4.0,
  decoder_dim: int = 256,
  decoder_depth: int = 3,
  dim_in: int = 3,
  num_visible: int = 74,
) -> dict[str, Any]:
  """Matmul flops (multiply-add = 2) of one MAMP pretraining step on `batch_clips` clips.

  Returns {'embed', 'encoder', 'decoder', 'heads', 'forward', 'train', 'per_clip_forward',
  'per_clip_train', 'sequences', 'tokens', 'visible', 'encoder_block', 'decoder_block'}, where 'heads' =
  decoder_embed + decoder_pred, 'forward' is their sum and 'train' = 3 × 'forward' (backward ≈ 2 ×
  forward). 'encoder_block' / 'decoder_block' are the per-sequence per-block breakdowns.
  The head count does not change the matmul flops; it is only validated.
  """
  if num_frames % t_patch:
    raise ValueError(f"num_frames {num_frames} is not a multiple of t_patch {t_patch}")
  if dim % num_heads:
    raise ValueError(f"dim {dim} is not divisible by num_heads {num_heads}")
  tokens = num_frames // t_patch * num_joints  # L
  if not 0 < num_visible <= tokens:
    raise ValueError(f"num_visible {num_visible} must be in (0, {tokens}]")
  seqs = batch_clips * persons
  patch = t_patch * dim_in  # values per token

  enc_block = block_flops(num_visible, dim, mlp_ratio)
  dec_block = block_flops(tokens, decoder_dim, mlp_ratio)
  embed = seqs * 2 * tokens * patch * dim
  encoder = seqs * depth * sum(enc_block.values())
  decoder = seqs * decoder_depth * sum(dec_block.values())
  heads = seqs * (
    2 * num_visible * dim * decoder_dim  # decoder_embed on the visible latents
    + 2 * tokens * decoder_dim * patch
  )  # decoder_pred on every token
  forward = embed + encoder + decoder + heads
  return {
    "embed": embed,
    "encoder": encoder,
    "decoder": decoder,
    "heads": heads,
    "forward": forward,
    "train": 3 * forward,
    "per_clip_forward": forward // batch_clips if batch_clips else 0,
    "per_clip_train": 3 * forward // batch_clips if batch_clips else 0,
    "sequences": seqs,
    "tokens": tokens,
    "visible": num_visible,
    "encoder_block": enc_block,
    "decoder_block": dec_block,
  }


def from_config(config, batch_clips: int) -> dict[str, Any]:
  """`mamp_step_flops` for a pretraining ConfigDict (model.*, data.window, masking.mask_ratio)."""
  m = config.model
  tokens = config.data.window // m.t_patch * m.num_joints
  return mamp_step_flops(
    batch_clips=batch_clips,
    num_frames=config.data.window,
    num_joints=m.num_joints,
    t_patch=m.t_patch,
    dim=m.dim,
    depth=m.depth,
    num_heads=m.num_heads,
    mlp_ratio=m.mlp_ratio,
    decoder_dim=m.decoder_dim,
    decoder_depth=m.decoder_depth,
    num_visible=masking.num_visible(tokens, config.pretrain.masking.mask_ratio),
  )
