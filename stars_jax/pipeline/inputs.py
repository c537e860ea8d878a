"""Every input of a pipeline checked before its first step, so a typo fails in seconds naming the file and key:
each dataset's splits (keys, shapes, dtype, one-hot labels, via the readers) against the class ids the steps
use, and each checkpoint directory given as an input (a readable checkpoint holding this model's encoder)."""

import pathlib
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from stars_jax import errors
from stars_jax.data import npz, sources
from stars_jax.models import factory
from stars_jax.pipeline.steps import Step
from stars_jax.pytree import path_name
from stars_jax.train import checkpoint


class InputError(errors.BadInput, ValueError):
  """An input file of a pipeline step is missing or does not have the expected layout."""


def dataset_summary(step: Step) -> dict[str, Any]:
  """{path, train, test, classes, frames} of the step's dataset after opening both splits (the readers check the
  npz keys x_/y_<split>, shapes (N, T, 150) / (N, C), float32 and one-hot rows); errors name the step."""
  data = step.config.data
  try:
    path = sources.dataset_path(data)
    splits = {name: sources.open_split(data, name) for name in npz.SPLITS}
  except (OSError, ValueError, KeyError) as e:
    raise InputError(f"steps.{step.name} (data.path={data.path!r}): {e}") from e
  widths = {s.num_classes for s in splits.values()}
  if len(widths) != 1:
    raise InputError(f"{path}: y_train and y_test have different widths {sorted(widths)}")
  return {
    "path": str(path),
    "train": len(splits["train"]),
    "test": len(splits["test"]),
    "classes": widths.pop(),
    "frames": int(splits["train"].x.shape[1]),
    "labels": {name: np.unique(np.asarray(s.labels)).tolist() for name, s in splits.items()},
  }


def check_classes(step: Step, summary: dict[str, Any]) -> None:
  """The class ids a step names (held-out, few-shot, head width) exist in its dataset."""
  c, width, path = step.config, summary["classes"], summary["path"]
  held_out = tuple(c.data.held_out_classes)
  if held_out and max(held_out) >= width:
    raise InputError(f"steps.{step.name}: data.held_out_classes={held_out} but {path} has {width} classes")
  if step.group in ("linear", "finetune") and 0 < c[step.group].num_classes < width:
    raise InputError(
      f"steps.{step.name}.{step.group}.num_classes={c[step.group].num_classes} is narrower than the "
      f"{width} label columns of {path} (y_train)"
    )
  if step.kind == "fewshot":
    classes = fewshot_classes(step)
    if not classes:
      raise InputError(f"steps.{step.name}.classes and data.held_out_classes are both empty: no novel classes")
    for split in npz.SPLITS:
      missing = sorted(set(classes) - set(summary["labels"][split]))
      if missing:
        raise InputError(f"steps.{step.name}.classes: {path} has no {split} samples of classes {missing[:10]}")


def fewshot_classes(step: Step) -> tuple[int, ...]:
  """The novel classes of a few-shot step: its `classes`, or else `data.held_out_classes`."""
  return tuple(step.config.frozen.classes) or tuple(step.config.data.held_out_classes)


def encoder_shapes(step: Step) -> dict[str, tuple[int, ...]]:
  """'params/<path>' -> shape of the encoder the step's model config builds (abstract: nothing is computed)."""
  clip = jnp.zeros((1, 2, step.config.data.window, step.config.model.num_joints, 3))  # (N, M, T, V, C)
  abstract = jax.eval_shape(factory.encoder(step.config).init, jax.random.PRNGKey(0), clip)["params"]
  flat = jax.tree_util.tree_flatten_with_path({"params": abstract})[0]
  return {path_name(p): tuple(v.shape) for p, v in flat}


def check_checkpoint(directory: pathlib.Path, key: str, expected: dict[str, tuple[int, ...]]) -> dict[str, Any]:
  """The newest checkpoint under `directory` exists and holds every encoder tensor with this model's shape.
  `key` is the config key that named the directory. Returns {path, step}."""
  try:
    item = checkpoint.latest_item_path(directory, key)
    saved = checkpoint.saved_structure(item)
  except FileNotFoundError as e:
    raise InputError(str(e)) from e
  except Exception as e:  # noqa: BLE001  orbax reports an unreadable directory in many ways
    raise InputError(f"{directory} ({key}): not a readable checkpoint ({type(e).__name__}: {e})") from e
  flat = jax.tree_util.tree_flatten_with_path(saved, is_leaf=lambda v: hasattr(v, "shape"))[0]
  shapes = {path_name(p): tuple(v.shape) for p, v in flat if hasattr(v, "shape")}
  for name, shape in expected.items():
    if shapes.get(name) != shape:
      raise InputError(
        f"{item}: checkpoint key {name!r} has shape {shapes.get(name)}, the model expects {shape} ({key} must "
        "point at a checkpoint of this model size; config.model must match it)"
      )
  return {"path": str(item.parent.parent), "step": int(item.parent.name)}
