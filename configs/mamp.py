"""MAMP stage-1 pretraining, the official recipe of one dataset/split (SPEC §2.1, §3.2).

  stars-jax --config=configs/mamp.py:ntu60_xsub --workdir=runs/mamp_ntu60_xsub [--config.data.path=...]

Arguments: ntu60_xsub, ntu60_xview, ntu120_xsub, ntu120_xset, pku1_xsub, pku2_xsub (NTU-60: decoder 3 blocks,
tau 0.80; NTU-120: 5 blocks, tau 0.75; PKU-MMD: 5 blocks, tau 0.80). Expects the npz built by
`stars-jax prepare` at data.path. PKU-MMD runs keep the checkpoint after 301 epochs (pretrain.keep_epochs), which
the official PKU linear probe and transfer start from. `pku2_xsub_stars`: the STARS repository's retraining of
the PKU-II encoder its tuning starts from (weight decay on every parameter, pretrain.optim.decay_groups='all';
configs/stars.py:pku2_xsub_* start from it). `<dataset>_<split>_wide` is beyond the paper: width 512, 12 blocks, 8 heads
(47.6 M parameters against 10.1 M) with FSDP-sharded parameters and AdamW state; add
--config.model.remat=True to trade a second forward pass for activation memory.
"""

from stars_jax import config_args, recipes

NAMES = (*recipes.ROWS, *(f"{row}_wide" for row in recipes.ROWS), "pku2_xsub_stars")


def get_config(arg: str = ""):
  arg = config_args.parse_arg(arg, "configs/mamp.py", row=(None, *NAMES)).row
  name, wide = (arg[: -len("_wide")], True) if arg.endswith("_wide") else (arg, False)
  if name == "pku2_xsub_stars":
    return recipes.mamp_pretrain("pku2", "xsub", stars_copy=True)
  config = recipes.mamp_pretrain(*recipes.parse_dataset_split(name, "configs/mamp.py"))
  if wide:
    config.model.update(dict(dim=512, depth=12, num_heads=8, decoder_dim=512, decoder_heads=8))
    config.sharding.fsdp = True
  return config
