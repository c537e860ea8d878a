"""The embedded default: MAMP pretraining, then STARS tuning, of a small model on the synthetic skeleton
dataset, on a CPU, then the evaluation suite of both encoders (a pipeline, stars_jax/pipeline: steps stage1, stars,
probe, linear_stage1, linear_stars, linear_random_init, each under WORKDIR/<step>/).

  stars-jax --config=configs/synthetic.py --workdir=runs/synthetic             # the main job
  stars-jax --config=configs/synthetic.py:evaluate --workdir=runs/synthetic_eval   # its evaluation suite again
  stars-jax --config=configs/synthetic.py:finetune --workdir=runs/ft_stage1        # fine-tune its encoders
      [--config.finetune.init=runs/synthetic/stars/best]
  stars-jax --config=configs/synthetic.py --workdir=runs/synthetic --config.steps.stage1.pretrain.epochs=60
      # a step's setting, under its name
  stars-jax --config=configs/synthetic.py:tiny --workdir=runs/tiny         # the same job in seconds (tests, notebook)

Arguments (comma-separated, stars_jax.config_args): `evaluate` or `finetune` (the job; default: the main job),
`tiny` (a 2-block 32-d model on 6 synthetic actions of 4 subjects, 16-frame clips, each stage a few steps: the
settings the tests, the quickstart notebook and the pipeline test run; e.g. `:evaluate,tiny`).

Same code path as the official recipes (configs/mamp.py, configs/stars.py); only sizes and run lengths shrink
so the job finishes in minutes on 2 CPU cores. The data are generated under data.synthetic.dir on first use.
Four of the 16 synthetic actions are held out of both training stages (the few-shot protocol's novel classes);
each resembles a seen one, as NTU-120's novel actions resemble NTU-60's.
results.json and report.md compare the stage-1 and tuned encoders (next to a random one) on kNN
(`knn1.stage1`, `knn1.stars`, ...), the linear probe, few-shot / one-shot on the held-out classes, and cluster
quality (silhouette, k-means NMI / ARI); t-SNE, confusion and training-curve plots go to probe/plots/.
"""

from stars_jax import config_args, config_lib

common = config_lib.sibling(__file__, "common")
mamp = config_lib.sibling(__file__, "mamp")
stars = config_lib.sibling(__file__, "stars")
linear = config_lib.sibling(__file__, "linear")
finetune = config_lib.sibling(__file__, "finetune")

JOBS = ("main", "evaluate", "finetune")
SEEN_ACTIONS = (
  "wave",
  "kick",
  "bow",
  "handshake",
  "jump",
  "walk in place",
  "push",
  "step forward",
  "punch",
  "hug",
  "clap",
  "side bend",
)
# Each like a seen action: raising an arm (wave), both arms (clap), reaching (punch, push), hopping (jump, kick).
HELD_OUT_ACTIONS = ("raise right arm", "raise both arms", "reach forward", "hop on one leg")


def _base(job: str):
  config = common.base("ntu60", "xsub", job)
  config.data.path = ""  # '' = the synthetic dataset (stars_jax.data.synthetic)
  config.data.synthetic.split = "xsub"
  config.data.synthetic.actions = SEEN_ACTIONS + HELD_OUT_ACTIONS
  config.data.synthetic.num_classes = len(config.data.synthetic.actions)  # fewer: the first ones
  # Labels 12..15: 12 seen classes (432 training clips), 4 novel ones a random encoder tells apart only 55-66 % of
  # the time (few-shot kNN-1; 25 % is chance).
  config.data.held_out_classes = tuple(range(len(SEEN_ACTIONS), config.data.synthetic.num_classes))
  config.data.window = 32  # shorter clips: 8 segments x 25 joints = 200 tokens per person
  config.model.update(dict(dim=64, depth=4, num_heads=4, decoder_dim=64, decoder_depth=2, decoder_heads=4))
  return config


def get_config(arg: str = ""):
  args = config_args.parse_arg(arg, "configs/synthetic.py", job=JOBS, tiny=False)
  config = _job(args.job)
  return _tiny(config) if args.tiny else config


def _job(job: str):
  if job == "evaluate":
    config = _base("evaluate")
    config.evaluate = common.evaluate_group(
      stage1="runs/synthetic/stage1/checkpoints", stars="runs/synthetic/stars/best", enabled=True
    )
    return config
  if job == "finetune":
    # The official fine-tuning recipe (SPEC §3.4) shortened to 30 epochs, on the seen classes.
    config = _base("finetune")
    config.finetune = finetune.finetune_group(num_classes=-1, data_ratio=1.0, init="runs/synthetic/stage1/checkpoints")
    config.finetune.update(dict(epochs=30, eval_batch_size=128, log_every_steps=10))
    config.finetune.schedule.warmup_epochs = 3.0
    return config
  return common.pipeline(_base("pipeline"), "main", warmup_steps=0, steps=main_steps())


def main_steps() -> dict:
  """The main job's steps (configs/common.py:main_steps) at its sizes."""
  # Stage 1: 120 epochs = 1560 steps. Its encoder passes a random one on kNN only late: at 20-40 epochs it is below
  # it, at 80 level with it, from ~110 epochs far above (benchmarks/results/synthetic_stage1_sweep_cpu.json). A
  # higher learning rate, a 0.75 mask ratio, batch 16 or a 1-layer decoder did not bring that earlier.
  pretrain = mamp.pretrain_group("ntu60")
  pretrain.update(dict(batch_size=32, epochs=120, checkpoint_every_steps=100, log_every_steps=10))
  pretrain.schedule.update(dict(warmup_epochs=2, min_lr=5e-4))
  # Stage 2: the official 'merged' recipe (upper half of the blocks, final norm, head; SPEC §4.1).
  tuning = stars.stars_group("merged", stars.LAYER_DECAY["ntu60"], lr=1e-3)
  tuning.update(dict(epochs=10, batch_size=32, head_hidden_dim=512, log_every_steps=10))
  tuning.queue.size = 320  # ~0.75 epoch of the 432 training clips, as 32768 is of NTU-60 XSub
  tuning.monitor.batch_size = 128
  # Downstream: the official linear probe (augmented clips through the frozen encoder), shortened.
  probe = linear.linear_group(num_classes=-1, init="")
  probe.update(dict(epochs=10, batch_size=64, eval_batch_size=128, log_every_steps=10))
  return common.main_steps(pretrain, tuning, probe, batch_size=256, plots=True)


def _tiny(config):
  """Seconds on a CPU: 6 actions (2 held out) of 4 subjects x 2 cameras (24 training clips of the 4 seen ones),
  16-frame clips, a 2-block 32-d model, each training stage a few steps of 8 clips."""
  config.data.synthetic.update(dict(num_classes=6, num_subjects=4, num_cameras=2, num_repetitions=1))
  config.data.held_out_classes = (1, 4)
  config.data.update(dict(window=16, num_threads=1))
  config.model.update(dict(dim=32, depth=2, decoder_dim=32, decoder_depth=1))
  for node in config.steps.values() if config.job == "pipeline" else (config,):
    tiny_groups(node)
  return config


def tiny_groups(node) -> None:
  """The tiny run lengths and batches for the groups of one config or pipeline step."""
  if "evaluate" in node:
    node.evaluate.batch_size = 16
  if node.get("kind") == "probe":
    node.batch_size = 16
  if "pretrain" in node:  # 36 steps: 24 clips / 8 x 12 epochs
    node.pretrain.update(dict(batch_size=8, epochs=12, log_every_steps=3, checkpoint_every_steps=12))
    node.pretrain.schedule.warmup_epochs = 1
  if "stars" in node:  # 6 steps, monitored on a quarter of the training clips
    node.stars.update(dict(epochs=2, batch_size=8, head_hidden_dim=32, log_every_steps=3))
    node.stars.queue.size = 20
    node.stars.monitor.update(dict(batch_size=16, val_fraction=0.25, ks=(1, 3)))
  for group in ("linear", "finetune"):
    if group in node:
      node[group].update(dict(epochs=2, batch_size=8, eval_batch_size=16, log_every_steps=3))
