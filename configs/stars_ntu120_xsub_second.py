"""Official STARS 'second' tuning for ntu120 xsub (SPEC §4.7); initialised from our MAMP stage-1 run (configs/mamp_ntu120_xsub.py)."""
from stars_jax import recipes


def get_config():
  config = recipes.stars_tune("ntu120", "xsub", "second")
  config.stars.init = "runs/mamp_ntu120_xsub/checkpoints"
  return config
