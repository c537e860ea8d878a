"""Clip features of a frozen encoder over a whole split (eval crop, no augmentation)."""

from collections.abc import Callable, Iterator

import jax
import jax.experimental.multihost_utils as mhu
import ml_collections
import numpy as np

from stars_jax import sharding
from stars_jax.data import pipeline, transforms
from stars_jax.data.npz import SkeletonSplit
from stars_jax.models.mamp import Encoder, pooled_features

EmbedFn = Callable[[dict, jax.Array], jax.Array]
ClipFn = Callable[[dict, jax.Array], jax.Array]  # (variables, clips (B, M, T, V, C)) -> features (B, D)


def make_feature_fn(clip_fn: ClipFn, data_config: ml_collections.ConfigDict, mesh: jax.sharding.Mesh) -> EmbedFn:
  """Jitted (variables, raw (B, 300, 150)) -> clip_fn features (B, D) of the eval crop, batch over `data`."""

  def embed(variables, x):
    clips = transforms.augment_batch(
      None,
      x,
      p_interval=tuple(data_config.eval_p_interval),
      window=data_config.window,
      rotate=False,
      stream=data_config.stream,
    )  # (B, M, T, V, C)
    return clip_fn(variables, clips)

  return jax.jit(embed, in_shardings=(None, sharding.batch_sharding(mesh)))


def make_embed_fn(encoder: Encoder, data_config: ml_collections.ConfigDict, mesh: jax.sharding.Mesh) -> EmbedFn:
  """Jitted (params, raw (B, 300, 150)) -> pooled (B, D) encoder features."""
  return make_feature_fn(
    lambda params, clips: pooled_features(encoder.apply({"params": params}, clips)), data_config, mesh
  )


def iter_features(
  embed: EmbedFn, params: dict, split: SkeletonSplit, batch_size: int, mesh: jax.sharding.Mesh
) -> Iterator[tuple[np.ndarray, np.ndarray]]:
  """(features (B', ...), labels (B',)) of consecutive global batches of `split`, in order, padding removed; every
  process gets every batch."""
  for batch in pipeline.eval_batches(
    split, global_batch_size=batch_size, process_index=jax.process_index(), process_count=jax.process_count()
  ):
    x = sharding.global_batch(batch["x"], mesh)
    valid = np.asarray(mhu.process_allgather(batch["valid"], tiled=True))
    feats = np.asarray(mhu.process_allgather(embed(params, x), tiled=True))[valid]
    yield feats, np.asarray(mhu.process_allgather(batch["label"], tiled=True))[valid]


def extract(
  embed: EmbedFn, params: dict, split: SkeletonSplit, batch_size: int, mesh: jax.sharding.Mesh
) -> tuple[np.ndarray, np.ndarray]:
  """Pooled features (N, D) float32 and labels (N,) of every sample of `split`, in order."""
  feats, labels = zip(*iter_features(embed, params, split, batch_size, mesh))
  return np.concatenate(feats).astype(np.float32), np.concatenate(labels)
