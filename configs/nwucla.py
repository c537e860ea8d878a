"""NW-UCLA cross-view (real Kinect v1 skeletons, no data request): MAMP, then STARS, then the evaluation suite.

  stars-jax prepare nwucla --raw NW-UCLA --out data                          # the JSON release -> data/NWUCLA_XView.npz
  stars-jax --config=configs/nwucla.py --workdir=runs/nwucla                 # the CPU job (2 cores)
  stars-jax --config=configs/nwucla.py:gpu --workdir=runs/nwucla_gpu         # the official model size, for a GPU
  stars-jax --config=configs/nwucla.py:brief --workdir=runs/nwucla_brief     # a first look: minutes, no linear probe

Train on views 1 and 2 (1,018 clips), test on view 3 (462); all ten actions in every protocol, so the linear
probe is the 10-way one the literature reports. The CPU job keeps the main job's model (configs/synthetic.py:
width 64, 4 blocks, 200 tokens per person) with a schedule for NW-UCLA's short clips (31 frames at the median:
one 32-frame window covers a clip). `gpu` is the official NTU-60 model and schedule lengths (width 256, 8 blocks,
decoder 3; MAMP 400 epochs, STARS 'merged' 10 epochs), its clip window kept at 32 frames.
results.json and report.md compare the MAMP and STARS encoders with a random one (kNN, logistic, linear probe,
clusters); probe/plots/ has t-SNE and confusion plots with the action names (data/NWUCLA_XView.classes.txt). A
pipeline of the main job's steps (configs/common.py:main_steps; `brief` and `tiny` without the linear probes).
"""

from stars_jax import config_args, config_lib

common = config_lib.sibling(__file__, "common")
mamp = config_lib.sibling(__file__, "mamp")
stars = config_lib.sibling(__file__, "stars")
linear = config_lib.sibling(__file__, "linear")

VARIANTS = ("", "gpu", "brief", "tiny")
NPZ = "data/NWUCLA_XView.npz"


def _base():
  config = common.base("ntu60", "xview", "pipeline")
  config.data.path = NPZ
  config.data.window = 32  # 8 segments x 25 joints = 200 tokens per person
  return config


def get_config(arg: str = ""):
  variant = config_args.parse_arg(arg, "configs/nwucla.py", variant=VARIANTS).variant
  config = _base()
  pretrain = mamp.pretrain_group("ntu60")
  tuning = stars.stars_group("merged", stars.LAYER_DECAY["ntu60"], lr=1e-3)
  probe = linear.linear_group(num_classes=-1, init="")
  batch_size = 256  # feature extraction of the frozen-feature protocols
  if variant == "gpu":
    tuning.queue.size = 768  # ~0.75 epoch of the 1,018 training clips, as 32768 is of NTU-60 XSub
    return _pipeline(config, pretrain, tuning, probe, batch_size)
  config.model.update(dict(dim=64, depth=4, num_heads=4, decoder_dim=64, decoder_depth=2, decoder_heads=4))
  pretrain.update(dict(batch_size=32, epochs=60, checkpoint_every_steps=200, log_every_steps=10))
  pretrain.schedule.update(dict(warmup_epochs=2, min_lr=5e-4))
  tuning.update(dict(epochs=10, batch_size=32, head_hidden_dim=512, log_every_steps=10))
  tuning.queue.size = 768
  tuning.monitor.batch_size = 128
  probe.update(dict(epochs=10, batch_size=64, eval_batch_size=128, log_every_steps=10))
  if variant == "brief":  # notebooks/real_data.ipynb: a third of the schedule, no SGD linear probe
    pretrain.epochs, tuning.epochs = 20, 4
    probe = None
  if variant == "tiny":  # seconds: the tests' run of the real-data notebook on generated clips
    config.data.update(dict(window=16, num_threads=1))
    config.model.update(dict(dim=32, depth=2, decoder_dim=32, decoder_depth=1, compute_dtype="float32"))
    pretrain.update(dict(batch_size=8, epochs=2, checkpoint_every_steps=100))
    pretrain.schedule.warmup_epochs = 1
    tuning.update(dict(epochs=1, batch_size=8, head_hidden_dim=32))
    tuning.queue.size = 16
    tuning.monitor.update(dict(batch_size=16, val_fraction=0.25, ks=(1, 3)))
    batch_size, probe = 16, None
  return _pipeline(config, pretrain, tuning, probe, batch_size)


def _pipeline(top, pretrain, tuning, probe, batch_size: int):
  """The main job's steps (configs/common.py:main_steps) on NW-UCLA; `probe` None: no SGD linear probe."""
  return common.pipeline(
    top, "main", warmup_steps=0, steps=common.main_steps(pretrain, tuning, probe, batch_size, True)
  )
