"""A row of the paper's table with one command (stage `pipeline`): MAMP stage 1, STARS tuning, then the
downstream protocols, each stage under WORKDIR/<stage>/ reading the previous stage's output, and WORKDIR/report.md
with our numbers next to the published ones.

  stars-jax --config=configs/paper.py:ntu60_xsub --workdir=runs/paper_ntu60_xsub --config.data.root=DIR
  stars-jax --config=configs/paper.py:synthetic --workdir=runs/paper_synthetic      # the CPU twin (minutes)
  stars-jax --config=configs/paper.py:synthetic,tiny --workdir=runs/paper_tiny       # the same in seconds

Rows: ntu60_xsub, ntu60_xview, ntu120_xsub, ntu120_xset, pku2_xsub (the STARS README's rows, and PKU-II);
`<row>_merged`: one STARS stage with the 'merged' recipe instead of 'second' then 'third'. Stages, in
`pipeline.order`: prepare (every input file checked), pretrain (configs/mamp.py: 400 epochs; PKU-II the STARS
repository's retraining, configs/mamp.py:pku2_xsub_stars), tune_second and tune_third (configs/stars.py; the third
from the second's monitor-selected state), linear (configs/linear.py, from the tuned encoder), knn (kNN k = 1, 2,
5, 10, the STARS knn_eval protocol, SPEC §4.10, of the tuned and the stage-1 encoder), fewshot (ntu60_xsub only:
kNN on NTU-120 actions 61-120, which the NTU-60 encoders never saw, SPEC §1.9; reads NTU120_XSub.npz from the same
root), finetune (off by default: --config.stages.finetune.enabled=True). data.root holds the npz files (data.path,
and a stage's data.path override, are relative to it; an absolute path is used as is). Any stage setting can be
overridden, e.g. --config.stages.pretrain.pretrain.epochs=100, --config.stages.tune_second.input=DIR (start from an
imported checkpoint), --config.pipeline.dry_run=True (print and save the plan, then stop).
"""

import pathlib

import ml_collections

from stars_jax import config_args, config_lib

common = config_lib.sibling(__file__, "common")

HERE = pathlib.Path(__file__).resolve().parent
ROWS = ("ntu60_xsub", "ntu60_xview", "ntu120_xsub", "ntu120_xset", "pku2_xsub")
KNN_KS = (1, 2, 5, 10)


def _load(spec: str) -> ml_collections.ConfigDict:
  """A config of the recipe files beside this one (configs/<spec>)."""
  return config_lib.load_config(str(HERE / spec))


def _stage(kind: str, enabled: bool = True, data: dict | None = None, **settings) -> ml_collections.ConfigDict:
  return ml_collections.ConfigDict(
    dict(kind=kind, enabled=enabled, data=ml_collections.ConfigDict(data or {}), **settings)
  )


def _pipeline(dataset: str, split: str, mamp: ml_collections.ConfigDict) -> ml_collections.ConfigDict:
  """The top level of every pipeline config: data, model and sharding of the stage-1 recipe."""
  config = ml_collections.ConfigDict()
  config.stage = "pipeline"
  config.seed = 0
  config.allow_config_change = False  # True: reuse completed stages / resume although their settings differ
  config.data = mamp.data
  config.model = mamp.model
  config.sharding = mamp.sharding
  config.paper = ml_collections.ConfigDict(dict(dataset=dataset, split=split))  # the published row compared with
  config.pipeline = ml_collections.ConfigDict(
    dict(
      order=(),
      warmup_steps=5,  # steps timed per stage for the plan's estimate (after one compiling step); 0: no estimate
      dry_run=False,  # True: check the inputs, print and save the plan (WORKDIR/plan.json), then stop
    )
  )
  config.stages = ml_collections.ConfigDict()
  return config


def _tune_stages(config, recipes_: tuple[str, ...], tune_for) -> str:
  """Adds one tune stage per STARS recipe, each from the previous stage's output; returns the last one's name."""
  config.pipeline.order = ("prepare", "pretrain", *(f"tune_{r}" for r in recipes_))
  previous = "pretrain"
  for recipe in recipes_:
    tune = tune_for(recipe)
    tune.stars.init = ""  # the pipeline sets it from `input`
    config.stages[f"tune_{recipe}"] = _stage(
      "tune", input=previous, stars=tune.stars, data=dict(random_rot=tune.data.random_rot)
    )
    previous = f"tune_{recipe}"
  return previous


def _downstream(config, tuned: str, linear, finetune, batch_size: int, fewshot: dict | None) -> None:
  linear.init, linear.init_epoch = "", -1  # from the tuned encoder (its one selected state)
  finetune.init, finetune.init_epoch = "", -1
  config.stages.linear = _stage("linear", input=tuned, linear=linear)
  config.stages.knn = _stage("knn", input=tuned, compare=("pretrain",), ks=KNN_KS, batch_size=batch_size)
  if fewshot is not None:
    config.stages.fewshot = _stage(
      "fewshot", input=tuned, compare=("pretrain",), ks=KNN_KS, batch_size=batch_size, **fewshot
    )
  config.stages.finetune = _stage("finetune", enabled=False, input=tuned, finetune=finetune)
  config.pipeline.order += ("linear", "knn", *(("fewshot",) if fewshot is not None else ()), "finetune")


def paper_row(dataset: str, split: str, merged: bool = False) -> ml_collections.ConfigDict:
  """The pipeline of one published row from the official recipes (SPEC §3-§5)."""
  mamp = _load("mamp.py:pku2_xsub_stars" if dataset == "pku2" else f"mamp.py:{dataset}_{split}")
  config = _pipeline(dataset, split, mamp)
  config.data.root = "data"  # directory of the npz files
  config.data.path = common.NPZ_FILES[(dataset, split)]
  config.stages.prepare = _stage("prepare")
  config.stages.pretrain = _stage("pretrain", pretrain=mamp.pretrain)
  tuned = _tune_stages(
    config, ("merged",) if merged else ("second", "third"), lambda r: _load(f"stars.py:{dataset}_{split}_{r}")
  )
  fewshot = None
  if (dataset, split) == ("ntu60", "xsub"):
    fewshot = dict(classes=common.NTU120_STARS_NOVEL, data=dict(path=common.NPZ_FILES[("ntu120", "xsub")]))
  linear, finetune = _load(f"linear.py:{dataset}_{split}").linear, _load(f"finetune.py:{dataset}_{split}").finetune
  _downstream(config, tuned, linear, finetune, 256, fewshot)
  return config


def synthetic(merged: bool = False, tiny: bool = False) -> ml_collections.ConfigDict:
  """The same pipeline on the embedded synthetic dataset at the main job's sizes (configs/synthetic.py: 4-block
  64-d encoder, 32-frame clips, 4 actions held out for few-shot), with shorter stages (stage 1: 40 epochs, each
  STARS stage 4) so it runs in about 15 minutes on 2 CPU cores. `tiny`: at the sizes and stage lengths of
  configs/synthetic.py:tiny (seconds; the pipeline test)."""
  main = _load("synthetic.py:tiny" if tiny else "synthetic.py")
  config = _pipeline("synthetic", "xsub", main)
  config.data.root = ""  # data.path '' = the synthetic dataset, generated under data.synthetic.dir
  config.stages.prepare = _stage("prepare")
  if not tiny:
    main.pretrain.epochs = 40
  config.stages.pretrain = _stage("pretrain", pretrain=main.pretrain)

  def tune_for(recipe: str) -> ml_collections.ConfigDict:
    tune = _load(f"stars.py:ntu60_xsub_{recipe}")
    s = main.stars
    tune.stars.update(dict(epochs=s.epochs if tiny else 4, batch_size=s.batch_size, head_hidden_dim=s.head_hidden_dim))
    tune.stars.log_every_steps = s.log_every_steps
    tune.stars.queue.size = s.queue.size
    tune.stars.monitor.update(dict(batch_size=s.monitor.batch_size, val_fraction=s.monitor.val_fraction))
    tune.stars.monitor.ks = s.monitor.ks
    return tune

  tuned = _tune_stages(config, ("merged",) if merged else ("second", "third"), tune_for)
  finetune = _load("synthetic.py:finetune,tiny" if tiny else "synthetic.py:finetune").finetune
  batch_size = main.evaluate.batch_size if tiny else 128
  _downstream(config, tuned, main.linear, finetune, batch_size, dict(classes=()))  # classes: data.held_out_classes
  if tiny:
    config.pipeline.warmup_steps = 0
  return config


NAMES = tuple(f"{row}{merged}" for row in (*ROWS, "synthetic") for merged in ("", "_merged"))


def get_config(arg: str = ""):
  args = config_args.parse_arg(arg, "configs/paper.py", row=(None, *NAMES), tiny=False)
  name, merged = (args.row[: -len("_merged")], True) if args.row.endswith("_merged") else (args.row, False)
  if name == "synthetic":
    return synthetic(merged, args.tiny)
  if args.tiny:
    raise ValueError(f"configs/paper.py:{arg}: `tiny` is a variant of the synthetic row only")
  return paper_row(*common.parse_dataset_split(name, "configs/paper.py"), merged=merged)
