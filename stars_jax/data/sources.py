"""Resolves a data config to an npz file in the official layout (a real dataset or the synthetic one)."""
import pathlib

import ml_collections

from stars_jax.data import synthetic


def synthetic_spec(cfg: ml_collections.ConfigDict) -> synthetic.SyntheticSpec:
  return synthetic.SyntheticSpec(
      num_classes=cfg.num_classes, num_subjects=cfg.num_subjects, num_cameras=cfg.num_cameras,
      num_repetitions=cfg.num_repetitions, seed=cfg.seed)


def dataset_path(data_config: ml_collections.ConfigDict) -> pathlib.Path:
  """`data.path` if set; otherwise the synthetic split file, generated on first use."""
  if data_config.path:
    path = pathlib.Path(data_config.path)
    if not path.is_file():
      raise FileNotFoundError(
          f"Dataset file {path} not found (config key data.path). Build it with the scripts in data_prep/, "
          "or set data.path='' to use the embedded synthetic dataset.")
    return path
  cfg = data_config.synthetic
  paths = synthetic.ensure_synthetic(synthetic_spec(cfg), cfg.dir)
  if cfg.split not in paths:
    raise KeyError(f"data.synthetic.split={cfg.split!r}; choose one of {sorted(paths)}")
  return paths[cfg.split]
