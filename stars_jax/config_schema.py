"""What each setting may be, checked when a config is loaded: a bad value fails before any model is built, in one
message naming every key at fault.

The allowed values of a choice are declared once, by the module that reads the setting (`optim.OPTIMIZERS`,
`nnclr.LOSSES`, ...); `CHOICES` only maps config keys to them. A key matches by its last components, so
`optim.name` covers `pretrain.optim.name` as well as a pipeline's `steps.stage1.pretrain.optim.name`. Every
training group (a group with `optim` and `schedule`) gets the run-length checks of `guards.check_group`.
"""

from collections.abc import Iterator
from typing import Any

import ml_collections

from stars_jax import device, errors
from stars_jax.data import sources, transforms
from stars_jax.evaluate import report
from stars_jax.models import factory
from stars_jax.train import classify, dino, guards, nnclr, optim, tune, tuning

CHOICES: dict[str, tuple[Any, ...]] = {
  "data.format": sources.FORMATS,
  "data.stream": transforms.STREAMS,
  "model.compute_dtype": device.COMPUTE_DTYPES,
  "model.attention_impl": ("", *device.ATTENTION_IMPLS),  # '': configs before 'auto' existed
  "optim.name": optim.OPTIMIZERS,
  "optim.decay_groups": optim.DECAY_GROUPS,
  "optim.clip": optim.CLIPS,
  "schedule.name": optim.SCHEDULES,
  "stars.recipe": factory.STARS_RECIPES,
  "stars.objective": tuple(tune.OBJECTIVES),
  "stars.loss": nnclr.LOSSES,
  "stars.queue.sharding": tuning.ROW_PLACEMENTS,
  "stars.monitor.split": tuning.MONITOR_SPLITS,
  "stars.moco.teacher_head_init": tuning.TEACHER_HEAD_INITS,
  "stars.dino.teacher_head_init": tuning.TEACHER_HEAD_INITS,
  "stars.dino.centering": dino.CENTERINGS,
  "linear.mode": classify.LINEAR_MODES,
  "linear.subset_draw": classify.SUBSET_DRAWS,
  "finetune.subset_draw": classify.SUBSET_DRAWS,
  "pipeline.report": tuple(report.REPORTS),
}


class SettingError(errors.BadConfig):
  """A config value outside what its key allows; the message names each key."""


def _leaves(node: ml_collections.ConfigDict, prefix: str = "") -> Iterator[tuple[str, Any]]:
  for key, value in node.items():
    path = f"{prefix}{key}"
    if isinstance(value, ml_collections.ConfigDict):
      yield path, value
      yield from _leaves(value, f"{path}.")
    else:
      yield path, value


def _choices(path: str) -> tuple[Any, ...] | None:
  return next((c for key, c in CHOICES.items() if path == key or path.endswith(f".{key}")), None)


def validate(config: ml_collections.ConfigDict, jobs: tuple[str, ...], num_devices: int) -> None:
  """Raises SettingError naming every key of `config` whose value is not allowed: `job` one of `jobs`, the
  choices of CHOICES, the training groups' run lengths and intervals (batch sizes over `num_devices`)."""
  problems = []
  if config.get("job") not in jobs:
    problems.append(f"job={config.get('job')!r}; choose one of {tuple(jobs)}")
  for path, value in _leaves(config):
    choices = _choices(path)
    if choices is not None and value not in choices:
      problems.append(f"{path}={value!r}; choose one of {choices}")
    if isinstance(value, ml_collections.ConfigDict) and {"optim", "schedule", "batch_size"} <= set(value):
      try:
        guards.check_group(value, path, num_devices)
      except ValueError as e:
        problems.append(str(e))
  if problems:
    raise SettingError("; ".join(problems))
