"""Official fine-tuning, ntu60 xsub (SPEC §3.4), of the stage-1 encoder in runs/mamp_ntu60_xsub.

STARS encoder: --config.finetune.init=runs/stars_ntu60_xsub_<recipe>/best; scratch baseline: --config.finetune.init=''
--config.finetune.layer_decay=1.0.
"""
from stars_jax import recipes


def get_config():
  config = recipes.finetune("ntu60", "xsub")
  config.finetune.init = "runs/mamp_ntu60_xsub/checkpoints"
  return config
