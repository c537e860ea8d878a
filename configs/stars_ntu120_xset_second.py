"""Official STARS 'second' tuning for ntu120 xset (SPEC §4.7); initialised from our MAMP stage-1 run (configs/mamp_ntu120_xset.py)."""
from stars_jax import recipes


def get_config():
  config = recipes.stars_tune("ntu120", "xset", "second")
  config.stars.init = "runs/mamp_ntu120_xset/checkpoints"
  return config
