"""The jobs `main` runs, one per `config.stage`; each returns the metrics that go into results.json.

  pretrain       MAMP stage 1 (workdir/checkpoints)
  tune           STARS stage 2 from `stars.init` (workdir/checkpoints, workdir/best)
  pretrain_tune  both in sequence (workdir/stage1, workdir/stars), then (with `probe.enabled`) the evaluation
                 suite of the stage-1 and tuned encoders against a random one: kNN, logistic, clusters,
                 few-shot / one-shot on the held-out classes, linear probe; workdir/report.md
  linear         linear probe of `linear.init` (SPEC §3.3; `linear.mode='cached'` for the fast variant)
  finetune       fine-tuning of `finetune.init` (SPEC §3.4); semi-supervised with finetune.data_ratio < 1,
                 transfer when init was pretrained on another dataset
  evaluate       kNN, logistic, cluster quality and few-shot / one-shot of the encoders in `evaluate.stage1` /
                 `evaluate.stars` (checkpoint directories) against a random one
"""
import logging
import os
import pathlib
from typing import Any, Callable

import jax
import jax.numpy as jnp
import ml_collections

from stars_jax.data import sources
from stars_jax.evaluate import features, probe, report
from stars_jax.models.mamp import Encoder, encoder_of
from stars_jax.train import checkpoint, classify, pretrain, sharding, tune


def _summary(run: dict[str, Any]) -> dict[str, Any]:
  return {"steps": run["steps"], "steps_per_epoch": run["steps_per_epoch"], "wall_time_s": run["wall_time_s"],
          "loss_history": run["history"], **(run["history"][-1] if run["history"] else {})}


def _random_encoder_params(config: ml_collections.ConfigDict, encoder) -> dict:
  clip = jnp.zeros((1, 2, config.data.window, config.model.num_joints, 3))  # (N, M, T, V, C)
  init_key, _ = jax.random.split(jax.random.PRNGKey(config.seed + 1))  # as init_state does for seed + 1
  return jax.jit(encoder.init)(init_key, clip)["params"]


def _probe(config, encoder, named_params: dict[str, dict], mesh, plot_dir=None) -> dict[str, Any]:
  """Frozen-feature protocols (kNN, few-shot, clusters, logistic) of each encoder and of a random one (made here
  unless `named_params` has 'random_init')."""
  if "random_init" not in named_params:
    named_params = {**named_params, "random_init": _random_encoder_params(config, encoder)}
  return probe.probe(encoder, named_params, sources.open_split(config.data, "train"),
                     sources.open_split(config.data, "test"), config.data,
                     config.probe.batch_size, mesh, seed=config.seed, plot_dir=plot_dir)


def _linear(config, workdir: pathlib.Path, named_params: dict[str, dict]) -> dict[str, Any]:
  """Linear probe of each encoder: {'linear': {name: best}, 'linear_last': {name: last}} (test top-1, %)."""
  results: dict[str, Any] = {"linear": {}, "linear_last": {}}
  for name, params in named_params.items():
    if config.linear.mode == "cached":
      run = classify.train_linear_cached(config, params)
    else:
      run = classify.train(config, workdir / f"linear_{name}", "linear", init=params)
    results["linear"][name], results["linear_last"][name] = run["best"], run["last"]
  return results


def _tune_summary(run: dict[str, Any]) -> dict[str, Any]:
  return {**_summary(run), "monitor": run["monitor"], "selection_split": run["monitor_split"]}


def pretrain_job(config: ml_collections.ConfigDict, workdir: pathlib.Path) -> dict[str, Any]:
  """MAMP pretraining, then (if `probe.enabled`) frozen-feature checks of the encoder vs a random one."""
  run = pretrain.train(config, workdir)
  results: dict[str, Any] = {"pretrain": _summary(run)}
  if config.probe.enabled:
    trained = features.encoder_params(jax.device_get(run["state"].params))
    results.update(_probe(config, encoder_of(run["model"]), {"stage1": trained}, run["mesh"]))
  return results


def tune_job(config: ml_collections.ConfigDict, workdir: pathlib.Path) -> dict[str, Any]:
  """STARS tuning from `stars.init`; the selected (best monitor) state is in workdir/best."""
  return {"stars": _tune_summary(tune.train(config, workdir))}


_REPORT_NOTE = (
    "Accuracies in percent (test split); silhouette, NMI and ARI as fractions (test features). knn<k>, logistic, "
    "linear and clusters: seen classes; fewshot (kNN-1) and oneshot: classes held out of both training stages. "
    "stars: the state selected by the kNN monitor on a validation split carved from the training set; linear "
    "(best): best epoch on the test split (the official convention); linear (last): last epoch.")
_EVALUATE_NOTE = (
    "Accuracies in percent (test split); silhouette, NMI and ARI as fractions (test features). knn<k>, logistic "
    "and clusters: classes outside data.held_out_classes; fewshot (kNN-1: bank = their training clips, queries = "
    "their test clips) and oneshot: the held-out classes.")


def pretrain_tune_job(config: ml_collections.ConfigDict, workdir: pathlib.Path) -> dict[str, Any]:
  """MAMP then STARS (initialised from the MAMP run's last checkpoint); with `probe.enabled`, the frozen-feature
  protocols and the linear probe of both encoders, printed and saved (workdir/report.md) as one table."""
  stage1 = pretrain.train(config, workdir / "stage1")
  tune_config = ml_collections.ConfigDict(config.to_dict())
  tune_config.stars.init = str(workdir / "stage1" / "checkpoints")
  stage2 = tune.train(tune_config, workdir / "stars")
  results: dict[str, Any] = {"pretrain": _summary(stage1), "stars": _tune_summary(stage2)}
  if config.probe.enabled:
    named = {"stage1": features.encoder_params(jax.device_get(stage1["state"].params)),
             "stars": features.encoder_params(jax.device_get(stage2["best_state"].params)),
             "stars_last": features.encoder_params(jax.device_get(stage2["state"].params))}
    results.update(_probe(config, encoder_of(stage1["model"]), named, stage1["mesh"], workdir / "plots"))
    if "linear" in config:
      results.update(_linear(config, workdir, {k: named[k] for k in ("stage1", "stars")}))
    _write_report(workdir, results, "Stage 1 (MAMP) vs tuned (STARS) encoder", _REPORT_NOTE)
  return results


def _write_report(workdir: pathlib.Path, results: dict[str, Any], title: str, note: str) -> None:
  """Prints the results table and saves it, atomically, as workdir/report.md."""
  table = report.markdown_table(results)
  tmp = workdir / "report.md.tmp"
  tmp.write_text(f"# {title}\n\n{table}\n{note}\n")
  os.replace(tmp, workdir / "report.md")
  logging.info("%s:\n%s", title, table)


def evaluate_job(config: ml_collections.ConfigDict, workdir: pathlib.Path) -> dict[str, Any]:
  """The frozen-feature protocols (kNN, logistic, clusters; few-shot / one-shot on `data.held_out_classes`) of
  the encoders in `evaluate.stage1` / `evaluate.stars` (checkpoint directories), next to a random encoder."""
  paths = {name: config.evaluate[name] for name in ("stage1", "stars") if config.evaluate[name]}
  if not paths:
    raise ValueError("evaluate.stage1 and evaluate.stars are both empty: give at least one checkpoint directory")
  encoder = Encoder(**pretrain.encoder_kwargs(config))
  random_init = _random_encoder_params(config, encoder)  # also the restore target (structure, placement)
  named = {name: checkpoint.restore_params(path, random_init, f"evaluate.{name}") for name, path in paths.items()}
  named["random_init"] = random_init
  results = _probe(config, encoder, named, sharding.make_mesh(),
                   workdir / "plots" if config.evaluate.plots else None)
  _write_report(workdir, results, "Frozen-feature protocols", _EVALUATE_NOTE)
  return results


def _downstream_summary(run: dict[str, Any]) -> dict[str, Any]:
  return {k: v for k, v in run.items() if k not in ("state", "model")}


def linear_job(config: ml_collections.ConfigDict, workdir: pathlib.Path) -> dict[str, Any]:
  """Linear probe; results['linear'] = test top-1 best (official: max over epochs) and last, in percent."""
  if config.linear.mode == "cached":
    return {"linear": classify.train_linear_cached(config, config.linear.init)}
  if config.linear.mode != "full":
    raise ValueError(f"linear.mode={config.linear.mode!r}; choose 'full' or 'cached'")
  return {"linear": _downstream_summary(classify.train(config, workdir, "linear"))}


def finetune_job(config: ml_collections.ConfigDict, workdir: pathlib.Path) -> dict[str, Any]:
  """Fine-tuning; results['finetune'] = test top-1 best and last (percent), the labelled subset size."""
  return {"finetune": _downstream_summary(classify.train(config, workdir, "finetune"))}


JOBS: dict[str, Callable[[ml_collections.ConfigDict, pathlib.Path], dict[str, Any]]] = {
    "pretrain": pretrain_job,
    "tune": tune_job,
    "pretrain_tune": pretrain_tune_job,
    "linear": linear_job,
    "finetune": finetune_job,
    "evaluate": evaluate_job,
}
