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

import ml_collections

from stars_jax import config_args, config_lib

common = config_lib.sibling(__file__, "common")

NAMES = (*common.ROWS, *(f"{row}_wide" for row in common.ROWS), "pku2_xsub_stars")
# The stage-1 checkpoint the official PKU-MMD linear-probe and transfer scripts start from: checkpoint-300.pth,
# saved after 301 of the 400 epochs (SPEC §3.2); NTU scripts take the last one.
PKU_DOWNSTREAM_EPOCHS = 301


def pretrain_group(dataset: str) -> ml_collections.ConfigDict:
  """The official MAMP pretraining settings of a dataset (SPEC §3.2)."""
  return common.training_group(
    batch_size=128,  # global: 4 GPUs x 32
    epochs=400,
    # No decay on 1-D tensors and biases (timm 0.3.2's param groups).
    optim=common.optim(
      name="adamw",
      lr=1e-3,
      b1=0.9,
      b2=0.95,
      eps=1e-8,
      momentum=0.0,
      weight_decay=0.05,
      decay_groups="no_1d",
      layer_decay=1.0,
      clip="none",
      clip_norm=0.0,
    ),
    schedule=common.schedule("warmup_cosine", warmup_epochs=20, min_lr=5e-4),
    checkpoint_every_steps=2000,
    keep_checkpoints=3,
    log_every_steps=50,
    masking=ml_collections.ConfigDict(
      dict(
        mask_ratio=0.9,
        tau=0.75 if dataset == "ntu120" else 0.80,  # motion_aware_tau; 0 = uniform masking (MAE baseline)
        motion_target=True,  # False: reconstruct positions (MAE baseline)
        normalize_target=True,  # norm_skes_loss
        motion_stride=1,
      )
    ),
  )


def downstream_epochs(dataset: str) -> int:
  """`init_epoch` of the official downstream runs from a `dataset` stage-1 encoder: -1 (the last) or 301."""
  return PKU_DOWNSTREAM_EPOCHS if dataset in ("pku1", "pku2") else -1


def recipe(dataset: str, split: str, stars_copy: bool = False) -> ml_collections.ConfigDict:
  """The official MAMP stage-1 recipe for one dataset/split. PKU-MMD runs keep the checkpoint after 301 epochs for
  the downstream protocols. `stars_copy`: the STARS repository's copy of the script, which it used to retrain the
  PKU-II encoder its tuning starts from: weight decay on every parameter, biases and norms included (SPEC §3.2)."""
  config = common.base(dataset, split, "pretrain")
  config.pretrain = pretrain_group(dataset)
  if dataset in ("pku1", "pku2"):
    config.pretrain.keep_epochs = (PKU_DOWNSTREAM_EPOCHS,)
  if stars_copy:
    config.pretrain.optim.decay_groups = "all"
  config.evaluate = common.evaluate_group(stage1="", stars="", enabled=False)
  return config


def get_config(arg: str = ""):
  arg = config_args.parse_arg(arg, "configs/mamp.py", row=(None, *NAMES)).row
  name, wide = (arg[: -len("_wide")], True) if arg.endswith("_wide") else (arg, False)
  if name == "pku2_xsub_stars":
    return recipe("pku2", "xsub", stars_copy=True)
  config = recipe(*common.parse_dataset_split(name, "configs/mamp.py"))
  if wide:
    config.model.update(dict(dim=512, depth=12, num_heads=8, decoder_dim=512, decoder_heads=8))
    config.sharding.fsdp = True
  return config
