"""Frozen-feature protocols of several encoders at once: kNN (SPEC §4.10), few-shot on held-out classes (§1.9),
cluster quality, and a logistic-regression probe as a cheap cross-check of the SGD linear probe.

Features are the mean-pooled final-norm encoder output of the eval crop (what the official kNN and linear
probe see), extracted once per encoder and shared by every protocol. When classes are held out of training
(`data.held_out_classes`, the few-shot protocol), the standard protocols use the seen classes only and the
few-shot ones the held-out classes only (bank: their training samples, queries: their test samples).
"""

import logging
import pathlib
from collections.abc import Mapping, Sequence
from typing import Any

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
from sklearn.linear_model import LogisticRegression
from sklearn.preprocessing import StandardScaler

from stars_jax import sharding
from stars_jax.data import class_names, sources
from stars_jax.data.npz import SkeletonSplit
from stars_jax.evaluate import clusters, features, fewshot, knn, protocols
from stars_jax.evaluate.knn import KNN_KS
from stars_jax.models import factory
from stars_jax.models.mamp import Encoder


def random_encoder(config: ml_collections.ConfigDict, mesh: jax.sharding.Mesh) -> dict:
  """The randomly initialised encoder every report shows as a baseline ('random_init'), replicated over the mesh;
  also the restore target (structure, placement) of trained encoders. Its key, PRNGKey(seed + 1), no training
  stage uses."""
  clip = jnp.zeros((1, 2, config.data.window, config.model.num_joints, 3))  # (N, M, T, V, C)
  init_key, _ = jax.random.split(jax.random.PRNGKey(config.seed + 1))
  init = jax.jit(factory.encoder(config).init, out_shardings=sharding.replicated(mesh))
  return init(init_key, clip)["params"]


def logistic_accuracy(
  train_x: np.ndarray, train_y: np.ndarray, test_x: np.ndarray, test_y: np.ndarray, seed: int = 0
) -> float:
  """Top-1 (percent) of an L2-regularised multinomial logistic regression on standardised features."""
  scaler = StandardScaler().fit(train_x)
  clf = LogisticRegression(max_iter=2000, random_state=seed)
  clf.fit(scaler.transform(train_x), train_y)
  return 100.0 * float((clf.predict(scaler.transform(test_x)) == test_y).mean())


def frozen_protocols(
  train_x: np.ndarray,
  train_y: np.ndarray,
  test_x: np.ndarray,
  test_y: np.ndarray,
  *,
  held_out: Sequence[int] = (),
  num_classes: int,
  seed: int = 0,
  plot_dir: pathlib.Path | None = None,
  name: str = "",
  class_names: Sequence[str] | None = None,
  skip: Mapping[str, str] | None = None,
) -> dict[str, float]:
  """{protocol: value} for one encoder's features: knn<k> (percent), logistic (percent), silhouette, nmi, ari
  (fractions) on the seen classes; with held-out classes also fewshot (kNN-1 on them, percent) and oneshot
  (nearest of one exemplar per class, mean over 5 seeded draws, percent). Writes t-SNE and kNN-1 confusion
  PNGs to plot_dir if given, labelled with `class_names` (indexed by label) if given. The protocols in `skip`
  (default: `protocols.skipped_protocols` of these labels: too few clips or classes) are left out."""
  skip = protocols.skipped_protocols(train_y, test_y, held_out) if skip is None else skip
  seen_tr, seen_te = ~np.isin(train_y, held_out), ~np.isin(test_y, held_out)
  tr_x, tr_y, te_x, te_y = train_x[seen_tr], train_y[seen_tr], test_x[seen_te], test_y[seen_te]
  ks = tuple(k for k in KNN_KS if f"knn{k}" not in skip)
  out = {f"knn{k}": v for k, v in knn.knn_accuracies(tr_x, tr_y, te_x, te_y, ks=ks, num_classes=num_classes).items()}
  if "logistic" not in skip:
    out["logistic"] = logistic_accuracy(tr_x, tr_y, te_x, te_y, seed)
  out.update(clusters.cluster_metrics(te_x, te_y, seed, skip=tuple(skip)))
  if held_out and "fewshot" not in skip:
    out["fewshot"] = fewshot.fewshot_knn(train_x, train_y, test_x, test_y, held_out, ks=(1,))[1]
  if held_out and "oneshot" not in skip:
    out["oneshot"] = fewshot.one_shot_accuracy(test_x, test_y, held_out, seeds=tuple(range(seed, seed + 5)))["mean"]
  if plot_dir is not None:
    plot_dir.mkdir(parents=True, exist_ok=True)
    if "tsne" not in skip:
      title = f"t-SNE of test features: {name}"
      clusters.plot_tsne(te_x, te_y, plot_dir / f"tsne_{name}.png", title, seed, class_names)
    preds = knn.knn_predict(tr_x, tr_y, te_x, k=1, num_classes=num_classes)
    clusters.plot_confusion(
      te_y, preds, num_classes, plot_dir / f"confusion_knn1_{name}.png", f"kNN-1 confusion: {name}", class_names
    )
  return out


def probe(
  encoder: Encoder,
  named_params: dict[str, dict],
  train_split: SkeletonSplit,
  test_split: SkeletonSplit,
  data_config: ml_collections.ConfigDict,
  batch_size: int,
  mesh: jax.sharding.Mesh,
  *,
  seed: int = 0,
  plot_dir: pathlib.Path | None = None,
  plot_names: Sequence[str] = ("random_init", "stage1", "stars"),
  class_names: Sequence[str] | None = None,
) -> dict[str, dict[str, Any]]:
  """{protocol: {encoder name: value}} of `frozen_protocols` for every named encoder parameter tree; plots
  (t-SNE is slow) for the encoders in `plot_names` only, labelled with `class_names` if given. Protocols the
  splits are too small for are skipped and listed with the reason under 'skipped_protocols'."""
  held_out = tuple(data_config.held_out_classes)
  skip = protocols.skipped_protocols(train_split.labels, test_split.labels, held_out)
  for protocol, why in skip.items():
    logging.warning("Skipping the %s protocol: %s", protocol, why)
  embed = features.make_embed_fn(encoder, data_config, mesh)  # compiled once for every parameter set
  results: dict[str, Any] = {"skipped_protocols": dict(skip)} if skip else {}
  for name, params in named_params.items():
    tr_x, tr_y = features.extract(embed, params, train_split, batch_size, mesh)
    te_x, te_y = features.extract(embed, params, test_split, batch_size, mesh)
    metrics = frozen_protocols(
      tr_x,
      tr_y,
      te_x,
      te_y,
      held_out=held_out,
      num_classes=train_split.num_classes,
      seed=seed,
      plot_dir=plot_dir if name in plot_names else None,
      name=name,
      class_names=class_names,
      skip=skip,
    )
    for protocol, value in metrics.items():
      results.setdefault(protocol, {})[name] = value
  return results


def probe_job(
  config: ml_collections.ConfigDict,
  named_params: dict[str, dict],
  batch_size: int,
  mesh: jax.sharding.Mesh,
  plot_dir: pathlib.Path | None = None,
) -> dict[str, dict[str, Any]]:
  """`probe` of the named encoders on both splits of `config.data`, with the config's encoder, seed and class
  names (what the evaluate job and a pipeline's probe step run)."""
  train_split = sources.open_split(config.data, "train")
  return probe(
    factory.encoder(config),
    named_params,
    train_split,
    sources.open_split(config.data, "test"),
    config.data,
    batch_size,
    mesh,
    seed=config.seed,
    plot_dir=plot_dir,
    class_names=class_names.class_names(config.data, train_split.num_classes),
  )
