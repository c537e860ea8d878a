"""The config files' recipe pieces as modules (configs/common.py, mamp.py, ...), for tests that build one group."""

import pathlib

from stars_jax import config_lib

CONFIGS = pathlib.Path(__file__).resolve().parents[1] / "configs"
common = config_lib.load_module(CONFIGS / "common.py")
mamp = config_lib.load_module(CONFIGS / "mamp.py")
stars = config_lib.load_module(CONFIGS / "stars.py")
linear = config_lib.load_module(CONFIGS / "linear.py")
finetune = config_lib.load_module(CONFIGS / "finetune.py")


def optim(**settings):
  """An AdamW group with PyTorch's defaults (b1 0.9, b2 0.999, eps 1e-8; no decay, layer decay or clipping),
  `settings` replacing any of them."""
  defaults = dict(
    name="adamw",
    lr=1e-3,
    b1=0.9,
    b2=0.999,
    eps=1e-8,
    momentum=0.0,
    weight_decay=0.0,
    decay_groups="no_1d",
    layer_decay=1.0,
    clip="none",
    clip_norm=0.0,
  )
  return common.optim(**{**defaults, **settings})
