"""Official STARS 'third' tuning for ntu120 xsub (SPEC §4.7); initialised from the second stage's selected checkpoint (head, BN statistics and queue restored)."""
from stars_jax import recipes


def get_config():
  config = recipes.stars_tune("ntu120", "xsub", "third")
  config.stars.init = "runs/stars_ntu120_xsub_second/best"
  return config
