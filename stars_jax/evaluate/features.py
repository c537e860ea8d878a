"""Clip features of a frozen encoder over a whole split (eval crop, no augmentation)."""
import functools

import jax
import jax.experimental.multihost_utils
import jax.numpy as jnp
import ml_collections
import numpy as np

from stars_jax.data import pipeline, transforms
from stars_jax.data.npz import SkeletonSplit
from stars_jax.models.mamp import Encoder, pooled_features
from stars_jax.train import sharding


def encoder_params(params: dict) -> dict:
  """The encoder's sub-tree of a pretraining (or downstream) parameter tree: drops decoder*/mask*/head*."""
  return {k: v for k, v in params.items() if not k.startswith(("decoder", "mask", "head"))}


def extract(encoder: Encoder, params: dict, split: SkeletonSplit, data_config: ml_collections.ConfigDict,
            batch_size: int, mesh: jax.sharding.Mesh) -> tuple[np.ndarray, np.ndarray]:
  """Pooled features (N, D) float32 and labels (N,) of every sample of `split`, in order."""
  @functools.partial(jax.jit, in_shardings=(None, sharding.batch_sharding(mesh)))
  def embed(params, x):
    clips = transforms.augment_batch(jax.random.PRNGKey(0), x, p_interval=tuple(data_config.eval_p_interval),
                                     window=data_config.window, rotate=False)  # (B, M, T, V, C)
    return pooled_features(encoder.apply({"params": params}, clips))  # (B, D)

  feats, labels = [], []
  for batch in pipeline.eval_batches(split, global_batch_size=batch_size, process_index=jax.process_index(),
                                     process_count=jax.process_count()):
    x = jax.make_array_from_process_local_data(sharding.batch_sharding(mesh), batch["x"])
    f = jax.experimental.multihost_utils.process_allgather(embed(params, x), tiled=True)
    valid = jax.experimental.multihost_utils.process_allgather(batch["valid"], tiled=True)
    lab = jax.experimental.multihost_utils.process_allgather(batch["label"], tiled=True)
    feats.append(np.asarray(f)[np.asarray(valid)])
    labels.append(np.asarray(lab)[np.asarray(valid)])
  return np.concatenate(feats).astype(np.float32), np.concatenate(labels)
