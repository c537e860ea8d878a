"""STARS tuning, the official recipes (SPEC §4.7): `<dataset>_<split>_<recipe>`.

  stars-jax --config=configs/stars.py:ntu60_xsub_second --workdir=runs/stars_ntu60_xsub_second
  stars-jax --config=configs/stars.py:ntu60_xsub_third --workdir=runs/stars_ntu60_xsub_third

Datasets: ntu60_xsub, ntu60_xview, ntu120_xsub, ntu120_xset, pku2_xsub. Recipes: `second` (head only, 20 epochs,
from the MAMP run runs/mamp_<dataset>_<split>; PKU-II: runs/mamp_pku2_xsub_stars, the STARS repository's own
retraining), `third` (blocks 4-7 with lr · decay^(8-k), final norm and head, 10 epochs, from the second stage's
selected checkpoint runs/stars_<dataset>_<split>_second/best: head, BN statistics and queue restored), `merged`
(the third recipe straight from MAMP), `full` (every layer; beyond the paper). Another starting point:
--config.stars.init=DIR (e.g. an imported official checkpoint).
"""

from stars_jax import config_args, recipes, tuning_recipes

NAMES = tuple(
  f"{dataset}_{split}_{recipe}"
  for dataset, split in recipes.NPZ_FILES
  if dataset in tuning_recipes.STARS_LAYER_DECAY
  for recipe in tuning_recipes.STARS_RECIPES
)


def get_config(arg: str = ""):
  arg = config_args.parse_arg(arg, "configs/stars.py", row=(None, *NAMES)).row
  name, _, recipe = arg.rpartition("_")
  dataset, split = recipes.parse_dataset_split(name, "configs/stars.py")
  if dataset not in tuning_recipes.STARS_LAYER_DECAY:
    raise ValueError(
      f"configs/stars.py: STARS has no recipe for {dataset}; choose one of {sorted(tuning_recipes.STARS_LAYER_DECAY)}"
    )
  config = tuning_recipes.stars_tune(dataset, split, recipe)
  # PKU-II starts from the STARS repository's own MAMP retraining (configs/mamp.py:pku2_xsub_stars, SPEC §3.2).
  stage1 = recipes.mamp_checkpoints(dataset, split, stars_copy=dataset == "pku2")
  config.stars.init = f"runs/stars_{dataset}_{split}_second/best" if recipe == "third" else stage1
  return config
