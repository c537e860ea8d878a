"""Official STARS 'third' tuning for ntu60 xsub (SPEC §4.7); initialised from the second stage's selected checkpoint (head, BN statistics and queue restored)."""
from stars_jax import recipes


def get_config():
  config = recipes.stars_tune("ntu60", "xsub", "third")
  config.stars.init = "runs/stars_ntu60_xsub_second/best"
  return config
