"""Transfer learning (SPEC §3.6): fine-tune on PKU-MMD II XSub from the ntu120 XSub stage-1 encoder
(runs/mamp_ntu120_xsub, pretrained on the source dataset only)."""
from stars_jax import recipes


def get_config():
  config = recipes.finetune("pku2", "xsub")
  config.finetune.init = "runs/mamp_ntu120_xsub/checkpoints"
  return config
