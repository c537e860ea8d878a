"""The pieces every config file shares (SPEC sections beside them): the official npz files, the feeder, the MAMP
model, the top level, and the shape of a training group. Not a config itself: the files beside it load it with
`common = config_lib.sibling(__file__, "common")`.

The group builders take every setting as an argument (none has a default), so each recipe's numbers are written
out in the recipe's own file.
"""

import ml_collections

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

# Few-shot protocols (SPEC §1.9): NTU-120 actions 61-120, unseen by an NTU-60 encoder (0-based ids); the
# standard NTU-120 one-shot protocol's 20 novel classes A1, A7, ..., A115.
NTU120_STARS_NOVEL = tuple(range(60, 120))
NTU120_ONE_SHOT_NOVEL = tuple(range(0, 120, 6))


def parse_dataset_split(arg: str, what: str) -> tuple[str, str]:
  """'ntu60_xsub' -> ('ntu60', 'xsub'), checked against NPZ_FILES; `what` names the config in the error."""
  dataset, _, split = arg.partition("_")
  if (dataset, split) not in NPZ_FILES:
    choices = ", ".join(f"{d}_{s}" for d, s in NPZ_FILES)
    raise ValueError(f"{what}: unknown dataset/split {arg!r}; choose one of {choices}")
  return dataset, split


def data(path: str) -> ml_collections.ConfigDict:
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


def model(decoder_depth: int) -> ml_collections.ConfigDict:
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
      compute_dtype="auto",  # stars_jax.device: bfloat16 on TPU and NVIDIA >= 8.0, else float32; or a dtype name
      attention_impl="auto",  # stars_jax.device: cudnn / xla on GPU by dtype, head dim; xla on TPU; chunked on CPU
      remat=False,  # True: recompute block activations in the backward pass (larger batches)
    )
  )


def base(dataset: str, split: str, job: str) -> ml_collections.ConfigDict:
  """What every config has: job, seed, data, model (decoder depth per dataset, SPEC §3.2), sharding."""
  config = ml_collections.ConfigDict()
  config.job = job
  config.seed = 0
  config.allow_config_change = False  # True: resume although settings that change the results differ
  config.data = data(f"data/{NPZ_FILES[(dataset, split)]}")
  config.model = model(decoder_depth=5 if dataset in ("ntu120", "pku1", "pku2") else 3)
  config.sharding = ml_collections.ConfigDict(
    dict(
      fsdp=False,  # True: shard parameters and optimizer state over the `data` axis
      fsdp_min_size=2**16,  # tensors smaller than this stay replicated under FSDP
    )
  )
  return config


def optim(
  *,
  name: str,
  lr: float,
  b1: float,
  b2: float,
  eps: float,
  momentum: float,
  weight_decay: float,
  decay_groups: str,
  layer_decay: float,
  clip: str,
  clip_norm: float,
) -> ml_collections.ConfigDict:
  """An optimizer group (train/optim.py): name 'adamw' | 'sgd' (momentum; b1, b2, eps unused), decay_groups
  'no_1d' (no decay on 1-D tensors and biases, timm) | 'all', per-layer lr = lr · layer_decay ** (depth + 1 -
  layer), clip 'none' | 'per_tensor' | 'global' at clip_norm."""
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


def schedule(name: str, warmup_epochs: float, min_lr: float) -> ml_collections.ConfigDict:
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
  log_every_steps: int,
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


def classification_group(
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
  """The shape of the linear-probe and fine-tuning groups (train/classify.py)."""
  return training_group(
    batch_size=batch_size,
    epochs=epochs,
    optim=optim,
    schedule=schedule,
    checkpoint_every_steps=0,
    keep_checkpoints=1,
    log_every_steps=50,
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


def evaluate_group(stage1: str, stars: str, enabled: bool) -> ml_collections.ConfigDict:
  """Frozen-feature protocols (kNN, logistic, clusters, few-shot on `data.held_out_classes`) of the encoders
  a job trained or, in the `evaluate` job, of the checkpoint directories `stage1` / `stars`."""
  return ml_collections.ConfigDict(
    dict(
      enabled=enabled,  # pretrain: run them after training, against a random encoder
      batch_size=256,  # feature extraction
      plots=True,  # t-SNE and kNN-1 confusion PNGs in WORKDIR/plots
      stage1=stage1,  # a MAMP run's checkpoints/ (or an imported official MAMP checkpoint)
      stars=stars,  # a STARS run's best/ or checkpoints/ (or an imported official STARS checkpoint)
    )
  )


def step(kind: str, enabled: bool = True, data: dict | None = None, **settings) -> ml_collections.ConfigDict:
  """One pipeline step (stars_jax/pipeline/steps.py): its kind, whether it runs, overrides of the pipeline's data
  settings, and its own settings: its training group (`pretrain=...`) or input / compare / batch_size / ..."""
  return ml_collections.ConfigDict(
    dict(kind=kind, enabled=enabled, data=ml_collections.ConfigDict(data or {}), **settings)
  )


def pipeline(top: ml_collections.ConfigDict, report: str, warmup_steps: int, steps: dict) -> ml_collections.ConfigDict:
  """A multi-stage job (job 'pipeline'): the seed, data, model and sharding of `top` (a config of the same
  recipe), then `steps` (name -> `step(...)`) in the order given, each under WORKDIR/<name>/; report.md of kind
  `report` (stars_jax/evaluate/report.py)."""
  config = ml_collections.ConfigDict()
  config.job = "pipeline"
  config.seed = top.seed
  config.allow_config_change = False  # True: reuse completed steps / resume although their settings differ
  config.data, config.model, config.sharding = top.data, top.model, top.sharding
  config.pipeline = ml_collections.ConfigDict(
    dict(
      order=tuple(steps),
      report=report,
      warmup_steps=warmup_steps,  # steps timed per step for the plan's estimate (after one compiling step); 0: none
      dry_run=False,  # True: check the inputs, print and save the plan (WORKDIR/plan.json), then stop
    )
  )
  config.steps = ml_collections.ConfigDict(steps)
  return config


def main_steps(pretrain, stars, linear, batch_size: int, plots: bool) -> dict:
  """The main job's steps: MAMP (`stage1`), STARS from its last checkpoint (`stars`), the frozen-feature
  protocols (`probe`) of both (the tuned encoder's monitor-selected and last states) and of a random encoder, then,
  with a `linear` group, the linear probe of stage1, stars and the random encoder (`linear_<encoder>`)."""
  steps = {
    "stage1": step("pretrain", pretrain=pretrain),
    "stars": step("tune", input="stage1", stars=stars),
    "probe": step(
      "probe", input="stage1", compare=("stars", "stars:last", "random"), batch_size=batch_size, plots=plots
    ),
  }
  if linear is not None:
    for encoder, source in (("stage1", "stage1"), ("stars", "stars"), ("random_init", "random")):
      steps[f"linear_{encoder}"] = step("linear", input=source, linear=ml_collections.ConfigDict(linear.to_dict()))
  return steps


def mamp_checkpoints(dataset: str, split: str, stars_copy: bool = False) -> str:
  """Where the stage-1 recipe's README command line writes its checkpoints (`configs/mamp.py:<dataset>_<split>`,
  with `stars_copy` `..._stars`)."""
  return f"runs/mamp_{dataset}_{split}{'_stars' * stars_copy}/checkpoints"
