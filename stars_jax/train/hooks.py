"""Evaluation hooks of the stage runner: the STARS kNN monitor and the downstream test accuracy.

The kNN monitor (SPEC §4.8) takes a weighted kNN of head features after every epoch and selects a state. By
default the queries are a validation split carved from the training set (stratified, seeded) and the bank is
the rest of the training set, so selecting the best epoch never looks at the test split. The official
selection on the test split is available as `monitor.split='test'`; its numbers are labelled so.
"""

import logging
import pathlib
from typing import Any

import jax
import ml_collections
import numpy as np

from stars_jax import io
from stars_jax.data.npz import SkeletonSplit
from stars_jax.evaluate import features, knn
from stars_jax.train.checkpoint import Checkpointer
from stars_jax.train.metrics import MetricWriter
from stars_jax.train.runner import Hook
from stars_jax.train.state import TrainState


def validation_split(labels: np.ndarray, fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
  """Stratified (bank, validation) index arrays of a training split: per class, a seeded random
  round(fraction * n) samples (at least one when the class has two or more) go to validation."""
  if not 0.0 < fraction < 1.0:
    raise ValueError(f"monitor.val_fraction must be in (0, 1), got {fraction}")
  rng = np.random.default_rng(seed)
  val = []
  for c in np.unique(labels):
    members = rng.permutation(np.flatnonzero(labels == c))
    take = min(max(int(round(fraction * len(members))), 1 if len(members) > 1 else 0), len(members) - 1)
    val.append(members[:take])
  val_idx = np.sort(np.concatenate(val)).astype(np.int64)
  return np.setdiff1d(np.arange(len(labels)), val_idx), val_idx


class KnnMonitor(Hook):
  """Every `every_steps` steps, weighted-kNN top-1 of the eval-mode head features; keeps the best state in
  `best_ckpt` (best top-1 over k, as the official `best_epoch.pt`) and restores it as `selected` at the end."""

  name = "monitor"

  def __init__(
    self,
    embed: features.EmbedFn,
    cfg: ml_collections.ConfigDict,
    *,
    train_split: SkeletonSplit,
    test_split: SkeletonSplit,
    num_classes: int,
    seed: int,
    every_steps: int,
    mesh: jax.sharding.Mesh,
    writer: MetricWriter,
    best_ckpt: Checkpointer,
  ):
    self._embed, self._cfg, self._mesh = embed, cfg, mesh
    self._train, self._test = train_split, test_split
    self._num_classes, self._every = num_classes, every_steps
    self._writer, self._best_ckpt = writer, best_ckpt
    if cfg.split == "val":
      self._bank_idx, self._val_idx = validation_split(np.asarray(train_split.labels), cfg.val_fraction, seed)
    self.history: list[dict[str, Any]] = []
    self.best: dict[str, Any] = {}

  @property
  def label(self) -> str:
    """How the selection split is named wherever its numbers appear."""
    return "val" if self._cfg.split == "val" else "test (official selection on the test split)"

  def evaluate(self, variables: dict) -> dict[str, float]:
    """Top-1 (percent) per k of the weighted kNN on the monitor split."""
    bs = self._cfg.batch_size
    train_x, train_y = features.extract(self._embed, variables, self._train, bs, self._mesh)
    if self._cfg.split == "val":
      bank, bank_y = train_x[self._bank_idx], train_y[self._bank_idx]
      query, query_y = train_x[self._val_idx], train_y[self._val_idx]
    else:
      bank, bank_y = train_x, train_y
      query, query_y = features.extract(self._embed, variables, self._test, bs, self._mesh)
    return {
      f"k{k}": knn.weighted_knn_accuracy(
        bank, bank_y, query, query_y, k=k, temperature=self._cfg.temperature, num_classes=self._num_classes
      )
      for k in self._cfg.ks
    }

  def evaluates(self, step: int) -> bool:
    return step % self._every == 0

  def after_step(self, step: int, state: TrainState) -> None:
    if not self.evaluates(step):
      return
    accs = self.evaluate({"params": state.params, "batch_stats": state.batch_stats})
    top1 = max(accs.values())
    self.history.append({"step": step, "top1": top1, **accs})
    self._writer.write_scalars(step, {f"monitor/{self._cfg.split}_knn_top1_{k}": v for k, v in accs.items()})
    logging.info(
      "kNN monitor (%s) at step %d: %s", self.label, step, ", ".join(f"{k} {v:.2f}" for k, v in accs.items())
    )
    if not self.best or top1 > self.best["top1"]:
      self.best = {"step": step, "top1": top1, "split": self._cfg.split}
      self._best_ckpt.save(state, {"monitor": self.get_state()})

  def finish(self, step: int, state: TrainState) -> dict[str, Any]:
    if self.best:
      self.selected, _ = self._best_ckpt.restore(state)
    return {"monitor": self.get_state(), "selection_split": self.label}

  def get_state(self) -> dict[str, Any]:
    return {"history": self.history, "best": self.best}

  def set_state(self, state: dict[str, Any]) -> None:
    self.history, self.best = list(state["history"]), dict(state["best"])

  def close(self) -> None:
    self._best_ckpt.close()


class AccuracyHook(Hook):
  """Test top-1 (percent) every `every_steps` steps and at the end; keeps the history, the best (official
  convention: the maximum over epochs, SPEC §7.9) and the last value. With `scores_path`, the final state's test
  logits (N, C) and labels (N,) are saved there as an npz (input of `stars-jax ensemble`)."""

  name = "eval"

  def __init__(
    self,
    predict: features.EmbedFn,
    split: SkeletonSplit,
    batch_size: int,
    every_steps: int,
    mesh: jax.sharding.Mesh,
    writer: MetricWriter,
    scores_path: pathlib.Path | None = None,
  ):
    self._predict, self._split, self._bs, self._every = predict, split, batch_size, every_steps
    self._mesh, self._writer, self._scores_path = mesh, writer, scores_path
    self.history: list[dict[str, float]] = []
    self._scores: tuple[int, np.ndarray, np.ndarray] | None = None  # (step, logits, labels) of the last record

  def _score(self, step: int, state: TrainState) -> float:
    """Test top-1 of `state`; its logits and labels are kept as the scores of `step`."""
    variables = {"params": state.params, "batch_stats": state.batch_stats}
    logits, y = features.extract(self._predict, variables, self._split, self._bs, self._mesh)
    self._scores = (step, logits, y)
    return 100.0 * float(np.mean(np.argmax(logits, axis=-1) == y))

  def evaluates(self, step: int) -> bool:
    return step % self._every == 0

  def after_step(self, step: int, state: TrainState) -> None:
    if self.evaluates(step):
      self.record(step, state)

  def record(self, step: int, state: TrainState) -> None:
    top1 = self._score(step, state)
    self.history.append({"step": step, "top1": top1})
    self._writer.write_scalars(step, {"eval/test_top1": top1})
    logging.info("step %d: test top-1 %.2f", step, top1)

  def finish(self, step: int, state: TrainState) -> dict[str, Any]:
    if not self.history or self.history[-1]["step"] != step:  # the run did not end on an evaluation step
      self.record(step, state)
    if self._scores_path is not None:
      if self._scores is None or self._scores[0] != step:  # resumed after the last evaluation
        self._score(step, state)
      if jax.process_index() == 0:
        with io.atomic_path(self._scores_path) as tmp, open(tmp, "wb") as f:
          np.savez(f, logits=self._scores[1].astype(np.float32), labels=self._scores[2].astype(np.int32))
    best = max(self.history, key=lambda h: h["top1"])
    return {"best": best["top1"], "best_step": best["step"], "last": self.history[-1]["top1"], "history": self.history}

  def get_state(self) -> dict[str, Any]:
    return {"history": self.history}

  def set_state(self, state: dict[str, Any]) -> None:
    self.history = list(state["history"])
