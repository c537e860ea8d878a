"""Official linear probe, pku2 xsub (SPEC §3.3), of the stage-1 encoder in runs/mamp_pku2_xsub.

Evaluate a STARS encoder instead with --config.linear.init=runs/stars_pku2_xsub_<recipe>/best; the fast cached-feature
variant (not the official protocol) with --config.linear.mode=cached.
"""
from stars_jax import recipes


def get_config():
  config = recipes.linear_probe("pku2", "xsub")
  config.linear.init = "runs/mamp_pku2_xsub/checkpoints"
  return config
