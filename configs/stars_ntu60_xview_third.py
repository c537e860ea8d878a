"""Official STARS 'third' tuning for ntu60 xview (SPEC §4.7); initialised from the second stage's selected checkpoint (head, BN statistics and queue restored)."""
from stars_jax import recipes


def get_config():
  config = recipes.stars_tune("ntu60", "xview", "third")
  config.stars.init = "runs/stars_ntu60_xview_second/best"
  return config
