"""The STARS repository's tuning ablation on the embedded synthetic data: NNCLR (STARS) vs MoCo vs DINO, each
tuning the same stage-1 encoder with the 'merged' recipe of the main job, then the frozen-feature protocols of
all of them next to the stage-1 and a random encoder (stage `ablation`).

  stars-jax --config=configs/ablation_synthetic.py --workdir=runs/ablation_s0 --config.seed=0
      [--config.ablation.stage1=runs/synthetic/stage1/checkpoints]     # reuse the main job's stage 1
  stars-jax report runs/ablation_s0 runs/ablation_s1 runs/ablation_s2     # mean ± std over seeds

Sizes as configs/synthetic.py; the objectives' official settings scaled as the main job scales NNCLR's: queues
of 320 keys (~0.75 epoch, as 32,768 is of NTU-60 XSub), the per-GPU batch of the official 4-GPU run (8 of 32) for
MoCo's second pointer advance and DINO's Sinkhorn-Knopp groups, and DINO's momentum schedule over four times the
run (the official 1,252 steps per epoch are four times NTU-60 XSub's 313).
"""

import pathlib

import ml_collections

from stars_jax import config_lib

OBJECTIVES = ("nnclr", "moco", "dino")
OFFICIAL_GPUS = 4


def get_config():
  config = config_lib.load_config(str(pathlib.Path(__file__).with_name("synthetic.py")))  # the main job's config
  config.stage = "ablation"
  del config["linear"]  # frozen-feature protocols only (the linear probe takes ~1 min per encoder here)
  s = config.stars
  per_gpu = s.batch_size // OFFICIAL_GPUS
  s.moco.pointer_skip = per_gpu
  s.dino.sinkhorn_groups = OFFICIAL_GPUS
  clips = 432  # the synthetic training split: 12 seen classes x 36 clips
  s.dino.momentum_steps_per_epoch = OFFICIAL_GPUS * (clips // s.batch_size)
  config.ablation = ml_collections.ConfigDict(dict(stage1="", objectives=OBJECTIVES))
  return config
