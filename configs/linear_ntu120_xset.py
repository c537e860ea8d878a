"""Official linear probe, ntu120 xset (SPEC §3.3), of the stage-1 encoder in runs/mamp_ntu120_xset.

Evaluate a STARS encoder instead with --config.linear.init=runs/stars_ntu120_xset_<recipe>/best; the fast cached-feature
variant (not the official protocol) with --config.linear.mode=cached.
"""
from stars_jax import recipes


def get_config():
  config = recipes.linear_probe("ntu120", "xset")
  config.linear.init = "runs/mamp_ntu120_xset/checkpoints"
  return config
