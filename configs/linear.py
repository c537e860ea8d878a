"""The official linear probe (SPEC §3.3) of one dataset/split's stage-1 encoder (runs/mamp_<dataset>_<split>).

  stars-jax --config=configs/linear.py:ntu60_xsub --workdir=runs/linear_ntu60_xsub \
      [--config.linear.init=runs/stars_ntu60_xsub_third/best] [--config.linear.mode=cached]

Arguments: ntu60_xsub, ntu60_xview, ntu120_xsub, ntu120_xset, pku1_xsub, pku2_xsub. `linear.mode=cached` trains
the head on features extracted once (fast; not the official protocol, labelled so in results).
"""

import ml_collections

from stars_jax import config_args, config_lib

common = config_lib.sibling(__file__, "common")
mamp = config_lib.sibling(__file__, "mamp")

# Official head widths, including the configs' class-count slips (§7.12): extra logits are never targets.
NUM_CLASSES = {
  ("ntu60", "xsub"): 60,
  ("ntu60", "xview"): 120,
  ("ntu120", "xsub"): 120,
  ("ntu120", "xset"): 120,
  ("pku1", "xsub"): 60,
  ("pku2", "xsub"): 60,
}


def linear_group(num_classes: int, init: str) -> ml_collections.ConfigDict:
  """Linear probe (SPEC §3.3): frozen encoder in inference mode, BN(affine=False) + Linear, SGD 0.1 momentum 0.9,
  cosine to 0, 100 epochs, batch 256 (global: 2 GPUs x 128). num_classes -1: the dataset's one-hot width."""
  return common.classification_group(
    init=init,
    num_classes=num_classes,
    batch_size=256,
    epochs=100,
    optim=common.optim(
      name="sgd",
      lr=0.1,
      b1=0.9,
      b2=0.999,
      eps=1e-8,
      momentum=0.9,
      weight_decay=0.0,
      decay_groups="all",
      layer_decay=1.0,
      clip="none",
      clip_norm=0.0,
    ),
    schedule=common.schedule("warmup_cosine", warmup_epochs=0.0, min_lr=0.0),
    drop_path=0.0,
    dropout=0.0,
    label_smoothing=0.0,
    data_ratio=1.0,
    mode="full",  # 'full': augmented clips through the frozen encoder every step (official);
    # 'cached': un-augmented features extracted once, head trained on them (fast)
  )


def recipe(dataset: str, split: str) -> ml_collections.ConfigDict:
  """Official linear probe of one dataset/split's stage-1 encoder (PKU-I batch 128; PKU-II batch 32, lr 0.01)."""
  config = common.base(dataset, split, "linear")
  config.linear = linear_group(NUM_CLASSES[(dataset, split)], common.mamp_checkpoints(dataset, split))
  config.linear.init_epoch = mamp.downstream_epochs(dataset)
  if dataset == "pku2":
    config.linear.batch_size, config.linear.optim.lr = 32, 0.01
  elif dataset == "pku1":
    config.linear.batch_size = 128
  return config


def get_config(arg: str = ""):
  row = config_args.parse_arg(arg, "configs/linear.py", row=(None, *common.ROWS)).row
  return recipe(*common.parse_dataset_split(row, "configs/linear.py"))
