"""The jobs `main` runs, one per `config.job`; each returns the metrics that go into results.json.

  pretrain   MAMP stage 1 (workdir/checkpoints); with `evaluate.enabled`, frozen-feature checks of the encoder
             against a random one
  tune       STARS stage 2 from `stars.init` (workdir/checkpoints, workdir/best)
  linear     linear probe of `linear.init` (SPEC §3.3; `linear.mode='cached'` for the fast variant)
  finetune   fine-tuning of `finetune.init` (SPEC §3.4); semi-supervised with finetune.data_ratio < 1, transfer
             when init was pretrained on another dataset
  evaluate   kNN, logistic, cluster quality and few-shot / one-shot of the encoders in `evaluate.stage1` /
             `evaluate.stars` (checkpoint directories) against a random one
  pipeline   several of these in order, each reading an earlier one's output (stars_jax.pipeline): the main job,
             the tuning ablation, the real-data recipes and the paper rows

Every job gets the job's one mesh and builds stages from `stars_jax.train`.
"""

import logging
import pathlib
from collections.abc import Callable
from typing import Any

import jax
import ml_collections

from stars_jax.evaluate import probe, report
from stars_jax.models.mamp import encoder_params
from stars_jax.pipeline import job as pipeline_job
from stars_jax.train import checkpoint, classify, linear_cached, pretrain, tune

Job = Callable[[ml_collections.ConfigDict, pathlib.Path, jax.sharding.Mesh], dict[str, Any]]


def pretrain_job(config: ml_collections.ConfigDict, workdir: pathlib.Path, mesh) -> dict[str, Any]:
  """MAMP pretraining, then (if `evaluate.enabled`) frozen-feature checks of the encoder vs a random one."""
  stage1 = pretrain.train(config, workdir, mesh)
  results: dict[str, Any] = {"pretrain": stage1.summary}
  if config.evaluate.enabled:
    trained = encoder_params(jax.device_get(stage1.state.params))
    named = {"stage1": trained, "random_init": probe.random_encoder(config, mesh)}
    results.update(probe.probe_job(config, named, config.evaluate.batch_size, mesh))
  return results


def tune_job(config: ml_collections.ConfigDict, workdir: pathlib.Path, mesh) -> dict[str, Any]:
  """STARS tuning from `stars.init`; the selected (best monitor) state is in workdir/best."""
  return {"stars": tune.train(config, workdir, mesh).summary}


def evaluate_job(config: ml_collections.ConfigDict, workdir: pathlib.Path, mesh) -> dict[str, Any]:
  """The frozen-feature protocols (kNN, logistic, clusters; few-shot / one-shot on `data.held_out_classes`) of
  the encoders in `evaluate.stage1` / `evaluate.stars` (checkpoint directories), next to a random encoder."""
  paths = {name: config.evaluate[name] for name in ("stage1", "stars") if config.evaluate[name]}
  if not paths:
    raise ValueError("evaluate.stage1 and evaluate.stars are both empty: give at least one checkpoint directory")
  random_init = probe.random_encoder(config, mesh)  # also the restore target (structure, placement)
  named = {name: checkpoint.restore_params(path, random_init, f"evaluate.{name}") for name, path in paths.items()}
  named["random_init"] = random_init
  plot_dir = workdir / "plots" if config.evaluate.plots else None
  results = probe.probe_job(config, named, config.evaluate.batch_size, mesh, plot_dir)
  logging.info("Report:\n%s", report.write_report(workdir, {**results, "config": config.to_dict()}))
  return results


def linear_job(config: ml_collections.ConfigDict, workdir: pathlib.Path, mesh) -> dict[str, Any]:
  """Linear probe; results['linear'] = test top-1 best (official: max over epochs) and last, in percent."""
  if config.linear.mode == "cached":
    return {"linear": linear_cached.train(config, config.linear.init, mesh)}
  return {"linear": classify.train(config, workdir, "linear", mesh).summary}


def finetune_job(config: ml_collections.ConfigDict, workdir: pathlib.Path, mesh) -> dict[str, Any]:
  """Fine-tuning; results['finetune'] = test top-1 best and last (percent), the labelled subset size."""
  return {"finetune": classify.train(config, workdir, "finetune", mesh).summary}


JOBS: dict[str, Job] = {
  "pretrain": pretrain_job,
  "tune": tune_job,
  "linear": linear_job,
  "finetune": finetune_job,
  "evaluate": evaluate_job,
  "pipeline": pipeline_job.run,
}
