"""Official STARS 'second' tuning for pku2 xsub (SPEC §4.7); initialised from our MAMP stage-1 run (configs/mamp_pku2_xsub.py)."""
from stars_jax import recipes


def get_config():
  config = recipes.stars_tune("pku2", "xsub", "second")
  config.stars.init = "runs/mamp_pku2_xsub/checkpoints"
  return config
