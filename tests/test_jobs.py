"""The multi-stage jobs are pipelines: a bad setting of a later step fails before the first step trains, and the
ablation tunes each objective from one stage-1 encoder and reports them side by side."""

import pathlib

import jax
import pytest

from stars_jax import config_lib, jobs, sharding
from stars_jax import main as main_module
from stars_jax.pipeline import job as pipeline_job

REPO = pathlib.Path(__file__).resolve().parents[1]


def _tiny(spec: str, tmp_path: pathlib.Path):
  config = config_lib.load_config(f"{REPO / 'configs' / spec}")
  config.data.synthetic.dir = str(tmp_path / "data")
  return config


@pytest.mark.parametrize(
  "setting, value, message",
  [
    ("stars.stars.loss", "both", r"stars.loss='both'; choose one of"),
    ("stars.stars.batch_size", 40, r"stars.batch_size=40 exceeds stars.queue.size=20"),
    ("stars.stars.monitor.split", "train", r"stars.monitor.split='train'"),
    ("linear_stars.linear.epochs", 0, r"linear.epochs=0 must be positive"),
    ("linear_random_init.linear.mode", "fast", r"linear.mode='fast'"),
  ],
)
def test_a_bad_later_step_setting_fails_before_stage_1_trains(tmp_path, setting, value, message):
  config = _tiny("synthetic.py:tiny", tmp_path)
  *groups, name = setting.split(".")
  node = config.steps
  for group in groups:
    node = node[group]
  node[name] = value
  with pytest.raises(ValueError, match=message):
    main_module._checked_run(config, tmp_path / "run")
  assert not (tmp_path / "run" / "stage1").exists()  # nothing trained, nothing written


def _ablation(tmp_path: pathlib.Path, objectives: tuple[str, ...]):
  config = _tiny("ablation_synthetic.py:tiny", tmp_path)
  config.pipeline.order = ("stage1", *objectives, "probe")
  config.steps.probe.compare = (*objectives, "random")
  config.steps.probe.plots = False
  config.steps.stage1.pretrain.max_steps = 2
  for objective in objectives:
    config.steps[objective].stars.update(dict(max_steps=2, log_every_steps=1))
    config.steps[objective].stars.dino.out_dim = 16
  return config


def test_ablation_checks_every_objective_before_stage_1_trains(tmp_path):
  config = _ablation(tmp_path, ("moco", "dino"))
  config.steps.dino.stars.dino.sinkhorn_groups = 3
  with pytest.raises(ValueError, match="stars.dino.sinkhorn_groups=3"):
    pipeline_job.run(config, tmp_path / "run", sharding.make_mesh(jax.devices()[:1]))
  assert not (tmp_path / "run" / "stage1").exists()


def test_ablation_tunes_each_objective_from_one_encoder_and_reports_them_side_by_side(tmp_path):
  config = _ablation(tmp_path, ("dino",))
  results = pipeline_job.run(config, tmp_path / "run", sharding.make_mesh(jax.devices()[:1]))
  assert results["step_metrics"]["dino"]["stars"]["steps"] == 2
  assert set(results["knn1"]) == {"stage1", "dino", "random_init"}
  report = (tmp_path / "run" / "report.md").read_text()
  assert report.startswith("# Tuning objectives from one stage-1 encoder")
  assert "| protocol | stage1 | dino | random_init |" in report


def test_a_pretrain_job_with_evaluation_probes_its_encoder_against_a_random_one(tiny_config, tmp_path):
  config = tiny_config
  config.pretrain.max_steps = 2
  config.evaluate.update(dict(enabled=True, batch_size=8, plots=False))
  results = jobs.JOBS["pretrain"](config, tmp_path / "run", sharding.make_mesh(jax.devices()[:1]))
  assert results["pretrain"]["steps"] == 2
  assert set(results["knn1"]) == {"stage1", "random_init"} and set(results["logistic"]) == {"stage1", "random_init"}
