"""`stars-jax ensemble RUN_DIR [RUN_DIR ...] [--weights 1,1,1] [--softmax]`: fuses the test scores of downstream
runs (e.g. the joint, bone and motion streams, `data.stream`) and prints top-1 / top-5 of each run and of the
fusion.

Each RUN_DIR is a linear-probe or fine-tuning workdir holding `test_scores.npz` (the final state's test logits and
labels, written by the stage). The fusion is the weighted sum of the logits (with --softmax: of the class
probabilities), the convention of the multi-stream skeleton literature; the default weights are 1 each.
"""

import argparse
import json
import pathlib
import sys

import numpy as np

from stars_jax import errors

SCORES = "test_scores.npz"


def topk_accuracy(scores: np.ndarray, labels: np.ndarray, k: int) -> float:
  """Percent of rows whose label is among the k highest scores. scores (N, C), labels (N,)."""
  top = np.argsort(-scores, axis=1, kind="stable")[:, :k]  # (N, k)
  return 100.0 * float(np.mean(np.any(top == labels[:, None], axis=1)))


def softmax(logits: np.ndarray) -> np.ndarray:
  z = np.exp(logits - logits.max(axis=1, keepdims=True))
  return z / z.sum(axis=1, keepdims=True)


def load_scores(run: str | pathlib.Path) -> tuple[np.ndarray, np.ndarray]:
  """(logits (N, C) float64, labels (N,)) of a run directory's test_scores.npz, with errors naming the file."""
  path = pathlib.Path(run) / SCORES
  if not path.is_file():
    raise FileNotFoundError(f"{path}: no test scores (a linear or fine-tuning run writes them when it finishes)")
  with np.load(path) as f:
    if {"logits", "labels"} - set(f.files):
      raise ValueError(f"{path}: expected arrays 'logits' and 'labels', found {sorted(f.files)}")
    return f["logits"].astype(np.float64), f["labels"]


def fuse(runs: list[str], weights: list[float], use_softmax: bool = False) -> dict:
  """Top-1 / top-5 of each run and of the weighted fusion; the runs must score the same test samples."""
  if len(weights) != len(runs):
    raise ValueError(f"{len(weights)} weights for {len(runs)} runs")
  loaded = [load_scores(r) for r in runs]
  labels = loaded[0][1]
  for run, (logits, y) in zip(runs, loaded):
    if y.shape != labels.shape or np.any(y != labels) or logits.shape != loaded[0][0].shape:
      raise ValueError(f"{run}: its test samples or classes differ from {runs[0]}'s (same split, same order?)")
  scores = [softmax(lg) if use_softmax else lg for lg, _ in loaded]
  fused = sum(w * s for w, s in zip(weights, scores))
  k = min(5, fused.shape[1])
  per_run = {
    r: {"top1": topk_accuracy(s, labels, 1), f"top{k}": topk_accuracy(s, labels, k)} for r, s in zip(runs, scores)
  }
  return {
    "runs": per_run,
    "weights": weights,
    "softmax": use_softmax,
    "fused": {"top1": topk_accuracy(fused, labels, 1), f"top{k}": topk_accuracy(fused, labels, k)},
  }


def main(argv: list[str]) -> int:
  parser = argparse.ArgumentParser(prog="stars-jax ensemble", description=__doc__)
  parser.add_argument("runs", nargs="+", help="downstream run directories holding test_scores.npz")
  parser.add_argument("--weights", default="", help="comma-separated weights, one per run (default: 1 each)")
  parser.add_argument("--softmax", action="store_true", help="fuse class probabilities instead of logits")
  args = parser.parse_args(argv)
  try:
    weights = [float(w) for w in args.weights.split(",")] if args.weights else [1.0] * len(args.runs)
    result = fuse(args.runs, weights, args.softmax)
  except (OSError, ValueError, errors.BadInput) as e:
    print(f"stars-jax ensemble: {e}", file=sys.stderr)
    return 2
  print(json.dumps(result, indent=2))
  return 0
