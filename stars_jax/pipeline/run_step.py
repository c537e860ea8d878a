"""Runs one pipeline step and returns its metrics (JSON). Training steps run through stars_jax.train (which
resumes from WORKDIR/<step>/checkpoints and checkpoints at SIGTERM); kNN, few-shot and probe steps extract the
frozen features of their encoders (minutes at most: they are rerun whole when interrupted)."""

from collections.abc import Mapping
from typing import Any

import jax
import numpy as np

from stars_jax.evaluate import curves, features, fewshot, knn, probe
from stars_jax.models import factory
from stars_jax.pipeline import estimate
from stars_jax.pipeline.inputs import fewshot_classes
from stars_jax.pipeline.steps import Step
from stars_jax.train import checkpoint, classify, linear_cached, pretrain, tune

# The metrics key of a training step's summary, by kind (what the report's training curves plot).
SUMMARIES = {"pretrain": "pretrain", "tune": "stars"}


def config_key(step: Step, encoder: str) -> str:
  """The config key that named an encoder's checkpoint directory (for error messages)."""
  main = next(iter(step.inputs))
  return f"steps.{step.name}.input" if encoder == main else f"steps.{step.name}.compare ({encoder})"


def encoders(step: Step, mesh: jax.sharding.Mesh) -> dict[str, dict]:
  """{encoder name: parameters} of every input of a step, restored onto a random encoder (also the one the
  `random` input stands for), replicated over the mesh."""
  target = probe.random_encoder(step.config, mesh)
  return {
    name: target if path is None else checkpoint.restore_params(path, target, config_key(step, name))
    for name, path in step.inputs.items()
  }


def frozen_features(step: Step, mesh: jax.sharding.Mesh, batch_size: int) -> dict[str, dict[str, tuple]]:
  """{encoder: {split: (features (N, D), labels (N,))}} of every input encoder on the step's splits."""
  embed = features.make_embed_fn(factory.encoder(step.config), step.config.data, mesh)
  splits = estimate.frozen_splits(step)
  return {
    encoder: {s: features.extract(embed, params, split, batch_size, mesh) for s, split in splits.items()}
    for encoder, params in encoders(step, mesh).items()
  }


def knn_step(step: Step, mesh: jax.sharding.Mesh) -> dict[str, Any]:
  """kNN top-1 (percent) for every k of the STARS knn_eval protocol (SPEC §4.10): pooled final-norm features of
  the eval crop, L2-normalised, cosine, uniform vote; bank = the training split, queries = the test split."""
  f = step.config.frozen
  feats = frozen_features(step, mesh, f.batch_size)
  num_classes = estimate.frozen_splits(step)["train"].num_classes
  out: dict[str, Any] = {"encoder": next(iter(step.inputs))}
  for encoder, split in feats.items():
    (tr_x, tr_y), (te_x, te_y) = split["train"], split["test"]
    for k, acc in knn.knn_accuracies(tr_x, tr_y, te_x, te_y, ks=tuple(f.ks), num_classes=num_classes).items():
      out.setdefault(f"knn{k}", {})[encoder] = acc
  return out


def fewshot_step(step: Step, mesh: jax.sharding.Mesh) -> dict[str, Any]:
  """The STARS few-shot protocol (SPEC §1.9): kNN top-1 on classes the encoder never saw, bank = their training
  clips, queries = their test clips (percent, for every k)."""
  f = step.config.frozen
  classes = fewshot_classes(step)
  feats = frozen_features(step, mesh, f.batch_size)
  out: dict[str, Any] = {"encoder": next(iter(step.inputs)), "classes": list(classes)}
  for encoder, split in feats.items():
    (tr_x, tr_y), (te_x, te_y) = split["train"], split["test"]
    out["clips"] = {"train": len(tr_y), "test": len(te_y)}
    accs = fewshot.fewshot_knn(tr_x, np.asarray(tr_y), te_x, np.asarray(te_y), classes, ks=tuple(f.ks))
    for k, acc in accs.items():
      out.setdefault(f"fewshot_knn{k}", {})[encoder] = acc
  return out


def probe_step(step: Step, mesh: jax.sharding.Mesh, earlier: Mapping[str, Mapping[str, Any]]) -> dict[str, Any]:
  """The frozen-feature protocols of stars_jax.evaluate.probe (kNN, logistic, clusters, few-shot / one-shot on
  `data.held_out_classes`) of every input encoder; with `plots`, t-SNE and confusion plots and the training curves
  of the input steps (`earlier`: step name -> metrics of the steps that ran before) under WORKDIR/<step>/plots."""
  c = step.config
  plot_dir = step.workdir / "plots" if c.frozen.plots else None
  results = probe.probe_job(c, encoders(step, mesh), c.frozen.batch_size, mesh, plot_dir)
  if plot_dir is not None:
    trained = {s: earlier[s] for s in step.upstream if s in earlier}
    summaries = {s: m[key] for s, m in trained.items() for key in SUMMARIES.values() if key in m}
    curves.plot_training_curves(summaries, plot_dir)
  return results


def run(
  step: Step, mesh: jax.sharding.Mesh, datasets: dict[str, Any], earlier: Mapping[str, Mapping[str, Any]]
) -> dict[str, Any]:
  """The step's metrics; `datasets` is the plan's summary of the checked input files (the prepare step's),
  `earlier` the metrics of the steps before it."""
  c, wd = step.config, step.workdir
  if step.kind == "prepare":
    return {"datasets": datasets}
  if step.kind == "pretrain":
    return {"pretrain": pretrain.train(c, wd, mesh).summary}
  if step.kind == "tune":
    return {"stars": tune.train(c, wd, mesh).summary}
  if step.kind in ("linear", "finetune"):
    init = probe.random_encoder(c, mesh) if None in step.inputs.values() else None  # input `random`
    if step.kind == "linear" and c.linear.mode == "cached":
      return {"linear": linear_cached.train(c, c.linear.init if init is None else init, mesh)}
    return {step.kind: classify.train(c, wd, step.kind, mesh, init=init).summary}
  if step.kind == "knn":
    return knn_step(step, mesh)
  if step.kind == "fewshot":
    return fewshot_step(step, mesh)
  return probe_step(step, mesh, earlier)
