"""The embedded default: MAMP pretraining of a small model on the synthetic skeleton dataset, on a CPU.

Same code path as the official recipes (configs/mamp_*.py); only sizes and the run length shrink so the job
finishes in a few minutes on 2 CPU cores. The data are generated under data.synthetic.dir on first use.
"""
from stars_jax import recipes


def get_config():
  config = recipes.mamp_pretrain("ntu60", "xsub")
  config.data.path = ""                # '' = the synthetic dataset (stars_jax.data.synthetic)
  config.data.synthetic.split = "xsub"
  config.data.window = 32              # shorter clips: 8 segments x 25 joints = 200 tokens per person
  config.model.update(dict(dim=64, depth=4, num_heads=4, decoder_dim=64, decoder_depth=2, decoder_heads=4))
  config.batch_size = 32
  config.optim.update(dict(epochs=20, warmup_epochs=2, lr=1e-3, min_lr=5e-4))
  config.checkpoint_every_steps = 100
  config.log_every_steps = 10
  config.probe.enabled = True
  return config
