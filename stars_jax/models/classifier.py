"""The downstream action classifier (SPEC §2.9): the MAMP encoder without masking plus a linear-probe or fine-tune
head. Encoder parameters keep the top-level names of a MAMP checkpoint; the head sits under `head/`
(PyTorch name map in `stars_jax.models.heads`).
"""

import jax

from stars_jax.models.heads import FinetuneHead, LinearHead
from stars_jax.models.mamp import Encoder, pooled_features

PROTOCOLS = ("linear", "finetune")


class Classifier(Encoder):
  """clips (N, M, T, V, C) -> logits (N, num_classes) float32.

  protocol 'linear': mean-pooled final-norm feature -> LinearHead; the encoder runs in inference mode (its
  output is cut from the gradient, so only the head trains). protocol 'finetune': the whole model trains, with
  drop path in the blocks and dropout in the FinetuneHead.
  """

  num_classes: int = 60
  protocol: str = "linear"
  head_hidden_dim: int = 2048
  head_dropout: float = 0.3

  def setup(self):
    super().setup()
    if self.protocol not in PROTOCOLS:
      raise ValueError(f"protocol={self.protocol!r}; choose one of {PROTOCOLS}")
    if self.protocol == "linear":
      self.head = LinearHead(self.num_classes)
    else:
      self.head = FinetuneHead(self.num_classes, self.head_hidden_dim, self.head_dropout)

  def __call__(self, clips: jax.Array, train: bool = False) -> jax.Array:
    if self.protocol == "linear":
      features = jax.lax.stop_gradient(super().__call__(clips, deterministic=True))  # (N, M, TP, V, D)
      return self.head(pooled_features(features), train)
    return self.head(super().__call__(clips, deterministic=not train), train)
