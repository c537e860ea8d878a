"""Resolves a data config to its dataset: an npz in the official layout (real or synthetic) or a TFDS build."""

import pathlib

import ml_collections

from stars_jax import errors
from stars_jax.data import npz, synthetic

FORMATS = ("npz", "array_record")


def synthetic_spec(cfg: ml_collections.ConfigDict) -> synthetic.SyntheticSpec:
  return synthetic.SyntheticSpec(
    num_classes=cfg.num_classes,
    actions=tuple(cfg.actions),
    num_subjects=cfg.num_subjects,
    num_cameras=cfg.num_cameras,
    num_repetitions=cfg.num_repetitions,
    seed=cfg.seed,
  )


def dataset_path(data_config: ml_collections.ConfigDict) -> pathlib.Path:
  """`data.path` if set; otherwise the synthetic split file, generated on first use."""
  if data_config.format == "array_record":
    return pathlib.Path(data_config.path)  # a TFDS build directory, checked by its reader
  if data_config.path:
    path = pathlib.Path(data_config.path)
    if not path.is_file():
      raise FileNotFoundError(
        f"Dataset file {path} not found (config key data.path). Build it with the scripts in data_prep/, "
        "or set data.path='' to use the embedded synthetic dataset."
      )
    return path
  cfg = data_config.synthetic
  paths = synthetic.ensure_synthetic(synthetic_spec(cfg), cfg.dir)
  if cfg.split not in paths:
    raise errors.BadConfig(f"data.synthetic.split={cfg.split!r}; choose one of {sorted(paths)}")
  return paths[cfg.split]


def open_split(data_config: ml_collections.ConfigDict, split: str) -> npz.SkeletonSplit:
  """The 'train' or 'test' split of the configured dataset, in the format `data.format` names."""
  data_format = data_config.format
  if data_format not in FORMATS:
    raise errors.BadConfig(f"data.format={data_format!r}; choose one of {FORMATS}")
  if data_format == "array_record":
    from stars_jax.data import tfds_reader  # needs tensorflow_datasets, only for this format

    return tfds_reader.open_split(dataset_path(data_config), split)
  return npz.open_split(dataset_path(data_config), split)


def open_seen_split(data_config: ml_collections.ConfigDict, split: str) -> npz.SkeletonSplit:
  """`open_split` without the classes in `data.held_out_classes` (those every training stage leaves out); an
  empty result is an error naming the file, before anything trains on or is evaluated against it."""
  opened = npz.without_classes(open_split(data_config, split), data_config.held_out_classes)
  if not len(opened):
    held_out = " outside data.held_out_classes" if len(data_config.held_out_classes) else ""
    raise npz.NpzFormatError(f"{opened.path}: the {split} split has no samples{held_out}")
  return opened
