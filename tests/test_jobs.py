"""The jobs: a pretrain_tune job checks the settings of its later stages before stage 1 trains."""

import jax
import ml_collections
import pytest
from recipe_files import common, linear, stars

from stars_jax import jobs, sharding


@pytest.mark.parametrize(
  "setting, value, message",
  [
    ("stars.loss", "both", r"stars.loss='both'; choose one of"),
    ("stars.batch_size", 40, r"stars.batch_size=40 exceeds stars.queue.size=16"),
    ("stars.monitor.split", "train", r"stars.monitor.split='train'"),
    ("linear.epochs", 0, r"linear.epochs=0 must be positive"),
    ("linear.mode", "fast", r"linear.mode='fast'"),
  ],
)
def test_a_bad_later_stage_setting_fails_before_stage_1_trains(tiny_config, tmp_path, setting, value, message):
  config = tiny_config
  config.stage = "pretrain_tune"
  config.stars = stars.stars_group("merged", 0.45, lr=1e-3)
  config.stars.update(dict(batch_size=8, head_hidden_dim=32))
  config.stars.queue.size = 16
  config.linear = linear.linear_group(num_classes=-1, init="")
  config.linear.batch_size = 8
  config.evaluate.enabled = True
  *groups, name = setting.split(".")
  node = config
  for group in groups:
    node = node[group]
  node[name] = value
  with pytest.raises(ValueError, match=message):
    jobs.JOBS["pretrain_tune"](config, tmp_path / "run", sharding.make_mesh())
  assert not (tmp_path / "run" / "stage1").exists()  # nothing trained, nothing written


def _ablation_config(tiny_config, stage1: str):
  config = tiny_config
  config.stage = "ablation"
  config.stars = stars.stars_group("merged", 0.45, lr=1e-3)
  config.stars.update(dict(batch_size=8, head_hidden_dim=32, max_steps=2, log_every_steps=1))
  config.stars.queue.size = 16
  config.stars.moco.pointer_skip = 2
  config.stars.dino.update(out_dim=16, sinkhorn_groups=2)
  config.stars.monitor.update(dict(ks=(1,), batch_size=8))
  config.evaluate = common.evaluate_group(stage1="", stars="", enabled=True)
  config.evaluate.update(dict(batch_size=8, plots=False))
  config.ablation = ml_collections.ConfigDict(dict(stage1=stage1, objectives=("dino",)))
  return config


def test_ablation_checks_every_objective_before_stage_1_trains(tiny_config, tmp_path):
  config = _ablation_config(tiny_config, "")
  config.ablation.objectives = ("moco", "dino")
  config.stars.dino.sinkhorn_groups = 3
  with pytest.raises(ValueError, match="stars.dino.sinkhorn_groups=3"):
    jobs.JOBS["ablation"](config, tmp_path / "run", sharding.make_mesh())
  assert not (tmp_path / "run" / "stage1").exists()


def test_ablation_tunes_each_objective_from_one_encoder_and_reports_them_side_by_side(tiny_config, tmp_path):
  config = _ablation_config(tiny_config, "")
  config.pretrain.max_steps = 2
  results = jobs.JOBS["ablation"](config, tmp_path / "run", sharding.make_mesh(jax.devices()[:1]))
  assert {"pretrain", "dino"} <= set(results) and results["dino"]["steps"] == 2
  assert set(results["knn1"]) == {"stage1", "dino", "random_init"}
  report = (tmp_path / "run" / "report.md").read_text()
  assert "| protocol | stage1 | dino | random_init |" in report
