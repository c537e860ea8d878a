"""The config library: the official recipes' numbers (SPEC sections beside them), built from shared pieces.

Every config has the same top level: `stage`, `seed`, `allow_config_change`, `data`, `model`, `sharding`, plus
one group per stage it runs: `pretrain`, `stars`, `linear`, `finetune` (each of the shape `training_group` gives:
batch_size, epochs, max_steps, optim, schedule, checkpoint and log intervals, and the stage's own settings) and
`evaluate` (frozen-feature protocols). Config files in `configs/` compose these; `load_config` loads a file as
`--config=` does.
"""

import ml_collections
from ml_collections.config_flags import config_flags

# Official npz file per (dataset, split), SPEC §1.4–1.5.
NPZ_FILES = {
  ("ntu60", "xsub"): "NTU60_XSub.npz",
  ("ntu60", "xview"): "NTU60_XView.npz",
  ("ntu120", "xsub"): "NTU120_XSub.npz",
  ("ntu120", "xset"): "NTU120_XSet.npz",
  ("pku1", "xsub"): "PKUv1_XSub.npz",
  ("pku2", "xsub"): "PKUv2_XSub.npz",
}
ROWS = tuple(f"{dataset}_{split}" for dataset, split in NPZ_FILES)  # the config files' row arguments
STAGES = ("pretrain", "tune", "pretrain_tune", "linear", "finetune", "evaluate", "ablation")

# Few-shot protocols (SPEC §1.9): NTU-120 actions 61-120, unseen by an NTU-60 encoder (0-based ids); the
# standard NTU-120 one-shot protocol's 20 novel classes A1, A7, ..., A115.
NTU120_STARS_NOVEL = tuple(range(60, 120))
NTU120_ONE_SHOT_NOVEL = tuple(range(0, 120, 6))


def load_config(spec: str) -> ml_collections.ConfigDict:
  """`get_config([arg])` of a config file, `spec` = 'path.py' or 'path.py:arg', exactly as `--config=spec`
  loads it (but unlocked, so callers may add keys)."""
  return config_flags.ConfigFileFlagParser("config", lock_config=False).parse(spec)


def held_out_classes(num_classes: int, num_held_out: int) -> tuple[int, ...]:
  """`num_held_out` classes spread over [0, num_classes): every (num_classes // num_held_out)-th class counted
  down from the last one, ascending. E.g. (10, 3) -> (3, 6, 9)."""
  if not 0 < num_held_out < num_classes:
    raise ValueError(f"need 0 < num_held_out < num_classes; got {num_held_out}, {num_classes}")
  step = num_classes // num_held_out
  return tuple(sorted(num_classes - 1 - step * i for i in range(num_held_out)))


def parse_dataset_split(arg: str, what: str) -> tuple[str, str]:
  """'ntu60_xsub' -> ('ntu60', 'xsub'), checked against NPZ_FILES; `what` names the config in the error."""
  dataset, _, split = arg.partition("_")
  if (dataset, split) not in NPZ_FILES:
    choices = ", ".join(f"{d}_{s}" for d, s in NPZ_FILES)
    raise ValueError(f"{what}: unknown dataset/split {arg!r}; choose one of {choices}")
  return dataset, split


# --- shared pieces ---------------------------------------------------------------------------------------------
def data_config(path: str) -> ml_collections.ConfigDict:
  """Feeder settings of every official pretraining config (SPEC §1.6)."""
  return ml_collections.ConfigDict(
    dict(
      path=path,  # npz in the official layout; `synthetic` below is used when path is ''
      format="npz",  # or 'array_record': path is a TFDS build dir (data_prep/README.md)
      synthetic=ml_collections.ConfigDict(
        dict(
          dir="data/synthetic",
          split="xsub",
          num_classes=12,
          actions=(),
          num_subjects=10,
          num_cameras=3,
          num_repetitions=2,
          seed=0,
        )
      ),
      window=120,  # frames after crop-resize
      train_p_interval=(0.5, 1.0),
      eval_p_interval=(0.95,),
      random_rot=True,
      rot_max=0.3,  # radians
      stream="joint",  # model input after the transforms: 'joint', 'bone' (minus the parent joint), 'motion'
      held_out_classes=(),  # class ids removed from every training stage (few-shot protocol, SPEC §1.9)
      num_threads=4,  # grain reader threads per host
      prefetch=8,
    )
  )


def model_config(decoder_depth: int) -> ml_collections.ConfigDict:
  """MAMP encoder-decoder, SPEC §2.1."""
  return ml_collections.ConfigDict(
    dict(
      dim=256,
      depth=8,
      num_heads=8,
      mlp_ratio=4.0,
      t_patch=4,
      num_joints=25,
      decoder_dim=256,
      decoder_depth=decoder_depth,
      decoder_heads=8,
      compute_dtype="auto",  # 'auto': bfloat16 on GPU/TPU, float32 on CPU; or 'float32' / 'bfloat16'
      attention_impl="auto",  # stars_jax.device: cudnn / xla on GPU by dtype, head dim; xla on TPU; chunked on CPU
      remat=False,  # True: recompute block activations in the backward pass (larger batches)
    )
  )


def base(dataset: str, split: str, stage: str) -> ml_collections.ConfigDict:
  """What every config has: stage, seed, data, model (decoder depth per dataset, SPEC §3.2), sharding."""
  if stage not in STAGES:
    raise ValueError(f"stage {stage!r}; choose one of {STAGES}")
  config = ml_collections.ConfigDict()
  config.stage = stage
  config.seed = 0
  config.allow_config_change = False  # True: resume although settings that change the results differ
  config.data = data_config(f"data/{NPZ_FILES[(dataset, split)]}")
  config.model = model_config(decoder_depth=5 if dataset in ("ntu120", "pku1", "pku2") else 3)
  config.sharding = ml_collections.ConfigDict(
    dict(
      fsdp=False,  # True: shard parameters and optimizer state over the `data` axis
      fsdp_min_size=2**16,  # tensors smaller than this stay replicated under FSDP
    )
  )
  return config


def optim(
  *,
  name: str = "adamw",
  lr: float,
  b1: float = 0.9,
  b2: float = 0.999,
  eps: float = 1e-8,
  momentum: float = 0.0,
  weight_decay: float = 0.0,
  decay_groups: str = "no_1d",
  layer_decay: float = 1.0,
  clip: str = "none",
  clip_norm: float = 0.0,
) -> ml_collections.ConfigDict:
  """An optimizer group (train/optim.py): name 'adamw' | 'sgd' (momentum), decay_groups 'no_1d' (no decay on
  1-D tensors and biases, timm) | 'all', per-layer lr = lr · layer_decay ** (depth + 1 - layer), clip 'none' |
  'per_tensor' | 'global' at clip_norm."""
  return ml_collections.ConfigDict(
    dict(
      name=name,
      lr=lr,
      b1=b1,
      b2=b2,
      eps=eps,
      momentum=momentum,
      weight_decay=weight_decay,
      decay_groups=decay_groups,
      layer_decay=layer_decay,
      clip=clip,
      clip_norm=clip_norm,
    )
  )


def schedule(name: str = "warmup_cosine", warmup_epochs: float = 0.0, min_lr: float = 0.0) -> ml_collections.ConfigDict:
  """'warmup_cosine': per-iteration linear warmup, then half-cosine to min_lr (SPEC §3.1); 'constant'."""
  return ml_collections.ConfigDict(dict(name=name, warmup_epochs=warmup_epochs, min_lr=min_lr))


def training_group(
  *,
  batch_size: int,
  epochs: int,
  optim: ml_collections.ConfigDict,
  schedule: ml_collections.ConfigDict,
  checkpoint_every_steps: int,
  keep_checkpoints: int,
  log_every_steps: int = 50,
  **stage_settings,
) -> ml_collections.ConfigDict:
  """The shape every stage group shares, plus the stage's own settings."""
  return ml_collections.ConfigDict(
    dict(
      batch_size=batch_size,  # global, over all devices and hosts
      epochs=epochs,
      max_steps=-1,  # > 0 stops early (benchmarks, smoke runs); the schedule still spans all epochs
      optim=optim,
      schedule=schedule,
      checkpoint_every_steps=checkpoint_every_steps,  # 0: at the end of every epoch
      keep_checkpoints=keep_checkpoints,
      keep_epochs=(),  # epoch counts whose checkpoint is kept for good, beyond the last keep_checkpoints
      log_every_steps=log_every_steps,
      **stage_settings,
    )
  )


def evaluate_group(stage1: str = "", stars: str = "", enabled: bool = True) -> ml_collections.ConfigDict:
  """Frozen-feature protocols (kNN, logistic, clusters, few-shot on `data.held_out_classes`) of the encoders
  a job trained or, in the `evaluate` stage, of the checkpoint directories `stage1` / `stars`."""
  return ml_collections.ConfigDict(
    dict(
      enabled=enabled,  # pretrain / pretrain_tune: run them after training, against a random encoder
      batch_size=256,  # feature extraction
      plots=True,  # t-SNE and kNN-1 confusion PNGs in workdir/plots
      stage1=stage1,  # a MAMP run's checkpoints/ (or an imported official MAMP checkpoint)
      stars=stars,  # a STARS run's best/ or checkpoints/ (or an imported official STARS checkpoint)
    )
  )


# --- stage 1: MAMP (SPEC §2.1, §3.2) ---------------------------------------------------------------------------
def pretrain_group(dataset: str) -> ml_collections.ConfigDict:
  """The official MAMP pretraining settings of a dataset (SPEC §3.2)."""
  return training_group(
    batch_size=128,  # global: 4 GPUs x 32
    epochs=400,
    optim=optim(lr=1e-3, b1=0.9, b2=0.95, eps=1e-8, weight_decay=0.05),  # no decay on 1-D / biases (timm 0.3.2)
    schedule=schedule("warmup_cosine", warmup_epochs=20, min_lr=5e-4),
    checkpoint_every_steps=2000,
    keep_checkpoints=3,
    masking=ml_collections.ConfigDict(
      dict(
        mask_ratio=0.9,
        tau=0.75 if dataset == "ntu120" else 0.80,  # motion_aware_tau; 0 = uniform masking (MAE baseline)
        motion_target=True,  # False: reconstruct positions (MAE baseline)
        normalize_target=True,  # norm_skes_loss
        motion_stride=1,
      )
    ),
  )


# The stage-1 checkpoint the official PKU-MMD linear-probe and transfer scripts start from: checkpoint-300.pth,
# saved after 301 of the 400 epochs (SPEC §3.2); NTU scripts take the last one.
PKU_DOWNSTREAM_EPOCHS = 301


def downstream_epochs(dataset: str) -> int:
  """`init_epoch` of the official downstream runs from a `dataset` stage-1 encoder: -1 (the last) or 301."""
  return PKU_DOWNSTREAM_EPOCHS if dataset in ("pku1", "pku2") else -1


def mamp_pretrain(dataset: str, split: str, stars_copy: bool = False) -> ml_collections.ConfigDict:
  """The official MAMP stage-1 recipe for one dataset/split. PKU-MMD runs keep the checkpoint after 301 epochs for
  the downstream protocols. `stars_copy`: the STARS repository's copy of the script, which it used to retrain the
  PKU-II encoder its tuning starts from: weight decay on every parameter, biases and norms included (SPEC §3.2)."""
  config = base(dataset, split, "pretrain")
  config.pretrain = pretrain_group(dataset)
  if dataset in ("pku1", "pku2"):
    config.pretrain.keep_epochs = (PKU_DOWNSTREAM_EPOCHS,)
  if stars_copy:
    config.pretrain.optim.decay_groups = "all"
  config.evaluate = evaluate_group(enabled=False)
  return config


# --- downstream protocols (SPEC §3.3-3.6) ------------------------------------------------------------------------
# Official head widths, including the configs' class-count slips (§7.12): extra logits are never targets;
# -1 = the dataset's one-hot width.
OFFICIAL_NUM_CLASSES = {
  "linear": {
    ("ntu60", "xsub"): 60,
    ("ntu60", "xview"): 120,
    ("ntu120", "xsub"): 120,
    ("ntu120", "xset"): 120,
    ("pku1", "xsub"): 60,
    ("pku2", "xsub"): 60,
  },
  "finetune": {
    ("ntu60", "xsub"): 60,
    ("ntu60", "xview"): 60,
    ("ntu120", "xsub"): 120,
    ("ntu120", "xset"): 120,
    ("pku1", "xsub"): 60,
    ("pku2", "xsub"): 51,
  },
}


def _classification_group(
  *,
  init: str,
  num_classes: int,
  batch_size: int,
  epochs: int,
  optim: ml_collections.ConfigDict,
  schedule: ml_collections.ConfigDict,
  drop_path: float,
  dropout: float,
  label_smoothing: float,
  data_ratio: float,
  **extra,
) -> ml_collections.ConfigDict:
  return training_group(
    batch_size=batch_size,
    epochs=epochs,
    optim=optim,
    schedule=schedule,
    checkpoint_every_steps=0,
    keep_checkpoints=1,
    init=init,  # checkpoint directory of a MAMP or STARS run ('' = random encoder / scratch)
    init_epoch=-1,  # -1: init's newest checkpoint; E > 0: the one saved after E epochs (needs keep_epochs)
    num_classes=num_classes,
    drop_path=drop_path,
    dropout=dropout,
    label_smoothing=label_smoothing,
    data_ratio=data_ratio,  # semi-supervised: labelled fraction of the training split (SPEC §3.5)
    class_balanced=False,  # official: a plain random subset; True: the same fraction of every class
    subset_draw="seeded",  # one draw from `seed`; 'official': numpy seeded with seed + rank on each of
    # `world_size` ranks, each rank its own subset (SPEC §7.13); the union is trained on (about world_size x the
    # labels per epoch, so world_size x the steps: divide epochs by world_size to match the official sample count)
    world_size=2,  # the official scripts' GPUs (only for subset_draw='official')
    eval_batch_size=256,
    eval_every_epochs=1,
    **extra,
  )


def linear_group(num_classes: int = -1, init: str = "") -> ml_collections.ConfigDict:
  """Linear probe (SPEC §3.3): frozen encoder in inference mode, BN(affine=False) + Linear, SGD 0.1 momentum 0.9,
  cosine to 0, 100 epochs, batch 256 (global: 2 GPUs x 128)."""
  return _classification_group(
    init=init,
    num_classes=num_classes,
    batch_size=256,
    epochs=100,
    optim=optim(name="sgd", lr=0.1, momentum=0.9, weight_decay=0.0, decay_groups="all"),
    schedule=schedule("warmup_cosine", warmup_epochs=0.0, min_lr=0.0),
    drop_path=0.0,
    dropout=0.0,
    label_smoothing=0.0,
    data_ratio=1.0,
    mode="full",
  )  # 'full': augmented clips through the frozen encoder every step (official);
  # 'cached': un-augmented features extracted once, head trained on them (fast)


def finetune_group(num_classes: int = -1, data_ratio: float = 1.0, init: str = "") -> ml_collections.ConfigDict:
  """Fine-tuning (SPEC §3.4) with the scripts' lr 3e-4 / 1e-5 (§7.15): layer-wise lr decay 0.8 (scratch
  baseline: 1.0), AdamW, no decay on 1-D tensors and biases, warmup 5, 100 epochs, batch 48 (2 GPUs x 24)."""
  return _classification_group(
    init=init,
    num_classes=num_classes,
    batch_size=48,
    epochs=100,
    optim=optim(lr=3e-4, b1=0.9, b2=0.999, eps=1e-8, weight_decay=0.05, layer_decay=0.8),
    schedule=schedule("warmup_cosine", warmup_epochs=5.0, min_lr=1e-5),
    drop_path=0.3,
    dropout=0.3,
    label_smoothing=0.1,
    data_ratio=data_ratio,
  )


def mamp_checkpoints(dataset: str, split: str, stars_copy: bool = False) -> str:
  """Where the stage-1 recipe's README command line writes its checkpoints (`configs/mamp.py:<dataset>_<split>`,
  with `stars_copy` `..._stars`)."""
  return f"runs/mamp_{dataset}_{split}{'_stars' * stars_copy}/checkpoints"


def linear_probe(dataset: str, split: str) -> ml_collections.ConfigDict:
  """Official linear probe of one dataset/split's stage-1 encoder (PKU-I batch 128; PKU-II batch 32, lr 0.01)."""
  config = base(dataset, split, "linear")
  config.linear = linear_group(OFFICIAL_NUM_CLASSES["linear"][(dataset, split)], mamp_checkpoints(dataset, split))
  config.linear.init_epoch = downstream_epochs(dataset)
  if dataset == "pku2":
    config.linear.batch_size, config.linear.optim.lr = 32, 0.01
  elif dataset == "pku1":
    config.linear.batch_size = 128
  return config


def finetune(dataset: str, split: str, data_ratio: float = 1.0, init: str = "") -> ml_collections.ConfigDict:
  """Official fine-tuning (or semi-supervised with data_ratio < 1) of one dataset/split, from `init` (default:
  the same dataset/split's stage-1 encoder)."""
  config = base(dataset, split, "finetune")
  config.finetune = finetune_group(
    OFFICIAL_NUM_CLASSES["finetune"][(dataset, split)], data_ratio, init or mamp_checkpoints(dataset, split)
  )
  return config


def frozen_evaluation(
  dataset: str, split: str, held_out: tuple[int, ...] = (), stage1: str = ""
) -> ml_collections.ConfigDict:
  """kNN (SPEC §4.10, k = 1, 2, 5, 10), logistic regression and cluster quality of frozen encoders on one
  dataset/split; with held-out classes also few-shot / one-shot on them (SPEC §1.9)."""
  config = base(dataset, split, "evaluate")
  config.data.held_out_classes = tuple(held_out)
  config.evaluate = evaluate_group(stage1=stage1 or mamp_checkpoints(dataset, split))
  return config
