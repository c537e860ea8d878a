"""The STARS few-shot protocol (SPEC §1.9): kNN-1 on NTU-120 actions 61-120, which an NTU-60 XSub encoder has
never seen (bank: their NTU-120 XSub training clips, queries: their test clips), plus one-shot on the same
classes; built from the NTU-120 XSub npz by class filter (no separate download). The kNN / cluster rows are
actions 1-60 of NTU-120 XSub.

  stars-jax --config=configs/fewshot_ntu120_stars.py --workdir=runs/fewshot_ntu120 \
      --config.evaluate.stars=runs/stars_ntu60_xsub_third/best
"""
from stars_jax import recipes
from stars_jax.evaluate import fewshot


def get_config():
  config = recipes.frozen_evaluation("ntu120", "xsub", held_out=fewshot.NTU120_STARS_NOVEL)
  config.evaluate.stage1 = "runs/mamp_ntu60_xsub/checkpoints"  # the NTU-60 XSub encoder
  return config
