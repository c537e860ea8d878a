"""The jobs: a pretrain_tune job checks the settings of its later stages before stage 1 trains."""

import pytest

from stars_jax import jobs, recipes, sharding, tuning_recipes


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
  config.stars = tuning_recipes.stars_group("merged", layer_decay=0.45)
  config.stars.update(dict(batch_size=8, head_hidden_dim=32))
  config.stars.queue.size = 16
  config.linear = recipes.linear_group()
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
