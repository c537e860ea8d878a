"""Frozen-feature protocols on NTU-60 XSub: kNN (k = 1, 2, 5, 10; SPEC §4.10), logistic regression, silhouette
and k-means NMI / ARI of the stage-1 encoder in runs/mamp_ntu60_xsub and, if given, a STARS encoder, next to a
random one; report.md, t-SNE and confusion plots in the workdir.

  stars-jax --config=configs/evaluate_ntu60_xsub.py --workdir=runs/eval_ntu60_xsub \
      --config.evaluate.stars=runs/stars_ntu60_xsub_third/best
"""
from stars_jax import recipes


def get_config():
  return recipes.frozen_evaluation("ntu60", "xsub")
