"""Official STARS 'third' tuning for pku2 xsub (SPEC §4.7); initialised from the second stage's selected checkpoint (head, BN statistics and queue restored)."""
from stars_jax import recipes


def get_config():
  config = recipes.stars_tune("pku2", "xsub", "third")
  config.stars.init = "runs/stars_pku2_xsub_second/best"
  return config
