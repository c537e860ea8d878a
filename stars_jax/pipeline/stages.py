"""A pipeline config's stages, each resolved to the config of the job it runs and to its paths under WORKDIR.

A pipeline config has the common top level (seed, allow_config_change, data, model, sharding) and
  pipeline.order   the stage names in the order they run
  stages.<name>    kind (one of KINDS), enabled, input (the stage whose output it starts from, or a checkpoint
                   directory), data (overrides of the common data settings), and the kind's own settings: the
                   training group (`pretrain`, `stars`, `linear`, `finetune`, as the config files build them) or, for
                   kNN and few-shot, ks / batch_size / compare (more encoders) / classes.
`data.root` (optional) is the directory a relative `data.path` (of any stage) is read from.
"""

import dataclasses
import pathlib
from typing import Any

import ml_collections

from stars_jax.train import guards

# kind -> the config group of its settings ('' for the frozen-feature kinds, whose settings are the stage's own).
GROUPS = {"prepare": "", "pretrain": "pretrain", "tune": "stars", "linear": "linear", "finetune": "finetune"}
FROZEN = ("knn", "fewshot")
KINDS = (*GROUPS, *FROZEN)
# What a stage of each kind leaves for the next one: MAMP its checkpoints, STARS its monitor-selected state.
OUTPUTS = {"pretrain": "checkpoints", "tune": "best", "linear": "checkpoints", "finetune": "checkpoints"}
RESULTS = "results.json"  # under WORKDIR/<stage>/: the completion marker, written atomically with the results


@dataclasses.dataclass(frozen=True)
class Stage:
  """One resolved stage: `config` is a whole job config (stage, seed, data, model, sharding, its group);
  `inputs` maps an encoder name (a stage name, or the config key of an explicit path) to a checkpoint directory."""

  name: str
  kind: str
  enabled: bool
  workdir: pathlib.Path
  config: ml_collections.ConfigDict
  inputs: dict[str, pathlib.Path]
  upstream: tuple[str, ...]  # the stages whose outputs `inputs` name

  @property
  def group(self) -> str:
    return GROUPS.get(self.kind, "")

  @property
  def results_path(self) -> pathlib.Path:
    return self.workdir / RESULTS

  @property
  def output(self) -> pathlib.Path | None:
    return self.workdir / OUTPUTS[self.kind] if self.kind in OUTPUTS else None

  def settings(self) -> dict[str, Any]:
    """The flat settings that change this stage's numbers (a completed stage is reused only if they match)."""
    c = self.config
    if self.group:
      return guards.math_settings(c, self.group, c[self.group])
    own = ml_collections.ConfigDict({k: c.frozen[k] for k in ("input", "compare", "ks", "classes") if k in c.frozen})
    return guards.math_settings(c, "frozen", own)


def _data(config: ml_collections.ConfigDict, overrides: ml_collections.ConfigDict) -> ml_collections.ConfigDict:
  """The common data settings with a stage's overrides, `data.path` resolved against `data.root`."""
  data = config.data.to_dict()
  root = data.pop("root", "")
  data.update(overrides.to_dict())
  if data["path"] and root:
    data["path"] = str(pathlib.Path(root) / data["path"])  # an absolute path stays as it is
  return ml_collections.ConfigDict(data)


def _input(config, name: str, spec: ml_collections.ConfigDict, workdir: pathlib.Path, key: str):
  """(encoder name, checkpoint directory, upstream stage or None) of one `input` / `compare` entry."""
  if not spec:
    raise ValueError(f"{key} is empty: name the stage whose output this stage reads, or a checkpoint directory")
  if spec in config.stages:
    source = config.stages[spec]
    if source.kind not in OUTPUTS:
      raise ValueError(f"{key}={spec!r}: a {source.kind} stage leaves no checkpoint to start from")
    return spec, workdir / spec / OUTPUTS[source.kind], spec
  if spec == name:
    raise ValueError(f"{key}={spec!r}: a stage cannot read its own output")
  return key, pathlib.Path(spec), None


def resolve(config: ml_collections.ConfigDict, workdir: str | pathlib.Path) -> list[Stage]:
  """The stages of `config.pipeline.order`, in order, with their job configs and input checkpoint paths."""
  workdir = pathlib.Path(workdir)
  names = tuple(config.pipeline.order)
  unknown = [n for n in names if n not in config.stages]
  if unknown or len(set(names)) != len(names):
    raise ValueError(
      f"pipeline.order={names}: {'unknown stages ' + str(unknown) if unknown else 'a stage is listed twice'}; "
      f"config.stages has {sorted(config.stages)}"
    )
  stages: list[Stage] = []
  for name in names:
    s = config.stages[name]
    if s.kind not in KINDS:
      raise ValueError(f"stages.{name}.kind={s.kind!r}; choose one of {KINDS}")
    job = ml_collections.ConfigDict()
    job.stage = s.kind
    job.seed, job.allow_config_change = config.seed, config.allow_config_change
    job.data = _data(config, s.get("data", ml_collections.ConfigDict()))
    job.model = ml_collections.ConfigDict(config.model.to_dict())
    job.sharding = ml_collections.ConfigDict(config.sharding.to_dict())
    inputs: dict[str, pathlib.Path] = {}
    upstream: list[str] = []
    entries = [("input", s.input)] if "input" in s else []
    entries += [(f"compare[{i}]", c) for i, c in enumerate(s.get("compare", ()))]
    for field, spec in entries:
      encoder, path, source = _input(config, name, spec, workdir, f"stages.{name}.{field}")
      inputs[encoder] = path
      upstream += [source] if source else []
    group = GROUPS.get(s.kind, "")
    if group:
      job[group] = ml_collections.ConfigDict(s[group].to_dict())
      if "init" in job[group]:
        job[group].init = str(next(iter(inputs.values()), ""))
    else:
      own = {k: v for k, v in s.to_dict().items() if k not in ("kind", "enabled", "data")}
      job.frozen = ml_collections.ConfigDict(own)
    for source in upstream:  # a stage outside the order is not run here: its output must exist (checked in the plan)
      if source in names and names.index(source) > names.index(name):
        raise ValueError(f"stages.{name} reads the output of {source!r}, which runs after it in pipeline.order")
    stages.append(Stage(name, s.kind, bool(s.enabled), workdir / name, job, inputs, tuple(upstream)))
  return stages
