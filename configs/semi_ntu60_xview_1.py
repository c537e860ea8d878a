"""Semi-supervised fine-tuning on 1 % of the NTU-60 xview labels (SPEC §3.5).

The labelled subset is drawn once from config.seed (any number of devices gives the same subset; the official
per-rank draw is SPEC §7.13) and saved as subset_indices.json in the workdir. Repeat with --config.seed=0..4 and
summarise with `stars-jax report runs/semi_ntu60_xview_1_s*` (mean ± std). Class-balanced subsets:
--config.finetune.class_balanced=True.
"""
from stars_jax import recipes


def get_config():
  config = recipes.finetune("ntu60", "xview", data_ratio=0.01)
  config.finetune.init = "runs/mamp_ntu60_xview/checkpoints"
  return config
