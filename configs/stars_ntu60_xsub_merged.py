"""Official STARS 'merged' tuning for ntu60 xsub (SPEC §4.7); initialised from our MAMP stage-1 run (configs/mamp_ntu60_xsub.py)."""
from stars_jax import recipes


def get_config():
  config = recipes.stars_tune("ntu60", "xsub", "merged")
  config.stars.init = "runs/mamp_ntu60_xsub/checkpoints"
  return config
