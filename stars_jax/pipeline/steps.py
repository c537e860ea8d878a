"""A pipeline config's steps, each resolved to the config of the job it runs and to its paths under WORKDIR.

A pipeline config (`job = 'pipeline'`) has the common top level (seed, allow_config_change, data, model, sharding)
and
  pipeline.order   the step names in the order they run
  pipeline.report  the report.md it writes (a key of stars_jax.evaluate.report.REPORTS)
  steps.<name>     kind (one of KINDS), enabled, input (what it starts from), data (overrides of the common data
                   settings), and the kind's own settings: the training group (`pretrain`, `stars`, `linear`,
                   `finetune`, as the config files build them) or, for the frozen-feature kinds, batch_size,
                   compare (more encoders) and ks / classes (knn, fewshot) or plots (probe).
An `input` or `compare` entry is a step's name (its output: a MAMP step's newest checkpoint, a STARS step's
monitor-selected state), `<step>:last` (the step's last state, WORKDIR/<step>/checkpoints), `random` (a randomly
initialised encoder, the baseline every report shows), a checkpoint directory, or `NAME=DIR` (that directory, named
NAME in the results).
`data.root` (optional) is the directory a relative `data.path` (of any step) is read from.
"""

import dataclasses
import pathlib
from typing import Any

import ml_collections

from stars_jax.train import checkpoint, guards

# kind -> the config group of its settings ('' for the frozen-feature kinds, whose settings are the step's own).
GROUPS = {"prepare": "", "pretrain": "pretrain", "tune": "stars", "linear": "linear", "finetune": "finetune"}
FROZEN = ("knn", "fewshot", "probe")
KINDS = (*GROUPS, *FROZEN)
# What a step of each kind leaves for the next one: MAMP its checkpoints, STARS its monitor-selected state.
OUTPUTS = {"pretrain": "checkpoints", "tune": "best", "linear": "checkpoints", "finetune": "checkpoints"}
LAST = ":last"  # `<step>:last`: the step's last state instead of its output
RANDOM = "random"  # a randomly initialised encoder (stars_jax.evaluate.probe.random_encoder)
RANDOM_NAME = "random_init"  # its name in the results
RESULTS = "results.json"  # under WORKDIR/<step>/: the completion marker, written atomically with the results


@dataclasses.dataclass(frozen=True)
class Step:
  """One resolved step: `config` is a whole job config (job, seed, data, model, sharding, its group); `inputs`
  maps an encoder name (a step name, `<step>_last`, 'random_init', or the config key of an explicit path) to a
  checkpoint directory, None for the random encoder."""

  name: str
  kind: str
  enabled: bool
  workdir: pathlib.Path
  config: ml_collections.ConfigDict
  inputs: dict[str, pathlib.Path | None]
  sources: dict[str, str]  # encoder name -> the step whose output (or last state) it is, for those `inputs` of steps

  @property
  def upstream(self) -> tuple[str, ...]:
    """The steps whose outputs `inputs` name."""
    return tuple(dict.fromkeys(self.sources.values()))

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
    """The flat settings that change this step's numbers (a completed step is reused only if they match)."""
    c = self.config
    if self.group:
      return guards.math_settings(c, self.group, c[self.group])
    own = ml_collections.ConfigDict({k: c.frozen[k] for k in ("input", "compare", "ks", "classes") if k in c.frozen})
    return guards.math_settings(c, "frozen", own)


def available(step: Step, steps: dict[str, Step]) -> Step:
  """`step` reading, for each input that is a finished STARS step's `best/` without a checkpoint (its monitor
  never ran, e.g. a run cut short by `max_steps`: its selected state is its last one), that step's checkpoints/."""
  inputs = dict(step.inputs)
  for encoder, name in step.sources.items():
    source, path = steps.get(name), inputs[encoder]
    finished = source is not None and source.kind == "tune" and source.results_path.is_file()
    if finished and path == source.output and not checkpoint.has_checkpoint(path):
      inputs[encoder] = source.workdir / "checkpoints"
  if inputs == step.inputs:
    return step
  config = ml_collections.ConfigDict(step.config.to_dict())
  if step.group and "init" in config[step.group]:
    config[step.group].init = str(next(iter(inputs.values()), None) or "")
  return dataclasses.replace(step, inputs=inputs, config=config)


def _data(config: ml_collections.ConfigDict, overrides: ml_collections.ConfigDict) -> ml_collections.ConfigDict:
  """The common data settings with a step's overrides, `data.path` resolved against `data.root`."""
  data = config.data.to_dict()
  root = data.pop("root", "")
  data.update(overrides.to_dict())
  if data["path"] and root:
    data["path"] = str(pathlib.Path(root) / data["path"])  # an absolute path stays as it is
  return ml_collections.ConfigDict(data)


def _input(config, name: str, spec: str, workdir: pathlib.Path, key: str):
  """(encoder name, checkpoint directory or None, upstream step or None) of one `input` / `compare` entry."""
  if not spec:
    raise ValueError(f"{key} is empty: name the step whose output this step reads, `random`, or a checkpoint directory")
  if spec == RANDOM:
    return RANDOM_NAME, None, None
  if "=" in spec:  # NAME=DIR: a checkpoint directory under the encoder name NAME
    encoder, path = spec.split("=", 1)
    return encoder, pathlib.Path(path), None
  source_name, last = (spec[: -len(LAST)], True) if spec.endswith(LAST) else (spec, False)
  if source_name in config.steps:
    source = config.steps[source_name]
    if source.kind not in OUTPUTS:
      raise ValueError(f"{key}={spec!r}: a {source.kind} step leaves no checkpoint to start from")
    if source_name == name:
      raise ValueError(f"{key}={spec!r}: a step cannot read its own output")
    if last:
      return f"{source_name}_last", workdir / source_name / "checkpoints", source_name
    return source_name, workdir / source_name / OUTPUTS[source.kind], source_name
  return key, pathlib.Path(spec), None


def resolve(config: ml_collections.ConfigDict, workdir: str | pathlib.Path) -> list[Step]:
  """The steps of `config.pipeline.order`, in order, with their job configs and input checkpoint paths."""
  workdir = pathlib.Path(workdir)
  names = tuple(config.pipeline.order)
  unknown = [n for n in names if n not in config.steps]
  if unknown or len(set(names)) != len(names):
    raise ValueError(
      f"pipeline.order={names}: {'unknown steps ' + str(unknown) if unknown else 'a step is listed twice'}; "
      f"config.steps has {sorted(config.steps)}"
    )
  steps: list[Step] = []
  for name in names:
    s = config.steps[name]
    if s.kind not in KINDS:
      raise ValueError(f"steps.{name}.kind={s.kind!r}; choose one of {KINDS}")
    job = ml_collections.ConfigDict()
    job.job = s.kind
    job.seed, job.allow_config_change = config.seed, config.allow_config_change
    job.data = _data(config, s.get("data", ml_collections.ConfigDict()))
    job.model = ml_collections.ConfigDict(config.model.to_dict())
    job.sharding = ml_collections.ConfigDict(config.sharding.to_dict())
    inputs: dict[str, pathlib.Path | None] = {}
    sources: dict[str, str] = {}
    entries = [("input", s.input)] if "input" in s else []
    entries += [(f"compare[{i}]", c) for i, c in enumerate(s.get("compare", ()))]
    for field, spec in entries:
      encoder, path, source = _input(config, name, spec, workdir, f"steps.{name}.{field}")
      inputs[encoder] = path
      if source:
        sources[encoder] = source
    group = GROUPS.get(s.kind, "")
    if group:
      job[group] = ml_collections.ConfigDict(s[group].to_dict())
      if "init" in job[group]:
        job[group].init = str(next(iter(inputs.values()), None) or "")
    else:
      own = {k: v for k, v in s.to_dict().items() if k not in ("kind", "enabled", "data")}
      job.frozen = ml_collections.ConfigDict(own)
    for (
      source
    ) in sources.values():  # a step outside the order is not run here: its output must exist (checked in the plan)
      if source in names and names.index(source) > names.index(name):
        raise ValueError(f"steps.{name} reads the output of {source!r}, which runs after it in pipeline.order")
    steps.append(Step(name, s.kind, bool(s.enabled), workdir / name, job, inputs, sources))
  return steps


def job_config(config: ml_collections.ConfigDict, name: str) -> ml_collections.ConfigDict:
  """The job config the pipeline `config` runs as its step `name` (e.g. one stage of a multi-stage job, alone);
  its inputs point under the workdir '.'."""
  return next(s.config for s in resolve(config, ".") if s.name == name)


def stage_config(config: ml_collections.ConfigDict, kind: str) -> ml_collections.ConfigDict:
  """The job config of one training stage of `kind` ('pretrain', 'tune', ...): `config` itself, or for a pipeline
  the job config of its first step of that kind (a benchmark timing one stage of a multi-stage job)."""
  if config.job != "pipeline":
    return config
  name = next((n for n in config.pipeline.order if config.steps[n].kind == kind), None)
  if name is None:
    raise ValueError(f"pipeline.order={tuple(config.pipeline.order)} has no {kind} step")
  return job_config(config, name)
