"""Fine-tuning (SPEC §3.4), semi-supervised fine-tuning (§3.5) and transfer (§3.6), official recipes.

  stars-jax --config=configs/finetune.py:ntu60_xsub --workdir=runs/finetune_ntu60_xsub
  stars-jax --config=configs/finetune.py:ntu60_xsub_semi1 --workdir=runs/semi_ntu60_xsub_1_s0 --config.seed=0
  stars-jax --config=configs/finetune.py:pku2_xsub_from_ntu60 --workdir=runs/transfer_pku2_from_ntu60

`<dataset>_<split>`: from the stage-1 encoder in runs/mamp_<dataset>_<split> (a STARS encoder:
--config.finetune.init=runs/stars_<dataset>_<split>_<recipe>/best; the scratch baseline: --config.finetune.init=''
--config.finetune.optim.layer_decay=1.0). `_semi1` / `_semi10`: 1 % / 10 % of the labels (400 / 4,009 clips for
NTU-60 XSub), drawn once from config.seed (the same on any number of devices, unlike the official per-rank draw,
SPEC §7.13) and saved as subset_indices.json; --config.finetune.class_balanced=True for a per-class draw;
--config.finetune.subset_draw=official [--config.finetune.world_size=2] for the official per-rank draw (the union
of the ranks' subsets, saved likewise), to reproduce the published semi-supervised numbers.
`pku2_xsub_from_<source>` (source ntu60, ntu120 or pku1): PKU-MMD II from the source dataset's XSub stage-1 encoder
(its last checkpoint; PKU-I's after 301 epochs, finetune.init_epoch, as the official script loads checkpoint-300).
"""

import ml_collections

from stars_jax import config_args, config_lib

common = config_lib.sibling(__file__, "common")
mamp = config_lib.sibling(__file__, "mamp")

# Official head widths, including the configs' class-count slips (§7.12): extra logits are never targets.
NUM_CLASSES = {
  ("ntu60", "xsub"): 60,
  ("ntu60", "xview"): 60,
  ("ntu120", "xsub"): 120,
  ("ntu120", "xset"): 120,
  ("pku1", "xsub"): 60,
  ("pku2", "xsub"): 51,
}
SEMI_RATIOS = {"semi1": 0.01, "semi10": 0.1}
SOURCES = tuple(dataset for dataset, split in common.NPZ_FILES if split == "xsub")  # transfer: XSub encoders
NAMES = (
  *common.ROWS,
  *(f"{row}_{semi}" for row in common.ROWS for semi in SEMI_RATIOS),
  *(f"{row}_from_{source}" for row in common.ROWS for source in SOURCES),
)


def finetune_group(num_classes: int, data_ratio: float, init: str) -> ml_collections.ConfigDict:
  """Fine-tuning (SPEC §3.4) with the scripts' lr 3e-4 / 1e-5 (§7.15): layer-wise lr decay 0.8 (scratch
  baseline: 1.0), AdamW, no decay on 1-D tensors and biases, warmup 5, 100 epochs, batch 48 (2 GPUs x 24).
  num_classes -1: the dataset's one-hot width."""
  return common.classification_group(
    init=init,
    num_classes=num_classes,
    batch_size=48,
    epochs=100,
    optim=common.optim(
      name="adamw",
      lr=3e-4,
      b1=0.9,
      b2=0.999,
      eps=1e-8,
      momentum=0.0,
      weight_decay=0.05,
      decay_groups="no_1d",
      layer_decay=0.8,
      clip="none",
      clip_norm=0.0,
    ),
    schedule=common.schedule("warmup_cosine", warmup_epochs=5.0, min_lr=1e-5),
    drop_path=0.3,
    dropout=0.3,
    label_smoothing=0.1,
    data_ratio=data_ratio,
  )


def recipe(dataset: str, split: str, data_ratio: float, init: str) -> ml_collections.ConfigDict:
  """Official fine-tuning (or semi-supervised with data_ratio < 1) of one dataset/split, from `init` (default:
  the same dataset/split's stage-1 encoder)."""
  config = common.base(dataset, split, "finetune")
  config.finetune = finetune_group(
    NUM_CLASSES[(dataset, split)], data_ratio, init or common.mamp_checkpoints(dataset, split)
  )
  return config


def get_config(arg: str = ""):
  arg = config_args.parse_arg(arg, "configs/finetune.py", row=(None, *NAMES)).row
  if "_from_" in arg:
    target, source = arg.split("_from_")
    common.parse_dataset_split(f"{source}_xsub", "configs/finetune.py (transfer source)")
    dataset, split = common.parse_dataset_split(target, "configs/finetune.py")
    config = recipe(dataset, split, data_ratio=1.0, init=common.mamp_checkpoints(source, "xsub"))
    config.finetune.init_epoch = mamp.downstream_epochs(source)  # PKU-I: after 301 epochs, as the official
    return config
  name, _, suffix = arg.rpartition("_")
  if suffix in SEMI_RATIOS:
    return recipe(*common.parse_dataset_split(name, "configs/finetune.py"), data_ratio=SEMI_RATIOS[suffix], init="")
  return recipe(*common.parse_dataset_split(arg, "configs/finetune.py"), data_ratio=1.0, init="")
