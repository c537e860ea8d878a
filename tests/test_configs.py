"""Every config file loads, and the STARS ones carry SPEC §4.7's numbers."""
import pathlib

import pytest

from stars_jax import jobs, recipes
from stars_jax.train import tune

CONFIGS = sorted((pathlib.Path(__file__).parents[1] / "configs").glob("*.py"))


_load = recipes.load_config_file


@pytest.mark.parametrize("path", CONFIGS, ids=lambda p: p.stem)
def test_config_loads(path):
  config = _load(path)
  assert config.stage in jobs.JOBS


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


OFFICIAL_DOWNSTREAM = [p for p in CONFIGS if p.stem.startswith(("linear_", "finetune_", "semi_", "transfer_"))
                       and not p.stem.endswith("_synthetic")]


@pytest.mark.parametrize("path", OFFICIAL_DOWNSTREAM, ids=lambda p: p.stem)
def test_downstream_configs_follow_the_official_recipes(path):
  config = _load(path)
  if config.stage == "linear":  # SPEC §3.3
    c = config.linear
    assert (c.epochs, c.momentum, c.weight_decay, c.min_lr, c.warmup_epochs, c.mode) == (100, 0.9, 0.0, 0.0, 0, "full")
    assert (c.batch_size, c.lr) == ((32, 0.01) if "pku2" in path.stem else (128 if "pku1" in path.stem else 256, 0.1))
    assert c.num_classes == (120 if path.stem in ("linear_ntu60_xview",) or "ntu120" in path.stem
                             else 60)  # including the official class-count slips (SPEC §7.12)
  else:  # SPEC §3.4-3.6
    c = config.finetune
    assert (c.epochs, c.warmup_epochs, c.batch_size, c.lr, c.min_lr, c.layer_decay) == (100, 5, 48, 3e-4, 1e-5, 0.8)
    assert (c.drop_path, c.dropout, c.label_smoothing, c.weight_decay, c.b2) == (0.3, 0.3, 0.1, 0.05, 0.999)
    assert c.data_ratio == {"semi_ntu60_xsub_1": 0.01, "semi_ntu60_xview_1": 0.01, "semi_ntu60_xsub_10": 0.1,
                            "semi_ntu60_xview_10": 0.1}.get(path.stem, 1.0)
    if path.stem.startswith("transfer_"):
      assert config.data.path.endswith("PKUv2_XSub.npz") and c.num_classes == 51
      assert c.init == f"runs/mamp_{path.stem.split('_from_')[1]}_xsub/checkpoints"


def test_synthetic_finetune_reuses_the_main_jobs_data_and_model():
  configs = {p.stem: p for p in CONFIGS}
  finetune, main = _load(configs["finetune_synthetic"]), _load(configs["synthetic"])
  assert finetune.stage == "finetune" and finetune.finetune.init == ""
  assert finetune.data.to_dict() == main.data.to_dict() and finetune.model.to_dict() == main.model.to_dict()
  assert finetune.seed == main.seed
