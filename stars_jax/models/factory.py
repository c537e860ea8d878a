"""Models from a config: the one place that maps `config.model` / `config.data` / a stage group to modules."""

from typing import Any

import jax
import jax.numpy as jnp
import ml_collections

from stars_jax.models.classifier import Classifier
from stars_jax.models.mamp import MAMP, Encoder
from stars_jax.models.stars import STARS, DINOTuner

COMPUTE_DTYPES = ("auto", "float32", "bfloat16", "float16")
STARS_RECIPES = ("second", "third", "merged", "full")  # which layers a STARS stage tunes (first_tuned_layer)


def compute_dtype(name: str) -> jnp.dtype:
  """'auto' -> bfloat16 on accelerators, float32 on CPU."""
  if name not in COMPUTE_DTYPES:
    raise ValueError(f"model.compute_dtype={name!r}; choose one of {COMPUTE_DTYPES}")
  if name == "auto":
    return jnp.bfloat16 if jax.default_backend() in ("gpu", "tpu") else jnp.float32
  return jnp.dtype(name)


def encoder_kwargs(config: ml_collections.ConfigDict) -> dict[str, Any]:
  """The Encoder fields every stage's model takes from config.model and config.data."""
  m = config.model
  return dict(
    dim=m.dim,
    depth=m.depth,
    num_heads=m.num_heads,
    mlp_ratio=m.mlp_ratio,
    num_frames=config.data.window,
    num_joints=m.num_joints,
    t_patch=m.t_patch,
    dtype=compute_dtype(m.compute_dtype),
    attention_impl=m.attention_impl or None,
    remat=m.remat,
  )


def encoder(config: ml_collections.ConfigDict) -> Encoder:
  return Encoder(**encoder_kwargs(config))


def mamp(config: ml_collections.ConfigDict) -> MAMP:
  m = config.model
  return MAMP(
    **encoder_kwargs(config), decoder_dim=m.decoder_dim, decoder_depth=m.decoder_depth, decoder_heads=m.decoder_heads
  )


def first_tuned_layer(recipe: str, depth: int) -> int:
  """Lowest tuned layer of a STARS recipe: 'second' the head, 'third'/'merged' the upper half of the blocks,
  'full' everything (SPEC §4.1, §4.6)."""
  layers = {"second": depth + 2, "third": depth // 2 + 1, "merged": depth // 2 + 1, "full": 0}
  if recipe not in layers:
    raise ValueError(f"stars.recipe={recipe!r}; choose one of {STARS_RECIPES}")
  return layers[recipe]


def stars(config: ml_collections.ConfigDict) -> STARS:
  s = config.stars
  return STARS(
    **encoder_kwargs(config),
    head_hidden_dim=s.head_hidden_dim,
    bn_updates_per_step=s.bn_updates_per_step,
    first_tuned_layer=first_tuned_layer(s.recipe, config.model.depth),
  )


def dino(config: ml_collections.ConfigDict) -> DINOTuner:
  s = config.stars
  return DINOTuner(
    **encoder_kwargs(config),
    out_dim=s.dino.out_dim,
    first_tuned_layer=first_tuned_layer(s.recipe, config.model.depth),
  )


def classifier(config: ml_collections.ConfigDict, protocol: str, num_classes: int) -> Classifier:
  c = config[protocol]
  return Classifier(
    **encoder_kwargs(config),
    drop_path_rate=c.drop_path,
    num_classes=num_classes,
    protocol=protocol,
    head_dropout=c.dropout,
  )
