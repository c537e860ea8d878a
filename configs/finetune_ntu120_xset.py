"""Official fine-tuning, ntu120 xset (SPEC §3.4), of the stage-1 encoder in runs/mamp_ntu120_xset.

STARS encoder: --config.finetune.init=runs/stars_ntu120_xset_<recipe>/best; scratch baseline: --config.finetune.init=''
--config.finetune.layer_decay=1.0.
"""
from stars_jax import recipes


def get_config():
  config = recipes.finetune("ntu120", "xset")
  config.finetune.init = "runs/mamp_ntu120_xset/checkpoints"
  return config
