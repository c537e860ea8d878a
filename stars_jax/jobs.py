"""The jobs `main` runs, one per `config.stage`; each returns the metrics that go into results.json.

  pretrain       MAMP stage 1 (workdir/checkpoints); with `evaluate.enabled`, frozen-feature checks of the
                 encoder against a random one
  tune           STARS stage 2 from `stars.init` (workdir/checkpoints, workdir/best)
  pretrain_tune  both in sequence (workdir/stage1, workdir/stars), then (with `evaluate.enabled`) the evaluation
                 suite of the stage-1 and tuned encoders against a random one: kNN, logistic, clusters,
                 few-shot / one-shot on the held-out classes, linear probe; workdir/report.md, and with
                 `evaluate.plots` workdir/plots (t-SNE, confusion, loss and kNN-monitor curves)
  linear         linear probe of `linear.init` (SPEC §3.3; `linear.mode='cached'` for the fast variant)
  finetune       fine-tuning of `finetune.init` (SPEC §3.4); semi-supervised with finetune.data_ratio < 1,
                 transfer when init was pretrained on another dataset
  evaluate       kNN, logistic, cluster quality and few-shot / one-shot of the encoders in `evaluate.stage1` /
                 `evaluate.stars` (checkpoint directories) against a random one
  ablation       stage 1 (or `ablation.stage1`), then tuning with each of `ablation.objectives` from it
                 (workdir/<objective>), then the frozen-feature protocols of all of them against a random encoder

Every job gets the job's one mesh and builds stages from `stars_jax.train`.
"""

import logging
import pathlib
from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
import ml_collections

from stars_jax import sharding
from stars_jax.data import class_names, sources
from stars_jax.evaluate import curves, probe, report
from stars_jax.models import factory
from stars_jax.models.mamp import encoder_params
from stars_jax.pipeline import job as pipeline_job
from stars_jax.train import checkpoint, classify, guards, linear_cached, pretrain, tune

Job = Callable[[ml_collections.ConfigDict, pathlib.Path, jax.sharding.Mesh], dict[str, Any]]


def _random_encoder_params(config: ml_collections.ConfigDict, mesh: jax.sharding.Mesh) -> dict:
  """A randomly initialised encoder (the baseline column), replicated over the mesh."""
  clip = jnp.zeros((1, 2, config.data.window, config.model.num_joints, 3))  # (N, M, T, V, C)
  init_key, _ = jax.random.split(jax.random.PRNGKey(config.seed + 1))  # a key no training stage uses
  init = jax.jit(factory.encoder(config).init, out_shardings=sharding.replicated(mesh))
  return init(init_key, clip)["params"]


def _frozen_protocols(
  config: ml_collections.ConfigDict, named_params: dict[str, dict], mesh, plot_dir: pathlib.Path | None = None
) -> dict[str, Any]:
  """Frozen-feature protocols (kNN, few-shot, clusters, logistic) of each encoder and of a random one (made here
  unless `named_params` has 'random_init')."""
  if "random_init" not in named_params:
    named_params = {**named_params, "random_init": _random_encoder_params(config, mesh)}
  train_split = sources.open_split(config.data, "train")
  return probe.probe(
    factory.encoder(config),
    named_params,
    train_split,
    sources.open_split(config.data, "test"),
    config.data,
    config.evaluate.batch_size,
    mesh,
    seed=config.seed,
    plot_dir=plot_dir,
    class_names=class_names.class_names(config.data, train_split.num_classes),
  )


def _linear(config, workdir: pathlib.Path, named_params: dict[str, dict], mesh) -> dict[str, Any]:
  """Linear probe of each encoder: {'linear': {name: best}, 'linear_last': {name: last}} (test top-1, %)."""
  results: dict[str, Any] = {"linear": {}, "linear_last": {}}
  for name, params in named_params.items():
    if config.linear.mode == "cached":
      summary = linear_cached.train(config, params, mesh)
    else:
      summary = classify.train(config, workdir / f"linear_{name}", "linear", mesh, init=params).summary
    results["linear"][name], results["linear_last"][name] = summary["best"], summary["last"]
  return results


def _encoder(state) -> dict:
  return encoder_params(jax.device_get(state.params))


def _write_report(workdir: pathlib.Path, results: dict[str, Any], stage: str) -> None:
  """Prints the results table and saves it as workdir/report.md."""
  logging.info("Report:\n%s", report.write_report(workdir, results, stage))


def pretrain_job(config: ml_collections.ConfigDict, workdir: pathlib.Path, mesh) -> dict[str, Any]:
  """MAMP pretraining, then (if `evaluate.enabled`) frozen-feature checks of the encoder vs a random one."""
  stage1 = pretrain.train(config, workdir, mesh)
  results: dict[str, Any] = {"pretrain": stage1.summary}
  if config.evaluate.enabled:
    results.update(_frozen_protocols(config, {"stage1": _encoder(stage1.state)}, mesh))
  return results


def tune_job(config: ml_collections.ConfigDict, workdir: pathlib.Path, mesh) -> dict[str, Any]:
  """STARS tuning from `stars.init`; the selected (best monitor) state is in workdir/best."""
  return {"stars": tune.train(config, workdir, mesh).summary}


def pretrain_tune_job(config: ml_collections.ConfigDict, workdir: pathlib.Path, mesh) -> dict[str, Any]:
  """MAMP then STARS (initialised from the MAMP run's last checkpoint); with `evaluate.enabled`, the frozen-
  feature protocols and the linear probe of both encoders and of a random one, printed and saved
  (workdir/report.md) as one table."""
  tune_config = ml_collections.ConfigDict(config.to_dict())
  tune_config.stars.init = str(workdir / "stage1" / "checkpoints")
  # Every later stage is built (its settings checked) before stage 1 trains, so a typo fails in seconds.
  tune.stage(tune_config, mesh)
  if config.evaluate.enabled and "linear" in config:
    _check_linear(config, mesh)
  stage1 = pretrain.train(config, workdir / "stage1", mesh)
  stage2 = tune.train(tune_config, workdir / "stars", mesh)
  results: dict[str, Any] = {"pretrain": stage1.summary, "stars": stage2.summary}
  if config.evaluate.enabled:
    named = {"stage1": _encoder(stage1.state), "stars": _encoder(stage2.selected), "stars_last": _encoder(stage2.state)}
    named["random_init"] = _random_encoder_params(config, mesh)
    plot_dir = workdir / "plots" if config.evaluate.plots else None
    results.update(_frozen_protocols(config, named, mesh, plot_dir))
    if plot_dir is not None:
      curves.plot_training_curves({"stage1": stage1.summary, "stars": stage2.summary}, plot_dir)
    if "linear" in config:
      results.update(_linear(config, workdir, {k: named[k] for k in ("stage1", "stars", "random_init")}, mesh))
    _write_report(workdir, results, config.stage)
  return results


def evaluate_job(config: ml_collections.ConfigDict, workdir: pathlib.Path, mesh) -> dict[str, Any]:
  """The frozen-feature protocols (kNN, logistic, clusters; few-shot / one-shot on `data.held_out_classes`) of
  the encoders in `evaluate.stage1` / `evaluate.stars` (checkpoint directories), next to a random encoder."""
  paths = {name: config.evaluate[name] for name in ("stage1", "stars") if config.evaluate[name]}
  if not paths:
    raise ValueError("evaluate.stage1 and evaluate.stars are both empty: give at least one checkpoint directory")
  random_init = _random_encoder_params(config, mesh)  # also the restore target (structure, placement)
  named = {name: checkpoint.restore_params(path, random_init, f"evaluate.{name}") for name, path in paths.items()}
  named["random_init"] = random_init
  results = _frozen_protocols(config, named, mesh, workdir / "plots" if config.evaluate.plots else None)
  _write_report(workdir, results, config.stage)
  return results


def ablation_job(config: ml_collections.ConfigDict, workdir: pathlib.Path, mesh) -> dict[str, Any]:
  """The tuning objectives side by side: one stage-1 encoder (`ablation.stage1`, a checkpoint directory, or trained
  here under workdir/stage1), tuned with each of `ablation.objectives` (workdir/<objective>, each resumed or
  skipped when complete), then kNN, logistic, clusters and few-shot / one-shot of every encoder; report.md."""
  tune_configs = {}
  for objective in config.ablation.objectives:
    tune_config = ml_collections.ConfigDict(config.to_dict())
    tune_config.stars.objective = objective
    tune_config.stars.init = config.ablation.stage1 or str(workdir / "stage1" / "checkpoints")
    tune.stage(tune_config, mesh)  # every objective's settings checked before stage 1 trains
    tune_configs[objective] = tune_config
  results: dict[str, Any] = {}
  if not config.ablation.stage1:
    results["pretrain"] = pretrain.train(config, workdir / "stage1", mesh).summary
  random_init = _random_encoder_params(config, mesh)
  named = {"stage1": checkpoint.restore_params(tune_configs[objective].stars.init, random_init, "ablation.stage1")}
  for objective, tune_config in tune_configs.items():
    tuned = tune.train(tune_config, workdir / objective, mesh)
    results[objective] = tuned.summary
    named[objective] = _encoder(tuned.selected)
  named["random_init"] = random_init
  results.update(_frozen_protocols(config, named, mesh, workdir / "plots" if config.evaluate.plots else None))
  _write_report(workdir, results, config.stage)
  return results


def _check_linear(config: ml_collections.ConfigDict, mesh) -> None:
  """The linear probe's settings, checked before the stages it follows train."""
  if config.linear.mode not in classify.LINEAR_MODES:
    raise ValueError(f"linear.mode={config.linear.mode!r}; choose one of {classify.LINEAR_MODES}")
  guards.check_group(config.linear, "linear", mesh.size)
  if config.linear.mode == "full":
    classify.stage(config, None, "linear", init={})


def linear_job(config: ml_collections.ConfigDict, workdir: pathlib.Path, mesh) -> dict[str, Any]:
  """Linear probe; results['linear'] = test top-1 best (official: max over epochs) and last, in percent."""
  if config.linear.mode not in classify.LINEAR_MODES:
    raise ValueError(f"linear.mode={config.linear.mode!r}; choose one of {classify.LINEAR_MODES}")
  if config.linear.mode == "cached":
    return {"linear": linear_cached.train(config, config.linear.init, mesh)}
  return {"linear": classify.train(config, workdir, "linear", mesh).summary}


def finetune_job(config: ml_collections.ConfigDict, workdir: pathlib.Path, mesh) -> dict[str, Any]:
  """Fine-tuning; results['finetune'] = test top-1 best and last (percent), the labelled subset size."""
  return {"finetune": classify.train(config, workdir, "finetune", mesh).summary}


JOBS: dict[str, Job] = {
  "pretrain": pretrain_job,
  "tune": tune_job,
  "pretrain_tune": pretrain_tune_job,
  "linear": linear_job,
  "finetune": finetune_job,
  "evaluate": evaluate_job,
  "pipeline": pipeline_job.run,
  "ablation": ablation_job,
}
