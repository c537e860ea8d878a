"""The stage-2 tuning models (SPEC §4.2, §4.11): the MAMP encoder (no masking) plus a head on its pooled output.

`STARS` (NNCLR and the MoCo ablation) carries the projection/prediction head; `DINOTuner` (the DINO ablation)
a single Linear. Both subclass `Encoder`, so encoder parameters keep the top-level names of a MAMP checkpoint
(the official `encoder_student.` prefix is stripped) and the head sits under `head/` (see
`stars_jax.models.heads`).

Layers are numbered for partial tuning as in timm's layer-wise decay: 0 = embeddings (joints_embed, temp_embed,
pos_embed), k + 1 = block k, depth + 1 = final norm, depth + 2 = head. With `first_tuned_layer = L` the
activations entering layer L are cut from the gradient, so layers below L run forward only.
"""

import flax.linen as nn
import jax
import jax.numpy as jnp

from stars_jax.models.heads import PretrainHead, head_dense_init
from stars_jax.models.mamp import Encoder, fold_persons


def num_layers(depth: int) -> int:
  """Layer count of the numbering above (embeddings, blocks, norm, head)."""
  return depth + 3


class TunedEncoder(Encoder):
  """The encoder with frozen layers cut from the gradient, pooled to one clip feature; subclasses add `head`."""

  first_tuned_layer: int = 0

  def _cut(self, x: jax.Array, layer: int) -> jax.Array:
    """Stops the gradient at the output of `layer` if it is the last frozen layer."""
    return jax.lax.stop_gradient(x) if layer == self.first_tuned_layer - 1 else x

  def pooled(self, clips: jax.Array) -> jax.Array:
    """Clip feature h: final-norm tokens averaged over persons and tokens. (N, M, T, V, C) -> (N, D) f32."""
    n, m = clips.shape[:2]
    tokens = self._cut(self.embed(fold_persons(clips)), 0)  # (N*M, L, D)
    for k, block in enumerate(self.blocks):
      tokens = self._cut(block(tokens, True), k + 1)
    tokens = self._cut(self.norm(tokens), self.depth + 1)
    return tokens.astype(jnp.float32).reshape(n, m * tokens.shape[1], self.dim).mean(axis=1)  # (N, D)


class STARS(TunedEncoder):
  """Encoder + PretrainHead. Call: clips (N, M, T, V, C) -> (p, z), each (N, D) float32, unnormalised."""

  head_hidden_dim: int = 4096
  bn_updates_per_step: int = 1

  def setup(self):
    super().setup()
    self.head = PretrainHead(self.head_hidden_dim, self.bn_updates_per_step)

  def __call__(self, clips: jax.Array, train: bool = True) -> tuple[jax.Array, jax.Array]:
    return self.head(self.pooled(clips), train)


class DINOTuner(TunedEncoder):
  """Encoder + Linear(D -> out_dim) (`dino_head: False`; N(0, 0.02) weight, zero bias as `weights_init`, SPEC
  §4.3). Call: clips (N, M, T, V, C) -> (N, out_dim) float32, unnormalised. No BatchNorm, so `train` is unused."""

  out_dim: int = 128

  def setup(self):
    super().setup()
    self.head = nn.Dense(self.out_dim, kernel_init=head_dense_init, dtype=jnp.float32)

  def __call__(self, clips: jax.Array, train: bool = True) -> jax.Array:
    del train
    return self.head(self.pooled(clips))
