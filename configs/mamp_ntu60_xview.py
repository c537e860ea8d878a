"""MAMP stage-1 pretraining, official recipe for ntu60 xview (SPEC §2.1, §3.2).

Usage: python -m stars_jax.main --config=configs/mamp_ntu60_xview.py --workdir=runs/mamp_ntu60_xview
Expects the npz built by data_prep/ at data.path (override with --config.data.path=...).
"""
from stars_jax import recipes


def get_config():
  return recipes.mamp_pretrain("ntu60", "xview")
