"""Fine-tuning (SPEC §3.4) of an encoder trained by the main job (configs/synthetic.py), on the synthetic
dataset's seen classes, with the official recipe shortened to 30 epochs:

  stars-jax --config=configs/finetune_synthetic.py --workdir=runs/ft_stage1 \
      --config.finetune.init=runs/synthetic/stage1/checkpoints
  stars-jax --config=configs/finetune_synthetic.py --workdir=runs/ft_stars --config.finetune.init=runs/synthetic/stars/best

results.json: finetune.best / finetune.last test top-1 (percent). An empty init fine-tunes from scratch.
"""
import pathlib

from stars_jax import recipes


def get_config():
  # The main job's config: same data, model and seed.
  config = recipes.load_config_file(pathlib.Path(__file__).with_name("synthetic.py"))
  for key in ("masking", "optim", "probe", "batch_size", "stars", "linear"):
    del config[key]
  config.stage = "finetune"
  config.keep_checkpoints = 1
  config.finetune = recipes.finetune_options()
  config.finetune.update(dict(epochs=30, warmup_epochs=3.0, eval_batch_size=128))
  return config
