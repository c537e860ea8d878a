"""The one parser of config-file arguments (stars_jax.config_args) and the configs that use it."""

import pathlib

import pytest

from stars_jax import config_args, config_lib

REPO = pathlib.Path(__file__).resolve().parents[1]
SPEC = dict(job=("main", "evaluate", "finetune"), tiny=False, row=(None, "ntu60_xsub", "pku2_xsub"), k=3)


def test_tokens_set_flags_choices_and_typed_values():
  args = config_args.parse_arg("evaluate,tiny,ntu60_xsub,k=5", "configs/x.py", **SPEC)
  assert (args.job, args.tiny, args.row, args.k) == ("evaluate", True, "ntu60_xsub", 5)
  args = config_args.parse_arg("row=pku2_xsub,tiny=False", "configs/x.py", **SPEC)
  assert (args.job, args.tiny, args.row, args.k) == ("main", False, "pku2_xsub", 3)  # defaults: first choice


@pytest.mark.parametrize(
  "arg, message",
  [
    ("ntu60_xsub,bogus", r"configs/x.py:ntu60_xsub,bogus: argument 'bogus' is unknown; the arguments are job: one of"),
    ("ntu60_xsub,job=train", r"job='train'; choose one of \['main', 'evaluate', 'finetune'\]"),
    ("ntu60_xsub,tiny=maybe", r"tiny='maybe' is not a bool"),
    ("ntu60_xsub,k=many", r"k='many' is not a int"),
    ("ntu60_xsub,size=2", r"no argument 'size'"),
    ("tiny", r"configs/x.py:tiny: name row"),
  ],
)
def test_bad_arguments_name_the_file_and_the_choices(arg, message):
  with pytest.raises(ValueError, match=message):
    config_args.parse_arg(arg, "configs/x.py", **SPEC)


def test_a_token_that_is_a_choice_of_two_keys_is_refused():
  with pytest.raises(ValueError, match=r"'a' is ambiguous \(a choice of \['x', 'y'\]\)"):
    config_args.parse_arg("a", "configs/x.py", x=("", "a"), y=("", "a", "b"))


def test_every_config_file_refuses_an_unknown_argument_naming_itself():
  for name in ("synthetic", "nwucla", "mamp", "stars", "linear", "finetune", "evaluate", "moco", "dino", "paper"):
    with pytest.raises(ValueError, match=rf"configs/{name}\.py:nonsense: argument 'nonsense' is unknown"):
      config_lib.load_config(f"{REPO / 'configs' / name}.py:nonsense")


def test_the_tiny_main_job_keeps_the_main_jobs_recipe_and_shrinks_only_sizes():
  main = config_lib.load_config(f"{REPO / 'configs' / 'synthetic.py'}")
  tiny = config_lib.load_config(f"{REPO / 'configs' / 'synthetic.py'}:tiny")
  assert tiny.job == main.job == "pipeline" and tiny.pipeline.order == main.pipeline.order
  t, m = tiny.steps, main.steps
  assert t.stage1.pretrain.optim == m.stage1.pretrain.optim and t.stage1.pretrain.masking == m.stage1.pretrain.masking
  assert t.stars.stars.optim == m.stars.stars.optim and t.stars.stars.recipe == m.stars.stars.recipe
  assert t.linear_stars.linear.optim == m.linear_stars.linear.optim
  assert (tiny.model.dim, tiny.model.depth, t.stage1.pretrain.epochs, tiny.data.synthetic.num_classes) == (32, 2, 12, 6)
  evaluate = config_lib.load_config(f"{REPO / 'configs' / 'synthetic.py'}:evaluate,tiny")
  assert evaluate.job == "evaluate" and evaluate.model == tiny.model and evaluate.data == tiny.data
