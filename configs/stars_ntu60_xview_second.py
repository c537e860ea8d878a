"""Official STARS 'second' tuning for ntu60 xview (SPEC §4.7); initialised from our MAMP stage-1 run (configs/mamp_ntu60_xview.py)."""
from stars_jax import recipes


def get_config():
  config = recipes.stars_tune("ntu60", "xview", "second")
  config.stars.init = "runs/mamp_ntu60_xview/checkpoints"
  return config
