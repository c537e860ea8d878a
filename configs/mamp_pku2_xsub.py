"""MAMP stage-1 pretraining, official recipe for pku2 xsub (SPEC §2.1, §3.2).

Usage: python -m stars_jax.main --config=configs/mamp_pku2_xsub.py --workdir=runs/mamp_pku2_xsub
Expects the npz built by data_prep/ at data.path (override with --config.data.path=...).
"""
from stars_jax import recipes


def get_config():
  return recipes.mamp_pretrain("pku2", "xsub")
