"""Official recipe values shared by the config files in `configs/` (numbers from SPEC §2.1, §3.1–3.2).

Config files call these builders and override what differs, so every official number lives in one place.
"""
import importlib.util
import os
import pathlib

import ml_collections


def load_config_file(path: str | os.PathLike) -> ml_collections.ConfigDict:
  """`get_config()` of a config file (e.g. configs/synthetic.py), as --config=<path> would load it."""
  path = pathlib.Path(path)
  spec = importlib.util.spec_from_file_location(path.stem, path)
  if spec is None or spec.loader is None:
    raise FileNotFoundError(f"config file {path} cannot be loaded")
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  return module.get_config()


# Official npz file per (dataset, split), SPEC §1.4–1.5.
NPZ_FILES = {
    ("ntu60", "xsub"): "NTU60_XSub.npz",
    ("ntu60", "xview"): "NTU60_XView.npz",
    ("ntu120", "xsub"): "NTU120_XSub.npz",
    ("ntu120", "xset"): "NTU120_XSet.npz",
    ("pku1", "xsub"): "PKUv1_XSub.npz",
    ("pku2", "xsub"): "PKUv2_XSub.npz",
}


def data_config(path: str) -> ml_collections.ConfigDict:
  """Feeder settings of every official pretraining config (SPEC §1.6)."""
  return ml_collections.ConfigDict(dict(
      path=path,               # npz in the official layout; `synthetic` below is used when path is ''
      format="npz",            # or 'array_record': path is a TFDS build dir (data_prep/README.md)
      synthetic=ml_collections.ConfigDict(dict(
          dir="data/synthetic", split="xsub", num_classes=12, num_subjects=10, num_cameras=3,
          num_repetitions=2, seed=0)),
      window=120,              # frames after crop-resize
      train_p_interval=(0.5, 1.0),
      eval_p_interval=(0.95,),
      random_rot=True,
      rot_max=0.3,             # radians
      held_out_classes=(),     # class ids removed from every training stage (few-shot protocol, SPEC §1.9)
      num_threads=4,           # grain reader threads per host
      prefetch=8,
  ))


def model_config(decoder_depth: int) -> ml_collections.ConfigDict:
  """MAMP encoder-decoder, SPEC §2.1."""
  return ml_collections.ConfigDict(dict(
      dim=256, depth=8, num_heads=8, mlp_ratio=4.0, t_patch=4, num_joints=25,
      decoder_dim=256, decoder_depth=decoder_depth, decoder_heads=8,
      compute_dtype="auto",    # 'auto': bfloat16 on GPU/TPU, float32 on CPU; or 'float32' / 'bfloat16'
      attention_impl="",       # '' (auto: 'einsum' on CPU, jax's choice elsewhere), 'xla', 'cudnn' or 'einsum'
      remat=False,             # True: recompute block activations in the backward pass (larger batches)
  ))


def mamp_pretrain(dataset: str, split: str) -> ml_collections.ConfigDict:
  """The official MAMP stage-1 recipe for one dataset/split (SPEC §3.2)."""
  ntu120_or_pku = dataset in ("ntu120", "pku1", "pku2")
  config = ml_collections.ConfigDict()
  config.stage = "pretrain"
  config.seed = 0
  config.data = data_config(f"data/{NPZ_FILES[(dataset, split)]}")
  config.model = model_config(decoder_depth=5 if ntu120_or_pku else 3)
  config.masking = ml_collections.ConfigDict(dict(
      mask_ratio=0.9,
      tau=0.75 if dataset == "ntu120" else 0.80,  # motion_aware_tau; 0 = uniform masking (MAE baseline)
      motion_target=True,    # False: reconstruct positions (MAE baseline)
      normalize_target=True,  # norm_skes_loss
      motion_stride=1,
  ))
  config.batch_size = 128    # global: 4 GPUs x 32
  config.optim = ml_collections.ConfigDict(dict(
      epochs=400, warmup_epochs=20, lr=1e-3, min_lr=5e-4,
      b1=0.9, b2=0.95, eps=1e-8, weight_decay=0.05,  # no decay on 1-D tensors and biases (timm 0.3.2)
  ))
  config.sharding = ml_collections.ConfigDict(dict(
      fsdp=False,              # True: shard parameters and optimizer state over the `data` axis
      fsdp_min_size=2 ** 16,   # tensors smaller than this stay replicated under FSDP
  ))
  config.checkpoint_every_steps = 2000
  config.keep_checkpoints = 3
  config.log_every_steps = 50
  config.max_steps = -1        # > 0 stops early (benchmarks, smoke runs); the schedule still spans all epochs
  config.probe = ml_collections.ConfigDict(dict(
      enabled=False,           # after training: kNN-1 / logistic probe of the encoder vs a random one
      batch_size=256,
  ))
  return config


# STARS stage 2 (SPEC §4.7): the dataset's stage-1 weights and its layer decay in the third/merged stage.
STARS_LAYER_DECAY = {"ntu60": 0.45, "ntu120": 0.40, "pku2": 0.35}
STARS_RECIPES = ("second", "third", "merged", "full")


def stars_options(recipe: str, layer_decay: float, lr: float = 1e-3) -> ml_collections.ConfigDict:
  """The STARS tuning settings shared by every dataset (SPEC §4.2-4.8); the official *effective* behaviour
  is the default, with the modern alternative named beside each option."""
  if recipe not in STARS_RECIPES:
    raise ValueError(f"STARS recipe {recipe!r}; choose one of {STARS_RECIPES}")
  return ml_collections.ConfigDict(dict(
      recipe=recipe,             # second: head only; third/merged: blocks >= depth/2 + final norm + head; full
      init="",                   # checkpoint directory: a MAMP run's checkpoints/ (second, merged, full) or a
                                 # STARS run's best/ (third: restores head, BN statistics and queue too)
      epochs=20 if recipe == "second" else 10,
      batch_size=128,            # global: 4 GPUs x 32
      max_steps=-1,
      train_p_interval=(1.0,),   # both views = the full valid sequence resized to data.window (SPEC §4.4)
      head_hidden_dim=4096,
      temperature=0.07,
      topk=0,                    # 0: the nearest neighbour; k > 0: a random one of the k nearest
      loss="effective",          # official: only the first branch carries gradient, scaled by 1/2 (SPEC §7.2);
                                 # 'symmetric': both branches differentiated (with identical views: full grad)
      bn_updates_per_step=2,     # official: running BN statistics move once per branch (SPEC §4.5); 1 = once
      queue=ml_collections.ConfigDict(dict(
          size=32768,
          sharding="replicate",  # or 'data': rows split over the `data` mesh axis
          warm_start=False,      # official: random unit vectors (id -1) until overwritten; True: filled from
                                 # one pass of projections before the first step
      )),
      optim=ml_collections.ConfigDict(dict(
          lr=lr, layer_decay=layer_decay,  # block k: lr * layer_decay ** (depth - k); norm, head: lr
          b1=0.9, b2=0.95, eps=1e-8,
          weight_decay=0.01,     # official effective: PyTorch AdamW default; the yaml value is ignored (§7.4)
          decay_groups="all",    # 'all' (official: every tuned tensor) or 'no_1d' (no decay on 1-D / bias)
          clip="per_tensor",     # 'per_tensor' (official, §7.6), 'global' or 'none'
          clip_norm=3.0,
          schedule="constant",   # official (§7.5); 'warmup_cosine': linear warmup then half-cosine to min_lr
          warmup_epochs=0.0, min_lr=0.0,
      )),
      monitor=ml_collections.ConfigDict(dict(
          split="val",           # 'val': carved from the training set; 'test': the official selection (§7.9)
          val_fraction=0.1,
          ks=(10, 20, 40), temperature=0.1,
          every_epochs=1,
          batch_size=256,
      )),
  ))


def stars_tune(dataset: str, split: str, recipe: str) -> ml_collections.ConfigDict:
  """An official STARS tuning config (SPEC §4.7) as a stand-alone stage ('tune')."""
  config = mamp_pretrain(dataset, split)
  for key in ("masking", "optim", "probe", "batch_size"):
    del config[key]
  config.stage = "tune"
  config.data.random_rot = False  # stage 2 trains without augmentation (SPEC §1.7)
  config.checkpoint_every_steps = 500
  config.stars = stars_options(recipe, STARS_LAYER_DECAY[dataset], lr=1e-4 if dataset == "pku2" else 1e-3)
  return config


# Downstream protocols (SPEC §3.3-3.6). Official head widths, including the configs' class-count slips (§7.12):
# extra logits are never targets; -1 = the dataset's one-hot width.
OFFICIAL_NUM_CLASSES = {
    "linear": {("ntu60", "xsub"): 60, ("ntu60", "xview"): 120, ("ntu120", "xsub"): 120, ("ntu120", "xset"): 120,
               ("pku1", "xsub"): 60, ("pku2", "xsub"): 60},
    "finetune": {("ntu60", "xsub"): 60, ("ntu60", "xview"): 60, ("ntu120", "xsub"): 120, ("ntu120", "xset"): 120,
                 ("pku1", "xsub"): 60, ("pku2", "xsub"): 51},
}


def linear_options(num_classes: int = -1) -> ml_collections.ConfigDict:
  """Linear probe (SPEC §3.3): frozen encoder in inference mode, BN(affine=False) + Linear, SGD."""
  return ml_collections.ConfigDict(dict(
      init="",                 # checkpoint directory of a MAMP or STARS run ('' = random encoder)
      mode="full",             # 'full': augmented clips through the frozen encoder every step (official);
                               # 'cached': un-augmented features extracted once, head trained on them (fast)
      num_classes=num_classes,
      epochs=100, warmup_epochs=0.0, batch_size=256,  # global: 2 GPUs x 128
      lr=0.1, min_lr=0.0, momentum=0.9, weight_decay=0.0,
      eval_batch_size=256, eval_every_epochs=1,
  ))


def finetune_options(num_classes: int = -1, data_ratio: float = 1.0) -> ml_collections.ConfigDict:
  """Fine-tuning (SPEC §3.4) with the scripts' lr 3e-4 / 1e-5 (§7.15); data_ratio < 1 = semi-supervised."""
  return ml_collections.ConfigDict(dict(
      init="",                 # checkpoint directory of a MAMP or STARS run ('' = scratch baseline)
      num_classes=num_classes,
      epochs=100, warmup_epochs=5.0, batch_size=48,   # global: 2 GPUs x 24
      lr=3e-4, min_lr=1e-5, layer_decay=0.8,          # scratch baseline: layer_decay=1.0
      b1=0.9, b2=0.999, eps=1e-8, weight_decay=0.05,  # no decay on 1-D tensors and biases
      drop_path=0.3, dropout=0.3, label_smoothing=0.1,
      data_ratio=data_ratio,   # semi-supervised: labelled fraction of the training split (SPEC §3.5)
      class_balanced=False,    # official: a plain random subset; True: the same fraction of every class
      eval_batch_size=256, eval_every_epochs=1,
  ))


def _downstream(dataset: str, split: str, stage: str) -> ml_collections.ConfigDict:
  config = mamp_pretrain(dataset, split)
  for key in ("masking", "optim", "probe", "batch_size"):
    del config[key]
  config.stage = stage
  config.checkpoint_every_steps = 1000
  config.keep_checkpoints = 1
  return config


def linear_probe(dataset: str, split: str) -> ml_collections.ConfigDict:
  """Official linear probe of one dataset/split (PKU-II: batch 32, lr 0.01, SPEC §3.3)."""
  config = _downstream(dataset, split, "linear")
  config.linear = linear_options(OFFICIAL_NUM_CLASSES["linear"][(dataset, split)])
  if dataset == "pku2":
    config.linear.update(dict(batch_size=32, lr=0.01))
  elif dataset == "pku1":
    config.linear.batch_size = 128
  return config


def evaluate_options(stage1: str = "", stars: str = "") -> ml_collections.ConfigDict:
  """The encoders the `evaluate` stage compares (checkpoint directories; either may be empty)."""
  return ml_collections.ConfigDict(dict(
      stage1=stage1,           # a MAMP run's checkpoints/ (or an imported official MAMP checkpoint)
      stars=stars,             # a STARS run's best/ or checkpoints/ (or an imported official STARS checkpoint)
      plots=True,              # t-SNE and kNN-1 confusion PNGs in workdir/plots
  ))


def frozen_evaluation(dataset: str, split: str, held_out: tuple[int, ...] = ()) -> ml_collections.ConfigDict:
  """kNN (SPEC §4.10, k = 1, 2, 5, 10), logistic regression and cluster quality of frozen encoders on one
  dataset/split; with held-out classes also few-shot / one-shot on them (SPEC §1.9)."""
  config = _downstream(dataset, split, "evaluate")
  config.data.held_out_classes = tuple(held_out)
  config.probe = ml_collections.ConfigDict(dict(batch_size=256))
  config.evaluate = evaluate_options(stage1=f"runs/mamp_{dataset}_{split}/checkpoints")
  return config


def finetune(dataset: str, split: str, data_ratio: float = 1.0) -> ml_collections.ConfigDict:
  """Official fine-tuning (or semi-supervised fine-tuning with data_ratio < 1) of one dataset/split."""
  config = _downstream(dataset, split, "finetune")
  config.finetune = finetune_options(OFFICIAL_NUM_CLASSES["finetune"][(dataset, split)], data_ratio)
  return config
