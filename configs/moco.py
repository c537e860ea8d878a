"""MoCo tuning, the STARS repository's ablation of its NNCLR objective (SPEC §4.11): a momentum teacher and a
key queue (`stars_jax.train.moco`).

  stars-jax --config=configs/moco.py:ntu60_xsub_second --workdir=runs/moco_ntu60_xsub_second
  stars-jax --config=configs/moco.py:ntu60_xsub_third --workdir=runs/moco_ntu60_xsub_third

Recipes (official `mocotuning_<split>_<recipe>.yaml`): ntu60_xsub, ntu60_xview x second (head only, 20 epochs,
from MAMP) / third (blocks 4-7, final norm and head, 10 epochs, layer decay 0.45, from the second stage's
selected checkpoint). As in the official configs, XView's second stage starts from the XSub MAMP run (SPEC
§7.17): give --config.stars.init=runs/mamp_ntu60_xview/checkpoints for the matching split. Any NNCLR config runs
this objective with --config.stars.objective=moco.
"""

from stars_jax import config_args, config_lib

stars = config_lib.sibling(__file__, "stars")

# Official mocotuning_<split>_<recipe>.yaml (STARS:config/ntu60/pretext, SPEC §4.11): epochs and layer decay.
RECIPES = {"second": dict(epochs=20, layer_decay=0.45), "third": dict(epochs=10, layer_decay=0.45)}
NAMES = tuple(f"ntu60_{split}_{recipe}" for split in ("xsub", "xview") for recipe in RECIPES)


def get_config(arg: str = ""):
  row = config_args.parse_arg(arg, "configs/moco.py", row=(None, *NAMES)).row
  return stars.ablation(row, "moco", RECIPES, "configs/moco.py")
