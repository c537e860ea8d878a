"""Every config loads with every argument it documents, and the recipes carry SPEC's numbers (§3.2-3.6, §4.7)."""

import ast
import pathlib

import pytest
import recipe_files
from recipe_files import common, stars

from stars_jax import config_lib, jobs
from stars_jax.models import factory
from stars_jax.pipeline import steps as pipeline_steps

CONFIGS = pathlib.Path(__file__).parents[1] / "configs"
SPLITS = [f"{d}_{s}" for d, s in common.NPZ_FILES]
STARS_SPLITS = [n for n in SPLITS if n.split("_")[0] in stars.LAYER_DECAY]
SPECS = (
  [f"synthetic.py{v and ':' + v}" for v in ("", "evaluate", "finetune")]
  + [f"mamp.py:{n}" for n in SPLITS]
  + ["mamp.py:ntu60_xsub_wide", "mamp.py:pku2_xsub_stars"]
  + [f"stars.py:{n}_{r}" for n in STARS_SPLITS for r in stars.RECIPES]
  + [f"{o}.py:ntu60_{s}_{r}" for o in ("moco", "dino") for s in ("xsub", "xview") for r in ("second", "third")]
  + ["ablation_synthetic.py"]
  + [f"nwucla.py{v and ':' + v}" for v in ("", "gpu", "brief", "tiny")]
  + [f"linear.py:{n}" for n in SPLITS]
  + [f"finetune.py:{n}" for n in SPLITS]
  + [f"finetune.py:{n}_{s}" for n in ("ntu60_xsub", "ntu60_xview") for s in ("semi1", "semi10")]
  + [f"finetune.py:pku2_xsub_from_{s}" for s in ("ntu60", "ntu120", "pku1")]
  + [f"evaluate.py:{n}" for n in SPLITS]
  + ["evaluate.py:fewshot_ntu120"]
)
GROUP_KEYS = {
  "batch_size",
  "epochs",
  "max_steps",
  "optim",
  "schedule",
  "checkpoint_every_steps",
  "keep_checkpoints",
  "keep_epochs",
  "log_every_steps",
}


def _load(spec: str):
  return config_lib.load_config(f"{CONFIGS}/{spec}")


def test_every_config_file_is_listed():
  # paper.py (stage pipeline) has its own shape: tests/test_paper_pipeline.py loads every row; common.py holds the
  # shared pieces and is no config
  assert {p.name for p in CONFIGS.glob("*.py")} == {s.split(":")[0] for s in SPECS} | {"paper.py", "common.py"}
  assert not hasattr(common, "get_config")


@pytest.mark.parametrize("path", sorted(CONFIGS.glob("*.py")), ids=lambda p: p.name)
def test_no_recipe_number_hides_in_a_keyword_default(path):
  # A recipe's numbers are written out where the recipe is built; a numeric default would set one unseen.
  for node in ast.walk(ast.parse(path.read_text())):
    if isinstance(node, (ast.FunctionDef, ast.Lambda)):
      defaults = node.args.defaults + [d for d in node.args.kw_defaults if d is not None]
      numeric = [d for d in defaults if isinstance(d, ast.Constant) and type(d.value) in (int, float)]
      assert not numeric, f"{path.name}:{node.lineno}: numeric keyword default {ast.unparse(numeric[0])}"


def _groups(config) -> dict:
  """{key: training group} of a config: its own groups, or each pipeline step's."""
  groups = ("pretrain", "stars", "linear", "finetune")
  if config.job != "pipeline":
    return {g: config[g] for g in groups if g in config}
  return {f"steps.{n}.{g}": s[g] for n, s in config.steps.items() for g in groups if g in s}


@pytest.mark.parametrize("spec", SPECS)
def test_config_loads_with_one_shape(spec):
  config = _load(spec)
  assert config.job in jobs.JOBS
  top = {"job", "seed", "allow_config_change", "data", "model", "sharding"}
  assert top <= set(config)
  for key, group in _groups(config).items():
    assert GROUP_KEYS <= set(group), key
    assert set(group.optim) == set(recipe_files.optim(lr=0.0))
    assert set(group.schedule) == set(common.schedule("warmup_cosine", warmup_epochs=0.0, min_lr=0.0))
  if config.job == "pipeline":
    assert set(config) - top <= {"pipeline", "steps", "paper"}
    assert tuple(config.pipeline.order) and set(config.pipeline.order) <= set(config.steps)
    assert all(s.kind in pipeline_steps.KINDS for s in config.steps.values())
  else:
    assert set(config) - top <= {"pretrain", "stars", "linear", "finetune", "evaluate"}


@pytest.mark.parametrize(
  "spec",
  [
    "mamp.py",
    "mamp.py:ntu60",
    "stars.py:pku1_xsub_second",
    "stars.py:ntu60_xsub_fourth",
    "moco.py:ntu60_xsub_merged",
    "linear.py:ntu60_xset",
    "finetune.py:pku2_xsub_from_kinetics",
    "synthetic.py:fast",
    "nwucla.py:xsub",
  ],
)
def test_bad_config_argument_names_the_file_and_choices(spec):
  with pytest.raises(ValueError, match=r"configs/\w+\.py|choose one of"):
    _load(spec)


@pytest.mark.parametrize("name", SPLITS)
def test_mamp_recipes_follow_the_official_table(name):
  """SPEC §3.2: AdamW (0.9, 0.95), wd 0.05 without 1-D / biases, lr 1e-3 -> 5e-4 over 400 epochs, warmup 20,
  batch 128, mask 90 %; decoder depth 3 (NTU-60) or 5, tau 0.75 (NTU-120) or 0.80."""
  config = _load(f"mamp.py:{name}")
  g = config.pretrain
  assert (g.batch_size, g.epochs, g.schedule.warmup_epochs, g.optim.lr, g.schedule.min_lr) == (128, 400, 20, 1e-3, 5e-4)
  assert (g.optim.name, g.optim.b1, g.optim.b2, g.optim.weight_decay, g.optim.decay_groups) == (
    "adamw",
    0.9,
    0.95,
    0.05,
    "no_1d",
  )
  assert (g.optim.layer_decay, g.optim.clip, g.schedule.name) == (1.0, "none", "warmup_cosine")
  assert g.masking.mask_ratio == 0.9 and g.masking.tau == (0.75 if name.startswith("ntu120") else 0.80)
  assert config.model.decoder_depth == (3 if name.startswith("ntu60") else 5)
  assert config.data.path == f"data/{common.NPZ_FILES[tuple(name.split('_'))]}"
  # PKU: checkpoint-300.pth (after 301 epochs) is what the official downstream scripts load; keep it.
  assert tuple(g.keep_epochs) == ((301,) if name.startswith("pku") else ())


def test_pku2_stars_copy_decays_every_parameter_and_feeds_the_pku2_stars_configs():
  """SPEC §3.2: the STARS repository's MAMP copy, which retrained the PKU-II encoder its tuning starts from, puts
  weight decay 0.05 on every parameter; otherwise the PKU-II recipe."""
  copy, official = _load("mamp.py:pku2_xsub_stars"), _load("mamp.py:pku2_xsub")
  assert copy.pretrain.optim.decay_groups == "all"
  copy.pretrain.optim.decay_groups = "no_1d"
  assert copy.to_dict() == official.to_dict()
  for recipe in ("second", "merged", "full"):
    assert _load(f"stars.py:pku2_xsub_{recipe}").stars.init == "runs/mamp_pku2_xsub_stars/checkpoints"


@pytest.mark.parametrize("name", STARS_SPLITS)
@pytest.mark.parametrize("recipe", ["second", "third", "merged"])
def test_stars_configs_follow_the_official_table(name, recipe):
  config = _load(f"stars.py:{name}_{recipe}")
  dataset = name.split("_")[0]
  s = config.stars
  assert s.recipe == recipe and s.epochs == (20 if recipe == "second" else 10)
  assert s.optim.layer_decay == {"ntu60": 0.45, "ntu120": 0.40, "pku2": 0.35}[dataset]
  assert s.optim.lr == (1e-4 if dataset == "pku2" else 1e-3)
  assert (s.batch_size, s.queue.size, s.temperature, s.head_hidden_dim) == (128, 32768, 0.07, 4096)
  assert (s.optim.weight_decay, s.optim.clip, s.optim.clip_norm, s.schedule.name) == (
    0.01,
    "per_tensor",
    3.0,
    "constant",
  )
  assert tuple(s.monitor.ks) == (10, 20, 40) and s.monitor.temperature == 0.1
  stage1 = f"runs/mamp_{name}{'_stars' * (dataset == 'pku2')}/checkpoints"
  assert s.init == (f"runs/stars_{name}_second/best" if recipe == "third" else stage1)
  assert factory.first_tuned_layer(recipe, config.model.depth) == {"second": 10, "third": 5, "merged": 5}[recipe]
  assert not config.data.random_rot  # stage 2 trains without augmentation (SPEC §1.7)


@pytest.mark.parametrize("name", SPLITS)
def test_linear_configs_follow_the_official_recipe(name):
  c = _load(f"linear.py:{name}").linear  # SPEC §3.3
  assert (
    c.epochs,
    c.optim.name,
    c.optim.momentum,
    c.optim.weight_decay,
    c.schedule.min_lr,
    c.schedule.warmup_epochs,
    c.mode,
  ) == (100, "sgd", 0.9, 0.0, 0.0, 0, "full")
  assert (c.batch_size, c.optim.lr) == ((32, 0.01) if "pku2" in name else (128 if "pku1" in name else 256, 0.1))
  # including the official class-count slips (SPEC §7.12)
  assert c.num_classes == (120 if name == "ntu60_xview" or "ntu120" in name else 60)
  assert c.init == f"runs/mamp_{name}/checkpoints"
  assert c.init_epoch == (301 if name.startswith("pku") else -1)  # PKU: checkpoint-300.pth (SPEC §3.2)


@pytest.mark.parametrize("spec", [s for s in SPECS if s.startswith("finetune.py:")])
def test_finetune_configs_follow_the_official_recipe(spec):
  config = _load(spec)
  c = config.finetune  # SPEC §3.4-3.6
  assert (c.epochs, c.schedule.warmup_epochs, c.batch_size, c.optim.lr, c.schedule.min_lr, c.optim.layer_decay) == (
    100,
    5,
    48,
    3e-4,
    1e-5,
    0.8,
  )
  assert (c.drop_path, c.dropout, c.label_smoothing, c.optim.weight_decay, c.optim.b2) == (0.3, 0.3, 0.1, 0.05, 0.999)
  arg = spec.split(":")[1]
  assert c.data_ratio == {"semi1": 0.01, "semi10": 0.1}.get(arg.rsplit("_", 1)[1], 1.0)
  if "_from_" in arg:
    assert config.data.path.endswith("PKUv2_XSub.npz") and c.num_classes == 51
    assert c.init == f"runs/mamp_{arg.split('_from_')[1]}_xsub/checkpoints"
  assert c.init_epoch == (301 if arg.endswith("_from_pku1") else -1)  # SPEC §3.6: PKU-I at epoch 300


def test_synthetic_variants_share_the_main_jobs_data_and_model():
  main = _load("synthetic.py")
  for variant in ("finetune", "evaluate"):
    config = _load(f"synthetic.py:{variant}")
    assert config.job == variant
    assert config.data.to_dict() == main.data.to_dict() and config.model.to_dict() == main.model.to_dict()
    assert config.seed == main.seed
  assert _load("synthetic.py:finetune").finetune.init == "runs/synthetic/stage1/checkpoints"


def test_nwucla_variants_read_the_cross_view_npz_with_every_class():
  main, gpu = _load("nwucla.py"), _load("nwucla.py:gpu")
  assert main.data.path == gpu.data.path == "data/NWUCLA_XView.npz" and main.data.held_out_classes == ()
  assert (main.model.dim, main.model.depth, gpu.model.dim, gpu.model.depth) == (64, 4, 256, 8)
  main_steps, gpu_steps = main.steps, gpu.steps
  assert gpu_steps.stage1.pretrain.epochs == 400
  assert gpu_steps.stars.stars.recipe == main_steps.stars.stars.recipe == "merged"
  assert main_steps.stars.stars.queue.size < 1018  # fewer projections in the queue than training clips
  brief = _load("nwucla.py:brief")
  assert not [n for n in brief.steps if n.startswith("linear")] and brief.data == main.data


def test_fewshot_config_holds_out_the_novel_ntu120_actions():
  config = _load("evaluate.py:fewshot_ntu120")
  assert tuple(config.data.held_out_classes) == common.NTU120_STARS_NOVEL == tuple(range(60, 120))
  assert config.evaluate.stage1 == "runs/mamp_ntu60_xsub/checkpoints"


@pytest.mark.parametrize("objective", ["moco", "dino"])
def test_ablation_recipes_carry_the_official_numbers(objective):
  """SPEC §4.11: epochs, layer decay and starting points of `{moco,dino}tuning_*`; the rest as NNCLR (§4.6)."""
  epochs = {("moco", "second"): 20, ("moco", "third"): 10, ("dino", "second"): 20, ("dino", "third"): 20}
  decay = {("moco", "second"): 0.45, ("moco", "third"): 0.45, ("dino", "second"): 0.65, ("dino", "third"): 0.45}
  for split in ("xsub", "xview"):
    for recipe in ("second", "third"):
      s = _load(f"{objective}.py:ntu60_{split}_{recipe}").stars
      assert (s.objective, s.recipe, s.epochs) == (objective, recipe, epochs[(objective, recipe)])
      assert s.optim.layer_decay == decay[(objective, recipe)]
      assert (s.optim.name, s.optim.lr, s.optim.b2, s.optim.clip, s.optim.clip_norm) == (
        "adamw",
        1e-3,
        0.95,
        "per_tensor",
        3.0,
      )
      assert s.batch_size == 128 and s.queue.size == 32768
      # Both second stages start from the XSub MAMP run, as the official configs (SPEC §7.17).
      second_init = "runs/mamp_ntu60_xsub/checkpoints"
      assert s.init == (second_init if recipe == "second" else f"runs/{objective}_ntu60_{split}_second/best")
  m = _load("moco.py:ntu60_xsub_second").stars.moco
  assert (m.momentum, m.temperature, m.pointer_skip) == (0.999, 0.07, 32)
  d = _load("dino.py:ntu60_xsub_second").stars.dino
  assert (d.out_dim, d.teacher_momentum, d.teacher_temperature, d.student_temperature) == (128, 0.996, 0.04, 0.1)
  assert (d.sinkhorn_iterations, d.koleo_weight, d.momentum_steps_per_epoch) == (3, 0.1, 1252)
  with pytest.raises(ValueError, match=r"'ntu120_xsub_second' is unknown; the arguments are row: one of \['ntu60_xsub"):
    _load(f"{objective}.py:ntu120_xsub_second")  # the official MoCo / DINO recipes are NTU-60 only
