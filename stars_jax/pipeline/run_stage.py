"""Runs one pipeline stage and returns its metrics (JSON). Training stages run through stars_jax.train (which
resumes from WORKDIR/<stage>/checkpoints and checkpoints at SIGTERM); kNN and few-shot extract the frozen
features of their encoders (a few minutes at most: they are rerun whole when interrupted)."""

from typing import Any

import jax
import numpy as np

from stars_jax.evaluate import features, fewshot, knn
from stars_jax.pipeline import estimate
from stars_jax.pipeline.inputs import fewshot_classes
from stars_jax.pipeline.stages import Stage
from stars_jax.train import checkpoint, classify, linear_cached, pretrain, tune


def _config_key(stage: Stage, encoder: str) -> str:
  """The config key that named an encoder's checkpoint directory (for error messages)."""
  main = next(iter(stage.inputs))
  return f"stages.{stage.name}.input" if encoder == main else f"stages.{stage.name}.compare ({encoder})"


def frozen_features(stage: Stage, mesh: jax.sharding.Mesh, batch_size: int) -> dict[str, dict[str, tuple]]:
  """{encoder: {split: (features (N, D), labels (N,))}} of every input encoder on the stage's splits."""
  embed, target = estimate.encoder_fn(stage, mesh)
  splits = estimate.frozen_splits(stage)
  out = {}
  for encoder, path in stage.inputs.items():
    params = checkpoint.restore_params(path, target, _config_key(stage, encoder))
    out[encoder] = {s: features.extract(embed, params, split, batch_size, mesh) for s, split in splits.items()}
  return out


def knn_stage(stage: Stage, mesh: jax.sharding.Mesh) -> dict[str, Any]:
  """kNN top-1 (percent) for every k of the STARS knn_eval protocol (SPEC §4.10): pooled final-norm features of
  the eval crop, L2-normalised, cosine, uniform vote; bank = the training split, queries = the test split."""
  f = stage.config.frozen
  feats = frozen_features(stage, mesh, f.batch_size)
  num_classes = estimate.frozen_splits(stage)["train"].num_classes
  out: dict[str, Any] = {"encoder": next(iter(stage.inputs))}
  for encoder, split in feats.items():
    (tr_x, tr_y), (te_x, te_y) = split["train"], split["test"]
    for k, acc in knn.knn_accuracies(tr_x, tr_y, te_x, te_y, ks=tuple(f.ks), num_classes=num_classes).items():
      out.setdefault(f"knn{k}", {})[encoder] = acc
  return out


def fewshot_stage(stage: Stage, mesh: jax.sharding.Mesh) -> dict[str, Any]:
  """The STARS few-shot protocol (SPEC §1.9): kNN top-1 on classes the encoder never saw, bank = their training
  clips, queries = their test clips (percent, for every k)."""
  f = stage.config.frozen
  classes = fewshot_classes(stage)
  feats = frozen_features(stage, mesh, f.batch_size)
  out: dict[str, Any] = {"encoder": next(iter(stage.inputs)), "classes": list(classes)}
  for encoder, split in feats.items():
    (tr_x, tr_y), (te_x, te_y) = split["train"], split["test"]
    out["clips"] = {"train": len(tr_y), "test": len(te_y)}
    accs = fewshot.fewshot_knn(tr_x, np.asarray(tr_y), te_x, np.asarray(te_y), classes, ks=tuple(f.ks))
    for k, acc in accs.items():
      out.setdefault(f"fewshot_knn{k}", {})[encoder] = acc
  return out


def run(stage: Stage, mesh: jax.sharding.Mesh, datasets: dict[str, Any]) -> dict[str, Any]:
  """The stage's metrics; `datasets` is the plan's summary of the checked input files (the prepare stage's)."""
  c, wd = stage.config, stage.workdir
  if stage.kind == "prepare":
    return {"datasets": datasets}
  if stage.kind == "pretrain":
    return {"pretrain": pretrain.train(c, wd, mesh).summary}
  if stage.kind == "tune":
    return {"stars": tune.train(c, wd, mesh).summary}
  if stage.kind == "linear" and c.linear.mode == "cached":
    return {"linear": linear_cached.train(c, c.linear.init, mesh)}
  if stage.kind in ("linear", "finetune"):
    return {stage.kind: classify.train(c, wd, stage.kind, mesh).summary}
  if stage.kind == "knn":
    return knn_stage(stage, mesh)
  return fewshot_stage(stage, mesh)
