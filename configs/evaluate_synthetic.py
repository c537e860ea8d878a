"""The main job's evaluation suite (kNN, logistic, clusters, few-shot / one-shot on the held-out classes)
re-run on saved encoders, e.g. those of `stars-jax --config=configs/synthetic.py --workdir=runs/synthetic`:

  stars-jax --config=configs/evaluate_synthetic.py --workdir=runs/synthetic_eval

Any other checkpoint directory of this model size works: --config.evaluate.stage1=... --config.evaluate.stars=...
"""
import pathlib

from stars_jax import recipes


def get_config():
  # The main job's config: same data, model and seed.
  config = recipes.load_config_file(pathlib.Path(__file__).with_name("synthetic.py"))
  config.stage = "evaluate"
  config.evaluate = recipes.evaluate_options(stage1="runs/synthetic/stage1/checkpoints",
                                             stars="runs/synthetic/stars/best")
  return config
