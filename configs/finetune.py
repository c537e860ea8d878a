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

from stars_jax import config_args, recipes

SEMI_RATIOS = {"semi1": 0.01, "semi10": 0.1}
SOURCES = tuple(dataset for dataset, split in recipes.NPZ_FILES if split == "xsub")  # transfer: XSub encoders
NAMES = (
  *recipes.ROWS,
  *(f"{row}_{semi}" for row in recipes.ROWS for semi in SEMI_RATIOS),
  *(f"{row}_from_{source}" for row in recipes.ROWS for source in SOURCES),
)


def get_config(arg: str = ""):
  arg = config_args.parse_arg(arg, "configs/finetune.py", row=(None, *NAMES)).row
  if "_from_" in arg:
    target, source = arg.split("_from_")
    recipes.parse_dataset_split(f"{source}_xsub", "configs/finetune.py (transfer source)")
    config = recipes.finetune(
      *recipes.parse_dataset_split(target, "configs/finetune.py"), init=recipes.mamp_checkpoints(source, "xsub")
    )
    config.finetune.init_epoch = recipes.downstream_epochs(source)  # PKU-I: after 301 epochs, as the official
    return config
  name, _, suffix = arg.rpartition("_")
  if suffix in SEMI_RATIOS:
    return recipes.finetune(*recipes.parse_dataset_split(name, "configs/finetune.py"), data_ratio=SEMI_RATIOS[suffix])
  return recipes.finetune(*recipes.parse_dataset_split(arg, "configs/finetune.py"))
