"""Each setting's allowed values, checked at load: every shipped config passes, and a bad value anywhere (a
training group, a pipeline step's group) is refused naming its key, before any model is built."""

import pathlib
import subprocess
import sys

import pytest

from stars_jax import config_lib, config_schema, jobs

REPO = pathlib.Path(__file__).resolve().parents[1]
SPECS = (
  "synthetic.py",
  "synthetic.py:finetune",
  "synthetic.py:evaluate",
  "synthetic.py:tiny",
  "ablation_synthetic.py",
  "nwucla.py",
  "mamp.py:ntu120_xsub",
  "stars.py:pku2_xsub_third",
  "moco.py:ntu60_xsub_second",
  "dino.py:ntu60_xview_third",
  "linear.py:pku2_xsub",
  "finetune.py:ntu60_xsub_semi1",
  "evaluate.py:fewshot_ntu120",
  "paper.py:ntu60_xsub",
  "paper.py:synthetic,tiny",
)


def _load(spec: str):
  return config_lib.load_config(f"{REPO / 'configs' / spec}")


def _validate(config, num_devices: int = 8) -> None:
  config_schema.validate(config, tuple(jobs.JOBS), num_devices)


@pytest.mark.parametrize("spec", SPECS)
def test_shipped_configs_pass(spec):
  _validate(_load(spec))


def test_every_declared_key_exists_in_a_config():
  # A key in CHOICES that no config has would never be checked (a typo there would go unnoticed).
  paths = {p for spec in SPECS for p, _ in config_schema._leaves(_load(spec))}
  for key in config_schema.CHOICES:
    assert any(p == key or p.endswith(f".{key}") for p in paths), key


@pytest.mark.parametrize(
  "spec, key, value",
  [
    ("synthetic.py", "steps.stage1.pretrain.optim.name", "lamb"),
    ("synthetic.py", "steps.stars.stars.monitor.split", "train"),
    ("synthetic.py", "steps.stars.stars.queue.sharding", "rows"),
    ("synthetic.py", "steps.linear_stars.linear.mode", "fast"),
    ("synthetic.py", "pipeline.report", "summary"),
    ("synthetic.py", "data.stream", "velocity"),
    ("synthetic.py", "model.compute_dtype", "float8"),
    ("synthetic.py:finetune", "finetune.subset_draw", "random"),
    ("dino.py:ntu60_xsub_second", "stars.dino.centering", "none"),
    ("paper.py:synthetic,tiny", "steps.tune_second.stars.loss", "both"),
    ("paper.py:synthetic,tiny", "steps.pretrain.pretrain.schedule.name", "step"),
  ],
)
def test_a_bad_choice_names_its_key(spec, key, value):
  config = _load(spec)
  node = config
  *parents, leaf = key.split(".")
  for part in parents:
    node = node[part]
  node[leaf] = value
  with pytest.raises(config_schema.SettingError, match=f"{key}={value!r}; choose one of"):
    _validate(config)


def test_every_problem_is_named_at_once():
  config = _load("synthetic.py")
  config.job = "train"
  config.steps.stage1.pretrain.batch_size = 12  # not a multiple of 8 devices
  config.steps.stars.stars.epochs = 0
  with pytest.raises(config_schema.SettingError) as e:
    _validate(config)
  message = str(e.value)
  assert "job='train'" in message and "pretrain.batch_size=12" in message and "stars.epochs=0" in message


def test_the_command_line_refuses_a_bad_value_before_building_a_model(tmp_path):
  proc = subprocess.run(
    [
      sys.executable,
      "-m",
      "stars_jax.main",
      f"--config={REPO / 'configs' / 'synthetic.py'}:tiny",
      f"--workdir={tmp_path / 'run'}",
      "--config.steps.stars.stars.loss=both",
    ],
    capture_output=True,
    text=True,
    timeout=300,
  )
  assert proc.returncode == 2, proc.stderr[-2000:]
  assert "steps.stars.stars.loss='both'; choose one of ('effective', 'symmetric')" in proc.stderr
  assert "Traceback" not in proc.stderr
  assert not (tmp_path / "run" / "stage1").exists()  # nothing trained
