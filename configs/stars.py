"""STARS tuning, the official recipes (SPEC §4.7): `<dataset>_<split>_<recipe>`.

  stars-jax --config=configs/stars.py:ntu60_xsub_second --workdir=runs/stars_ntu60_xsub_second
  stars-jax --config=configs/stars.py:ntu60_xsub_third --workdir=runs/stars_ntu60_xsub_third

Datasets: ntu60_xsub, ntu60_xview, ntu120_xsub, ntu120_xset, pku2_xsub. Recipes: `second` (head only, 20 epochs,
from the MAMP run runs/mamp_<dataset>_<split>; PKU-II: runs/mamp_pku2_xsub_stars, the STARS repository's own
retraining), `third` (blocks 4-7 with lr · decay^(8-k), final norm and head, 10 epochs, from the second stage's
selected checkpoint runs/stars_<dataset>_<split>_second/best: head, BN statistics and queue restored), `merged`
(the third recipe straight from MAMP), `full` (every layer; beyond the paper). Another starting point:
--config.stars.init=DIR (e.g. an imported official checkpoint).
"""

import ml_collections

from stars_jax import config_args, config_lib

common = config_lib.sibling(__file__, "common")

LAYER_DECAY = {"ntu60": 0.45, "ntu120": 0.40, "pku2": 0.35}  # third / merged recipes, SPEC §4.7
RECIPES = ("second", "third", "merged", "full")
NAMES = tuple(
  f"{dataset}_{split}_{recipe}" for dataset, split in common.NPZ_FILES if dataset in LAYER_DECAY for recipe in RECIPES
)
OFFICIAL_PER_GPU_BATCH = 32  # the official 4-GPU runs: 128 clips over 4 GPUs


def stars_group(recipe: str, layer_decay: float, lr: float) -> ml_collections.ConfigDict:
  """The STARS tuning settings shared by every dataset (SPEC §4.2-4.8); the official *effective* behaviour
  is the default, with the modern alternative named beside each option."""
  if recipe not in RECIPES:
    raise ValueError(f"STARS recipe {recipe!r}; choose one of {RECIPES}")
  return common.training_group(
    batch_size=128,  # global: 4 GPUs x 32
    epochs=20 if recipe == "second" else 10,
    # block k: lr * layer_decay ** (depth - k); norm, head: lr. weight_decay: the PyTorch AdamW default, the
    # yaml value is ignored (§7.4); decay_groups 'all' (official: every tuned tensor) or 'no_1d';
    # clip 'per_tensor' (official, §7.6), 'global' or 'none'.
    optim=common.optim(
      name="adamw",
      lr=lr,
      b1=0.9,
      b2=0.95,
      eps=1e-8,
      momentum=0.0,
      weight_decay=0.01,
      decay_groups="all",
      layer_decay=layer_decay,
      clip="per_tensor",
      clip_norm=3.0,
    ),
    # official (§7.5); 'warmup_cosine' with warmup_epochs / min_lr
    schedule=common.schedule("constant", warmup_epochs=0.0, min_lr=0.0),
    checkpoint_every_steps=0,
    keep_checkpoints=3,  # every epoch (the official 500 steps are about one)
    log_every_steps=50,
    recipe=recipe,  # second: head only; third/merged: blocks >= depth/2 + final norm + head; full
    init="",  # checkpoint directory: a MAMP run's checkpoints/ (second, merged, full) or a
    # STARS run's best/ (third: restores head, BN statistics and queue too)
    train_p_interval=(1.0,),  # both views = the full valid sequence resized to data.window (SPEC §4.4)
    head_hidden_dim=4096,
    temperature=0.07,
    topk=0,  # 0: the nearest neighbour; k > 0: a random one of the k nearest
    objective="nnclr",  # 'nnclr' (STARS), or the repository's ablations 'moco' and 'dino' (their groups below)
    loss="effective",  # official: only the first branch carries gradient, scaled by 1/2 (SPEC §7.2);
    # 'symmetric': both branches differentiated (with identical views: full grad)
    bn_updates_per_step=2,  # official: running BN statistics move once per branch (SPEC §4.5); 1 = once
    queue=ml_collections.ConfigDict(
      dict(
        size=32768,
        sharding="replicate",  # or 'data': rows split over the `data` mesh axis
        warm_start=False,  # official: random unit vectors (id -1) until overwritten; True: filled from
        # one pass of projections before the first step
      )
    ),
    moco=moco_group(OFFICIAL_PER_GPU_BATCH),
    dino=dino_group(),
    monitor=ml_collections.ConfigDict(
      dict(
        split="val",  # 'val': carved from the training set; 'test': the official selection (§7.9)
        val_fraction=0.1,
        ks=(10, 20, 40),
        temperature=0.1,
        every_epochs=1,
        batch_size=256,
      )
    ),
  )


def moco_group(per_gpu_batch: int) -> ml_collections.ConfigDict:
  """`stars.moco`: the official MoCo ablation (`net/moco.py`, SPEC §4.11)."""
  return ml_collections.ConfigDict(
    dict(
      momentum=0.999,  # teacher EMA over all parameters, before the key forward
      temperature=0.07,
      shuffle_keys=True,  # official DDP batch shuffle of the teacher's input (a no-op for global BatchNorm)
      pointer_skip=per_gpu_batch,  # official: the pointer moves again by the per-GPU batch after each enqueue
      # (SPEC §7.25), leaving stale keys in the skipped rows; 0: a plain ring buffer
      teacher_head_init="independent",  # official: the teacher head is drawn apart from the student's; 'copy'
    )
  )


def dino_group() -> ml_collections.ConfigDict:
  """`stars.dino`: the official DINO ablation (`net/dino.py`, `loss/dino.py`, `dino_head: False`, SPEC §4.11)."""
  return ml_collections.ConfigDict(
    dict(
      out_dim=128,  # Linear(D -> 128) head
      teacher_momentum=0.996,  # cosine schedule from this to 1
      momentum_steps_per_epoch=40091 // OFFICIAL_PER_GPU_BATCH,  # official (SPEC §7.18): NTU-60 XSub's 40,091
      # clips over the per-GPU batch 32, whatever the data and devices, so the schedule spans 4x the run; 0: the
      # run's steps per epoch
      teacher_temperature=0.04,
      student_temperature=0.1,
      centering="sinkhorn_knopp",  # or 'softmax' (plain sharpening)
      sinkhorn_iterations=3,
      sinkhorn_groups=4,  # official: targets per GPU (4 x 32 clips, both views); 1: over the global batch
      koleo_weight=0.1,
      koleo_chunks_per_view=2,  # official (SPEC §7.18): n_globals is read for n_locals, so each view's rows are
      # split in two for KoLeo; 1: one chunk per view
      teacher_head_init="independent",  # official: the teacher head is drawn apart from the student's; 'copy'
    )
  )


def recipe(dataset: str, split: str, name: str) -> ml_collections.ConfigDict:
  """An official STARS tuning config (SPEC §4.7) as a stand-alone stage ('tune'), `init` empty."""
  config = common.base(dataset, split, "tune")
  config.data.random_rot = False  # stage 2 trains without augmentation (SPEC §1.7)
  config.stars = stars_group(name, LAYER_DECAY[dataset], lr=1e-4 if dataset == "pku2" else 1e-3)
  return config


def get_config(arg: str = ""):
  arg = config_args.parse_arg(arg, "configs/stars.py", row=(None, *NAMES)).row
  name, _, recipe_name = arg.rpartition("_")
  dataset, split = common.parse_dataset_split(name, "configs/stars.py")
  config = recipe(dataset, split, recipe_name)
  # PKU-II starts from the STARS repository's own MAMP retraining (configs/mamp.py:pku2_xsub_stars, SPEC §3.2).
  stage1 = common.mamp_checkpoints(dataset, split, stars_copy=dataset == "pku2")
  config.stars.init = f"runs/stars_{dataset}_{split}_second/best" if recipe_name == "third" else stage1
  return config


def ablation(arg: str, objective: str, settings: dict[str, dict], where: str) -> ml_collections.ConfigDict:
  """`configs/<objective>.py:ntu60_<split>_<recipe>`, an official MoCo or DINO tuning recipe (NTU-60 only in the
  repository; `settings`: epochs and layer decay per recipe) with its official starting point: the second stage
  from the NTU-60 XSub MAMP run for both splits (as the official configs, SPEC §7.17), the third from the same
  objective's second stage (its selected checkpoint)."""
  name, _, recipe_name = arg.rpartition("_")
  dataset, split = common.parse_dataset_split(name, where)
  if dataset != "ntu60" or recipe_name not in settings:
    raise ValueError(f"{where}: no official {objective} tuning recipe {arg!r}; choose ntu60_<xsub|xview>_{settings}")
  config = recipe(dataset, split, recipe_name)
  config.stars.objective = objective
  config.stars.epochs = settings[recipe_name]["epochs"]
  config.stars.optim.layer_decay = settings[recipe_name]["layer_decay"]
  second = f"runs/{objective}_{dataset}_{split}_second/best"
  config.stars.init = second if recipe_name == "third" else common.mamp_checkpoints(dataset, "xsub")
  return config
