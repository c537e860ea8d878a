"""Models from a config: the one place that maps `config.model` / `config.data` / a stage group to modules."""

import functools
import logging
from typing import Any

import jax.numpy as jnp
import ml_collections

from stars_jax import device
from stars_jax.models.classifier import Classifier
from stars_jax.models.mamp import MAMP, Encoder
from stars_jax.models.stars import STARS, DINOTuner

STARS_RECIPES = ("second", "third", "merged", "full")  # which layers a STARS stage tunes (first_tuned_layer)


def execution(config: ml_collections.ConfigDict) -> device.Execution:
  """The compute dtype and attention kernel config.model resolves to on this chip; one choice for every model of
  a run, so the head dims of the encoder and the MAMP decoder both count. Raises device.ChoiceError."""
  m = config.model
  head_dims = (m.dim // m.num_heads, m.decoder_dim // m.decoder_heads)
  choice = device.execution(m.compute_dtype, m.attention_impl, device.describe(), head_dims)
  _log_choice(choice)
  return choice


@functools.cache
def _log_choice(choice: device.Execution) -> None:
  logging.info(
    "Compute dtype %s, attention %s on %s %s",
    choice.compute_dtype,
    choice.attention_impl,
    choice.platform,
    choice.device_kind,
  )


def encoder_kwargs(config: ml_collections.ConfigDict) -> dict[str, Any]:
  """The Encoder fields every stage's model takes from config.model and config.data."""
  m, choice = config.model, execution(config)
  return dict(
    dim=m.dim,
    depth=m.depth,
    num_heads=m.num_heads,
    mlp_ratio=m.mlp_ratio,
    num_frames=config.data.window,
    num_joints=m.num_joints,
    t_patch=m.t_patch,
    dtype=jnp.dtype(choice.compute_dtype),
    attention_impl=choice.attention_impl,
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
