"""Official linear probe, pku1 xsub (SPEC §3.3), of the stage-1 encoder in runs/mamp_pku1_xsub.

Evaluate a STARS encoder instead with --config.linear.init=runs/stars_pku1_xsub_<recipe>/best; the fast cached-feature
variant (not the official protocol) with --config.linear.mode=cached.
"""
from stars_jax import recipes


def get_config():
  config = recipes.linear_probe("pku1", "xsub")
  config.linear.init = "runs/mamp_pku1_xsub/checkpoints"
  return config
