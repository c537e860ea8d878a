"""Every config file loads, and the STARS ones carry SPEC §4.7's numbers."""
import importlib.util
import pathlib

import pytest

from stars_jax.train import tune

CONFIGS = sorted((pathlib.Path(__file__).parents[1] / "configs").glob("*.py"))


def _load(path):
  spec = importlib.util.spec_from_file_location(path.stem, path)
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  return module.get_config()


@pytest.mark.parametrize("path", CONFIGS, ids=lambda p: p.stem)
def test_config_loads(path):
  config = _load(path)
  assert config.stage in ("pretrain", "tune", "pretrain_tune")


@pytest.mark.parametrize("path", [p for p in CONFIGS if p.stem.startswith("stars_")], ids=lambda p: p.stem)
def test_stars_configs_follow_the_official_table(path):
  config = _load(path)
  dataset, recipe = path.stem.split("_")[1], path.stem.split("_")[-1]
  s = config.stars
  assert s.recipe == recipe and s.epochs == (20 if recipe == "second" else 10)
  assert s.optim.layer_decay == {"ntu60": 0.45, "ntu120": 0.40, "pku2": 0.35}[dataset]
  assert s.optim.lr == (1e-4 if dataset == "pku2" else 1e-3)
  assert (s.batch_size, s.queue.size, s.temperature, s.head_hidden_dim) == (128, 32768, 0.07, 4096)
  assert (s.optim.weight_decay, s.optim.clip, s.optim.clip_norm, s.optim.schedule) == (
      0.01, "per_tensor", 3.0, "constant")
  assert tuple(s.monitor.ks) == (10, 20, 40) and s.monitor.temperature == 0.1
  assert s.init.endswith("best" if recipe == "third" else "checkpoints")
  assert tune.first_tuned_layer(recipe, config.model.depth) == {"second": 10, "third": 5, "merged": 5}[recipe]
