"""Frozen-feature protocols (stage `evaluate`) of saved encoders next to a random one: kNN (k = 1, 2, 5, 10;
SPEC §4.10), logistic regression, silhouette, k-means NMI / ARI, t-SNE and confusion plots; report.md.

  stars-jax --config=configs/evaluate.py:ntu60_xsub --workdir=runs/eval_ntu60_xsub \
      --config.evaluate.stars=runs/stars_ntu60_xsub_third/best
  stars-jax --config=configs/evaluate.py:fewshot_ntu120 --workdir=runs/fewshot_ntu120 \
      --config.evaluate.stars=runs/stars_ntu60_xsub_third/best

`<dataset>_<split>`: the stage-1 encoder in runs/mamp_<dataset>_<split> (evaluate.stage1) and, if given, a STARS
encoder (evaluate.stars). `fewshot_ntu120`: the STARS few-shot protocol (SPEC §1.9): kNN-1 and one-shot on NTU-120
actions 61-120, which the NTU-60 XSub encoders never saw (bank: their NTU-120 XSub training clips, queries: their
test clips), built from the NTU-120 XSub npz by class filter; the kNN / cluster rows are actions 1-60.
"""

import ml_collections

from stars_jax import config_args, config_lib

common = config_lib.sibling(__file__, "common")


def recipe(dataset: str, split: str, held_out: tuple[int, ...], stage1: str) -> ml_collections.ConfigDict:
  """kNN (SPEC §4.10, k = 1, 2, 5, 10), logistic regression and cluster quality of frozen encoders on one
  dataset/split; with held-out classes also few-shot / one-shot on them (SPEC §1.9)."""
  config = common.base(dataset, split, "evaluate")
  config.data.held_out_classes = tuple(held_out)
  config.evaluate = common.evaluate_group(
    stage1=stage1 or common.mamp_checkpoints(dataset, split), stars="", enabled=True
  )
  return config


def get_config(arg: str = ""):
  arg = config_args.parse_arg(arg, "configs/evaluate.py", row=(None, *common.ROWS, "fewshot_ntu120")).row
  if arg == "fewshot_ntu120":
    return recipe("ntu120", "xsub", common.NTU120_STARS_NOVEL, stage1=common.mamp_checkpoints("ntu60", "xsub"))
  return recipe(*common.parse_dataset_split(arg, "configs/evaluate.py"), held_out=(), stage1="")
