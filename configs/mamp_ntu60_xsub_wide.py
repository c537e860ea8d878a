"""MAMP stage-1 pretraining on NTU-60 XSub with a wider, deeper encoder than the paper's (beyond the official
recipe): width 512, 12 blocks, 8 heads (47.6 M parameters with the 3-block 512-wide decoder, against 10.1 M).

Parameters and AdamW state are FSDP-sharded over the `data` axis (tensors of 2^16 elements and more), so on N
devices each holds about 1/N of them; `--config.model.remat=True` trades a second forward pass of every block
for the activation memory of the backward pass. Everything else is the official recipe (SPEC §3.2).

Usage: python -m stars_jax.main --config=configs/mamp_ntu60_xsub_wide.py --workdir=runs/mamp_ntu60_xsub_wide
"""
from stars_jax import recipes


def get_config():
  config = recipes.mamp_pretrain("ntu60", "xsub")
  config.model.update(dict(dim=512, depth=12, num_heads=8, decoder_dim=512, decoder_heads=8))
  config.sharding.fsdp = True
  return config
