"""A row of the paper's table with one command (a pipeline): MAMP stage 1, STARS tuning, then the
downstream protocols, each step under WORKDIR/<step>/ reading the previous step's output, and WORKDIR/report.md
with our numbers next to the published ones.

  stars-jax --config=configs/paper.py:ntu60_xsub --workdir=runs/paper_ntu60_xsub --config.data.root=DIR
  stars-jax --config=configs/paper.py:synthetic --workdir=runs/paper_synthetic      # the CPU twin (minutes)
  stars-jax --config=configs/paper.py:synthetic,tiny --workdir=runs/paper_tiny       # the same in seconds

Rows: ntu60_xsub, ntu60_xview, ntu120_xsub, ntu120_xset, pku2_xsub (the STARS README's rows, and PKU-II);
`<row>_merged`: one STARS step with the 'merged' recipe instead of 'second' then 'third'. Steps, in
`pipeline.order`: prepare (every input file checked), pretrain (configs/mamp.py: 400 epochs; PKU-II the STARS
repository's retraining, configs/mamp.py:pku2_xsub_stars), tune_second and tune_third (configs/stars.py; the third
from the second's monitor-selected state), linear (configs/linear.py, from the tuned encoder), knn (kNN k = 1, 2,
5, 10, the STARS knn_eval protocol, SPEC §4.10, of the tuned and the stage-1 encoder), fewshot (ntu60_xsub only:
kNN on NTU-120 actions 61-120, which the NTU-60 encoders never saw, SPEC §1.9; reads NTU120_XSub.npz from the same
root), finetune (off by default: --config.steps.finetune.enabled=True). data.root holds the npz files (data.path,
and a step's data.path override, are relative to it; an absolute path is used as is). Any step setting can be
overridden, e.g. --config.steps.pretrain.pretrain.epochs=100, --config.steps.tune_second.input=DIR (start from an
imported checkpoint), --config.pipeline.dry_run=True (print and save the plan, then stop).
"""

import pathlib

import ml_collections

from stars_jax import config_args, config_lib
from stars_jax.evaluate.knn import KNN_KS

common = config_lib.sibling(__file__, "common")

HERE = pathlib.Path(__file__).resolve().parent
ROWS = ("ntu60_xsub", "ntu60_xview", "ntu120_xsub", "ntu120_xset", "pku2_xsub")


def _load(spec: str) -> ml_collections.ConfigDict:
  """A config of the recipe files beside this one (configs/<spec>)."""
  return config_lib.load_config(str(HERE / spec))


def _tune_steps(steps: dict, recipes_: tuple[str, ...], tune_for) -> str:
  """Adds one tune step per STARS recipe, each from the previous step's output; returns the last one's name."""
  previous = "pretrain"
  for recipe in recipes_:
    tune = tune_for(recipe)
    tune.stars.init = ""  # the pipeline sets it from `input`
    steps[f"tune_{recipe}"] = common.step(
      "tune", input=previous, stars=tune.stars, data=dict(random_rot=tune.data.random_rot)
    )
    previous = f"tune_{recipe}"
  return previous


def _downstream(steps: dict, tuned: str, linear, finetune, batch_size: int, fewshot: dict | None) -> None:
  linear.init, linear.init_epoch = "", -1  # from the tuned encoder (its one selected state)
  finetune.init, finetune.init_epoch = "", -1
  steps["linear"] = common.step("linear", input=tuned, linear=linear)
  steps["knn"] = common.step("knn", input=tuned, compare=("pretrain",), ks=KNN_KS, batch_size=batch_size)
  if fewshot is not None:
    steps["fewshot"] = common.step(
      "fewshot", input=tuned, compare=("pretrain",), ks=KNN_KS, batch_size=batch_size, **fewshot
    )
  steps["finetune"] = common.step("finetune", enabled=False, input=tuned, finetune=finetune)


def _paper(dataset: str, split: str, top, steps: dict, warmup_steps: int) -> ml_collections.ConfigDict:
  config = common.pipeline(top, "paper", warmup_steps=warmup_steps, steps=steps)
  config.paper = ml_collections.ConfigDict(dict(dataset=dataset, split=split))  # the published row compared with
  return config


def paper_row(dataset: str, split: str, merged: bool = False) -> ml_collections.ConfigDict:
  """The pipeline of one published row from the official recipes (SPEC §3-§5)."""
  mamp = _load("mamp.py:pku2_xsub_stars" if dataset == "pku2" else f"mamp.py:{dataset}_{split}")
  mamp.data.root = "data"  # directory of the npz files
  mamp.data.path = common.NPZ_FILES[(dataset, split)]
  steps = {"prepare": common.step("prepare"), "pretrain": common.step("pretrain", pretrain=mamp.pretrain)}
  tuned = _tune_steps(
    steps, ("merged",) if merged else ("second", "third"), lambda r: _load(f"stars.py:{dataset}_{split}_{r}")
  )
  fewshot = None
  if (dataset, split) == ("ntu60", "xsub"):
    fewshot = dict(classes=common.NTU120_STARS_NOVEL, data=dict(path=common.NPZ_FILES[("ntu120", "xsub")]))
  linear, finetune = _load(f"linear.py:{dataset}_{split}").linear, _load(f"finetune.py:{dataset}_{split}").finetune
  _downstream(steps, tuned, linear, finetune, 256, fewshot)
  return _paper(dataset, split, mamp, steps, warmup_steps=5)


def synthetic(merged: bool = False, tiny: bool = False) -> ml_collections.ConfigDict:
  """The same pipeline on the embedded synthetic dataset at the main job's sizes (configs/synthetic.py: 4-block
  64-d encoder, 32-frame clips, 4 actions held out for few-shot), with shorter stages (stage 1: 40 epochs, each
  STARS stage 4) so it runs in about 15 minutes on 2 CPU cores. `tiny`: at the sizes and stage lengths of
  configs/synthetic.py:tiny (seconds; the pipeline test)."""
  main = _load("synthetic.py:tiny" if tiny else "synthetic.py")
  main.data.root = ""  # data.path '' = the synthetic dataset, generated under data.synthetic.dir
  stage1, tuned_main, probe = main.steps.stage1.pretrain, main.steps.stars.stars, main.steps.probe
  if not tiny:
    stage1.epochs = 40
  steps = {"prepare": common.step("prepare"), "pretrain": common.step("pretrain", pretrain=stage1)}

  def tune_for(recipe: str) -> ml_collections.ConfigDict:
    tune = _load(f"stars.py:ntu60_xsub_{recipe}")
    s = tuned_main
    tune.stars.update(dict(epochs=s.epochs if tiny else 4, batch_size=s.batch_size, head_hidden_dim=s.head_hidden_dim))
    tune.stars.log_every_steps = s.log_every_steps
    tune.stars.queue.size = s.queue.size
    tune.stars.monitor.update(dict(batch_size=s.monitor.batch_size, val_fraction=s.monitor.val_fraction))
    tune.stars.monitor.ks = s.monitor.ks
    return tune

  tuned = _tune_steps(steps, ("merged",) if merged else ("second", "third"), tune_for)
  finetune = _load("synthetic.py:finetune,tiny" if tiny else "synthetic.py:finetune").finetune
  batch_size = probe.batch_size if tiny else 128
  linear = ml_collections.ConfigDict(main.steps.linear_stars.linear.to_dict())
  _downstream(steps, tuned, linear, finetune, batch_size, dict(classes=()))  # classes: data.held_out_classes
  return _paper("synthetic", "xsub", main, steps, warmup_steps=0 if tiny else 5)


NAMES = tuple(f"{row}{merged}" for row in (*ROWS, "synthetic") for merged in ("", "_merged"))


def get_config(arg: str = ""):
  args = config_args.parse_arg(arg, "configs/paper.py", row=(None, *NAMES), tiny=False)
  name, merged = (args.row[: -len("_merged")], True) if args.row.endswith("_merged") else (args.row, False)
  if name == "synthetic":
    return synthetic(merged, args.tiny)
  if args.tiny:
    raise ValueError(f"configs/paper.py:{arg}: `tiny` is a variant of the synthetic row only")
  return paper_row(*common.parse_dataset_split(name, "configs/paper.py"), merged=merged)
