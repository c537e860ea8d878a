"""The STARS repository's tuning ablation on the embedded synthetic data: NNCLR (STARS) vs MoCo vs DINO, each
tuning the same stage-1 encoder with the 'merged' recipe of the main job, then the frozen-feature protocols of
all of them next to the stage-1 and a random encoder (a pipeline: steps stage1, nnclr, moco, dino, probe).

  stars-jax --config=configs/ablation_synthetic.py --workdir=runs/ablation_s0 --config.seed=0
  stars-jax --config=configs/ablation_synthetic.py:stage1=runs/synthetic/stage1/checkpoints --workdir=runs/abl
      # the same from the main job's stage 1 (no stage1 step)
  stars-jax report runs/ablation_s0 runs/ablation_s1 runs/ablation_s2     # mean ± std over seeds

Arguments: `stage1=DIR` (a MAMP checkpoint directory every objective starts from), `tiny` (the sizes and run
lengths of configs/synthetic.py:tiny: seconds, for the tests).

Sizes as configs/synthetic.py; the objectives' official settings scaled as the main job scales NNCLR's: queues
of 320 keys (~0.75 epoch, as 32,768 is of NTU-60 XSub), the per-GPU batch of the official 4-GPU run (8 of 32) for
MoCo's second pointer advance and DINO's Sinkhorn-Knopp groups, and DINO's momentum schedule over four times the
run (the official 1,252 steps per epoch are four times NTU-60 XSub's 313).
"""

import ml_collections

from stars_jax import config_args, config_lib

common = config_lib.sibling(__file__, "common")
synthetic = config_lib.sibling(__file__, "synthetic")

OBJECTIVES = ("nnclr", "moco", "dino")
OFFICIAL_GPUS = 4


def get_config(arg: str = ""):
  args = config_args.parse_arg(arg, "configs/ablation_synthetic.py", stage1="", tiny=False)
  main = synthetic.get_config("tiny" if args.tiny else "")  # the main job's sizes
  tuning = main.steps.stars.stars
  per_gpu = tuning.batch_size // OFFICIAL_GPUS
  tuning.moco.pointer_skip = per_gpu
  tuning.dino.sinkhorn_groups = OFFICIAL_GPUS
  clips = 432  # the synthetic training split: 12 seen classes x 36 clips
  tuning.dino.momentum_steps_per_epoch = OFFICIAL_GPUS * (clips // tuning.batch_size)
  stage1 = f"stage1={args.stage1}" if args.stage1 else "stage1"
  steps = {} if args.stage1 else {"stage1": main.steps.stage1}
  for objective in OBJECTIVES:
    group = ml_collections.ConfigDict(tuning.to_dict())
    group.objective = objective
    steps[objective] = common.step("tune", input=stage1, stars=group)
  probe = main.steps.probe
  # Frozen-feature protocols only (the linear probe takes ~1 min per encoder here).
  steps["probe"] = common.step(
    "probe", input=stage1, compare=(*OBJECTIVES, "random"), batch_size=probe.batch_size, plots=probe.plots
  )
  return common.pipeline(main, "ablation", warmup_steps=0, steps=steps)
