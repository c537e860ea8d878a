"""`stars-jax extract --config=CONFIG --init=DIR --out=FILE.npz`: a frozen encoder's features of one split.

  stars-jax extract --config=configs/mamp.py:ntu60_xsub --init=runs/stars_ntu60_xsub_third/best \
      --split=test --out=features.npz [--data=/data/NTU60_XSub.npz] [--per_token] [--batch_size=256]

Writes an uncompressed npz with `features` float32 — (N, D) mean-pooled over persons and tokens, or with
--per_token (N, M, T/t_patch, V, D) — and `labels` (N,) int32, for every sample of the split in file order (eval
crop, no augmentation, as the kNN and linear protocols see them). The model comes from the config, the weights
from --init (a MAMP run's checkpoints/, a STARS run's best/, an imported official checkpoint). Batches run sharded
over all devices and are written to disk as they come, so an NTU-120-size split never sits whole in memory; the
file appears complete or not at all. In Python: `extract_features(config, init, out, ...)`.
"""

import argparse
import logging
import os
import pathlib
import sys
import tempfile
import zipfile

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
from numpy.lib import format as npy_format

from stars_jax import config_lib, errors, io, sharding
from stars_jax.data import npz, sources
from stars_jax.evaluate import features
from stars_jax.models import factory
from stars_jax.models.mamp import pooled_features
from stars_jax.train import checkpoint


def extract_features(
  config: ml_collections.ConfigDict,
  init: str | pathlib.Path,
  out: str | pathlib.Path,
  *,
  split: str = "test",
  per_token: bool = False,
  batch_size: int = 256,
  init_epoch: int = -1,
  mesh: jax.sharding.Mesh | None = None,
) -> dict[str, object]:
  """Writes the features of `split` of `config.data` under the encoder of `init` to the npz `out` (process 0);
  returns {'num_samples', 'shape', 'out'}."""
  mesh = mesh or sharding.make_mesh()
  encoder = factory.encoder(config)
  clip = jnp.zeros((1, 2, config.data.window, config.model.num_joints, 3))  # (N, M, T, V, C)
  target = jax.eval_shape(encoder.init, jax.random.PRNGKey(0), clip)["params"]
  target = jax.tree.map(lambda t: jax.ShapeDtypeStruct(t.shape, t.dtype, sharding=sharding.replicated(mesh)), target)
  params = checkpoint.restore_params(init, target, "extract --init", init_epoch)

  def per_clip(p: dict, clips: jax.Array) -> jax.Array:  # (B, M, T, V, C) -> (B, M, TP, V, D) or pooled (B, D)
    tokens = encoder.apply({"params": p}, clips)
    return tokens if per_token else pooled_features(tokens)

  embed = features.make_feature_fn(per_clip, config.data, mesh)
  data = sources.open_split(config.data, split)
  out = pathlib.Path(out)
  writer = _NpzWriter(out, len(data)) if jax.process_index() == 0 else None
  for feats, labels in features.iter_features(embed, params, data, batch_size, mesh):
    if writer is not None:
      writer.append(feats.astype(np.float32), labels.astype(np.int32))
  shape = writer.close() if writer is not None else None
  logging.info("extract: %d samples of %s (%s) -> %s %s", len(data), data.path, split, out, shape)
  return {"num_samples": len(data), "shape": shape, "out": str(out)}


class _NpzWriter:
  """Streams row blocks into .npy files in a temporary directory beside `out`, then stores them in `out` (an npz,
  uncompressed), written atomically."""

  def __init__(self, out: pathlib.Path, num_rows: int):
    out.parent.mkdir(parents=True, exist_ok=True)
    self._out, self._rows, self._done = out, num_rows, 0
    self._dir = tempfile.TemporaryDirectory(dir=out.parent, prefix=f".{out.name}.")
    self._features: np.ndarray | None = None
    self._labels = np.zeros((num_rows,), np.int32)

  def append(self, feats: np.ndarray, labels: np.ndarray) -> None:
    if self._features is None:
      self._features = npy_format.open_memmap(
        os.path.join(self._dir.name, "features.npy"), mode="w+", dtype=np.float32, shape=(self._rows, *feats.shape[1:])
      )
    self._features[self._done : self._done + len(feats)] = feats
    self._labels[self._done : self._done + len(labels)] = labels
    self._done += len(feats)

  def close(self) -> tuple[int, ...]:
    if self._done != self._rows or self._features is None:
      raise RuntimeError(f"{self._out}: wrote {self._done} of {self._rows} rows")
    self._features.flush()
    shape = tuple(self._features.shape)
    del self._features
    np.save(os.path.join(self._dir.name, "labels.npy"), self._labels)
    with io.atomic_path(self._out) as tmp:
      with zipfile.ZipFile(tmp, "w", zipfile.ZIP_STORED, allowZip64=True) as zf:
        for name in ("features", "labels"):
          zf.write(os.path.join(self._dir.name, f"{name}.npy"), f"{name}.npy")
    self._dir.cleanup()
    return shape


def main(argv: list[str]) -> int:
  parser = argparse.ArgumentParser(prog="stars-jax extract", description=__doc__)
  parser.add_argument("--config", required=True, help="config file[:arg] giving the model and data settings")
  parser.add_argument("--init", required=True, help="checkpoint directory of the encoder")
  parser.add_argument("--out", required=True, help="output .npz")
  parser.add_argument("--split", default="test", choices=npz.SPLITS)
  parser.add_argument("--data", default=None, help="dataset file (default: the config's data.path)")
  parser.add_argument("--per_token", action="store_true", help="per-token features instead of pooled ones")
  parser.add_argument("--batch_size", type=int, default=256, help="global batch (a multiple of the devices)")
  parser.add_argument("--init_epoch", type=int, default=-1, help="the checkpoint after this many epochs (-1: newest)")
  args = parser.parse_args(argv)
  try:
    config = config_lib.load_config(args.config)
    if args.data is not None:
      config.data.path = args.data
    summary = extract_features(
      config,
      args.init,
      args.out,
      split=args.split,
      per_token=args.per_token,
      batch_size=args.batch_size,
      init_epoch=args.init_epoch,
    )
  except (OSError, ValueError, KeyError, checkpoint.CheckpointError, errors.BadInput) as e:
    print(f"stars-jax extract: {e}", file=sys.stderr)
    return 2
  print(f"wrote {summary['out']}: features {summary['shape']}")
  return 0
