"""The official linear probe (SPEC §3.3) of one dataset/split's stage-1 encoder (runs/mamp_<dataset>_<split>).

  stars-jax --config=configs/linear.py:ntu60_xsub --workdir=runs/linear_ntu60_xsub \
      [--config.linear.init=runs/stars_ntu60_xsub_third/best] [--config.linear.mode=cached]

Arguments: ntu60_xsub, ntu60_xview, ntu120_xsub, ntu120_xset, pku1_xsub, pku2_xsub. `linear.mode=cached` trains
the head on features extracted once (fast; not the official protocol, labelled so in results).
"""

from stars_jax import config_args, recipes


def get_config(arg: str = ""):
  row = config_args.parse_arg(arg, "configs/linear.py", row=(None, *recipes.ROWS)).row
  return recipes.linear_probe(*recipes.parse_dataset_split(row, "configs/linear.py"))
