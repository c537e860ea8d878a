"""Stage-2 tuning recipes (SPEC §4.7, §4.11): STARS' NNCLR settings and its repository's MoCo and DINO ablations.

`stars_group` is the `stars` config group of every tuning run; `stars_tune` an official NNCLR recipe and
`ablation_tune` an official `mocotuning_*` / `dinotuning_*` one, as stand-alone 'tune' configs.
"""

import ml_collections

from stars_jax import recipes

STARS_LAYER_DECAY = {"ntu60": 0.45, "ntu120": 0.40, "pku2": 0.35}  # third / merged recipes, SPEC §4.7
STARS_RECIPES = ("second", "third", "merged", "full")


def stars_group(recipe: str, layer_decay: float, lr: float = 1e-3) -> ml_collections.ConfigDict:
  """The STARS tuning settings shared by every dataset (SPEC §4.2-4.8); the official *effective* behaviour
  is the default, with the modern alternative named beside each option."""
  if recipe not in STARS_RECIPES:
    raise ValueError(f"STARS recipe {recipe!r}; choose one of {STARS_RECIPES}")
  return recipes.training_group(
    batch_size=128,  # global: 4 GPUs x 32
    epochs=20 if recipe == "second" else 10,
    # block k: lr * layer_decay ** (depth - k); norm, head: lr. weight_decay: the PyTorch AdamW default, the
    # yaml value is ignored (§7.4); decay_groups 'all' (official: every tuned tensor) or 'no_1d';
    # clip 'per_tensor' (official, §7.6), 'global' or 'none'.
    optim=recipes.optim(
      lr=lr,
      b1=0.9,
      b2=0.95,
      eps=1e-8,
      weight_decay=0.01,
      decay_groups="all",
      layer_decay=layer_decay,
      clip="per_tensor",
      clip_norm=3.0,
    ),
    schedule=recipes.schedule("constant"),  # official (§7.5); 'warmup_cosine' with warmup_epochs / min_lr
    checkpoint_every_steps=0,
    keep_checkpoints=3,  # every epoch (the official 500 steps are about one)
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
    moco=moco_group(),
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


def stars_tune(dataset: str, split: str, recipe: str) -> ml_collections.ConfigDict:
  """An official STARS tuning config (SPEC §4.7) as a stand-alone stage ('tune')."""
  config = recipes.base(dataset, split, "tune")
  config.data.random_rot = False  # stage 2 trains without augmentation (SPEC §1.7)
  config.stars = stars_group(recipe, STARS_LAYER_DECAY[dataset], lr=1e-4 if dataset == "pku2" else 1e-3)
  return config


def moco_group(per_gpu_batch: int = 32) -> ml_collections.ConfigDict:
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
      momentum_steps_per_epoch=40091 // 32,  # official (SPEC §7.18): NTU-60 XSub's 40,091 clips over the per-GPU
      # batch 32, whatever the data and devices, so the schedule spans 4x the run; 0: the run's steps per epoch
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


# Official ablation recipes (STARS:config/ntu60/pretext/{moco,dino}tuning_*): epochs, layer decay (SPEC §4.11).
ABLATIONS = {
  ("moco", "second"): dict(epochs=20, layer_decay=0.45),
  ("moco", "third"): dict(epochs=10, layer_decay=0.45),
  ("dino", "second"): dict(epochs=20, layer_decay=0.65),
  ("dino", "third"): dict(epochs=20, layer_decay=0.45),
}


def ablation_tune(dataset: str, split: str, recipe: str, objective: str) -> ml_collections.ConfigDict:
  """An official MoCo or DINO tuning recipe (NTU-60 only in the repository) as a stand-alone 'tune' config."""
  if (objective, recipe) not in ABLATIONS:
    raise ValueError(f"no official {objective} tuning recipe {recipe!r}; choose one of {sorted(ABLATIONS)}")
  config = stars_tune(dataset, split, recipe)
  s = config.stars
  s.objective = objective
  s.epochs = ABLATIONS[(objective, recipe)]["epochs"]
  s.optim.layer_decay = ABLATIONS[(objective, recipe)]["layer_decay"]
  return config


def ablation_config(arg: str, objective: str, where: str) -> ml_collections.ConfigDict:
  """`configs/<objective>.py:ntu60_<split>_<recipe>`: the official recipe with its official starting point: the
  second stage from the NTU-60 XSub MAMP run for both splits (as the official configs, SPEC §7.17), the third
  from the same objective's second stage (its selected checkpoint)."""
  name, _, recipe = arg.rpartition("_")
  dataset, split = recipes.parse_dataset_split(name, where)
  if dataset != "ntu60":
    raise ValueError(f"{where}: the official {objective} tuning recipes are NTU-60 only (ntu60_xsub, ntu60_xview)")
  config = ablation_tune(dataset, split, recipe, objective)
  second = f"runs/{objective}_{dataset}_{split}_second/best"
  config.stars.init = second if recipe == "third" else recipes.mamp_checkpoints(dataset, "xsub")
  return config
