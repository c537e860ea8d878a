"""Official fine-tuning, ntu60 xview (SPEC §3.4), of the stage-1 encoder in runs/mamp_ntu60_xview.

STARS encoder: --config.finetune.init=runs/stars_ntu60_xview_<recipe>/best; scratch baseline: --config.finetune.init=''
--config.finetune.layer_decay=1.0.
"""
from stars_jax import recipes


def get_config():
  config = recipes.finetune("ntu60", "xview")
  config.finetune.init = "runs/mamp_ntu60_xview/checkpoints"
  return config
