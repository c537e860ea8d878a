"""Downstream stages: optimizer groups, semi-supervised subsets, label smoothing, frozen encoder under the linear
probe, and short linear / fine-tune / cached runs on a tiny dataset (resume included)."""

import json

import jax
import numpy as np
import pytest
from recipe_files import finetune, linear

from stars_jax import sharding
from stars_jax.data.npz import open_split, take, without_classes
from stars_jax.models import factory
from stars_jax.train import classify, linear_cached, optim
from stars_jax.train import state as state_lib


@pytest.mark.parametrize("ratio,size", [(0.01, 400), (0.1, 4009)])
def test_semi_supervised_subset_sizes_and_seeding(ratio, size):
  labels = np.arange(40_091) % 60  # NTU-60 XSub training split size (SPEC §3.5)
  subset = classify.label_subset(labels, ratio, seed=3, class_balanced=False)
  assert len(subset) == size and len(np.unique(subset)) == size and np.all(np.diff(subset) > 0)
  np.testing.assert_array_equal(subset, classify.label_subset(labels, ratio, seed=3, class_balanced=False))
  assert not np.array_equal(subset, classify.label_subset(labels, ratio, seed=4, class_balanced=False))


def test_official_subset_is_the_union_of_per_rank_draws():
  """SPEC §1.6 / §7.13: rank r seeds numpy's global RNG with seed + r, then keeps the first int(N ratio) of
  np.random.permutation(N); with 2 ranks about twice the labels, and the same union for every repeat."""
  n, ratio = 40_091, 0.01
  union = classify.official_label_subset(n, ratio, seed=0, world_size=2)
  per_rank = []
  for rank in range(2):
    np.random.seed(rank)  # the official main_finetune.py, rank `rank`, seed 0
    per_rank.append(set(np.random.permutation(n)[:400].tolist()))
  assert set(union.tolist()) == per_rank[0] | per_rank[1] and 790 <= len(union) <= 800
  assert np.all(np.diff(union) > 0)
  one_gpu = classify.official_label_subset(n, ratio, seed=0, world_size=1)
  assert set(one_gpu.tolist()) == per_rank[0]
  with pytest.raises(ValueError, match="world_size"):
    classify.official_label_subset(n, ratio, seed=0, world_size=0)


def test_class_balanced_subset_takes_the_fraction_of_every_class():
  labels = np.repeat(np.arange(4), [100, 50, 10, 3])
  subset = classify.label_subset(labels, 0.1, seed=0, class_balanced=True)
  assert np.bincount(labels[subset]).tolist() == [10, 5, 1, 1]  # round(0.1 n_c), at least one


def test_label_smoothing_equals_the_timm_formula():
  logits = jax.random.normal(jax.random.PRNGKey(0), (5, 7))
  labels = np.array([0, 3, 6, 2, 2])
  logp = jax.nn.log_softmax(logits)
  nll = -logp[np.arange(5), labels]
  expected = np.mean(0.9 * nll + 0.1 * (-logp.mean(axis=-1)))
  np.testing.assert_allclose(classify.smoothed_cross_entropy(logits, labels, 0.1), expected, rtol=1e-6)


def test_subset_views(tiny_config):
  split = open_split(tiny_config.data.path, "train")
  sub = take(split, np.array([5, 1]))
  np.testing.assert_array_equal(sub.x[0], split.x[5])
  assert sub.labels.tolist() == [split.labels[5], split.labels[1]] and sub.x.shape == (2, 300, 150)
  kept = without_classes(split, [0])
  assert len(kept) == int(np.sum(split.labels != 0)) and 0 not in kept.labels
  with pytest.raises(IndexError, match="tiny.npz"):
    take(split, np.array([len(split)]))


def _config(tiny_config, stage: str):
  if stage == "finetune":
    config = finetune.recipe("ntu60", "xsub", data_ratio=1.0, init="")
  else:
    config = linear.recipe("ntu60", "xsub")
  for key in ("data", "model"):
    config[key] = tiny_config[key]
  config[stage].update(
    dict(
      init="", num_classes=-1, epochs=2, batch_size=8, eval_batch_size=8, log_every_steps=1, checkpoint_every_steps=2
    )
  )
  if stage == "finetune":
    config.finetune.schedule.warmup_epochs = 1
  return config


def _fresh(config, protocol: str, num_classes: int = 3):
  """The seeded initial state of a protocol's classifier, on all devices."""
  model = factory.classifier(config, protocol, num_classes)
  create, _, _ = classify.fresh_state(config, protocol, model, optim.make_schedule(config[protocol], 3))
  return state_lib.create_sharded(create, sharding.make_mesh(), config.sharding)[0]


def test_linear_probe_keeps_the_encoder_and_resumes(tiny_config, tmp_path):
  config = _config(tiny_config, "linear")
  config.linear.max_steps = 4  # interrupted after 4 of 6 steps (checkpoint at 4, evaluation at 3)
  mesh = sharding.make_mesh()
  first = classify.train(config, tmp_path / "run", "linear", mesh).summary
  assert [h["step"] for h in first["history"]] == [3, 4]
  config.linear.max_steps = -1
  result = classify.train(config, tmp_path / "run", "linear", mesh)  # relaunched: resumes at step 4
  run = result.summary
  assert run["steps"] == 6 and [h["step"] for h in run["history"]] == [3, 6]
  assert run["history"][0] == first["history"][0]  # the evaluation history is restored with the state
  assert [h["step"] for h in run["loss_history"]] == [1, 2, 3, 4, 5, 6]  # the history survives the resume
  assert run["best"] == max(h["top1"] for h in run["history"]) and run["last"] == run["history"][-1]["top1"]
  with np.load(tmp_path / "run" / classify.TEST_SCORES) as scores:  # the final state's test logits, for ensembles
    logits, labels = scores["logits"], scores["labels"]
  assert logits.shape == (len(labels), 3) and 100.0 * np.mean(logits.argmax(1) == labels) == run["last"]
  fresh = _fresh(config, "linear")
  for name in ("blocks_0", "norm", "joints_embed"):  # frozen: bit-identical to the (seeded) initial encoder
    jax.tree.map(np.testing.assert_array_equal, result.state.params[name], fresh.params[name])
  assert not np.array_equal(result.state.params["head"]["fc_1"]["kernel"], fresh.params["head"]["fc_1"]["kernel"])


def test_finetune_semi_supervised_writes_its_subset_and_trains_everything(tiny_config, tmp_path):
  config = _config(tiny_config, "finetune")
  config.finetune.data_ratio = 0.5
  run = classify.train(config, tmp_path / "ft", "finetune", sharding.make_mesh()).summary
  saved = json.loads((tmp_path / "ft" / "subset_indices.json").read_text())
  assert len(saved["indices"]) == 12 == run["num_train"] and saved["seed"] == config.seed
  assert saved["subset_draw"] == "seeded"
  assert run["steps"] == 2 * (12 // 8)
  assert all(np.isfinite(h["loss"]) for h in run["loss_history"])


def test_official_draw_is_selected_by_config_and_recorded(tiny_config, tmp_path):
  config = _config(tiny_config, "finetune")
  config.finetune.update(dict(data_ratio=0.25, subset_draw="official", world_size=3))
  split = classify.labelled_train_split(config, "finetune", tmp_path)
  saved = json.loads((tmp_path / "subset_indices.json").read_text())
  n = len(open_split(tiny_config.data.path, "train"))
  expected = classify.official_label_subset(n, 0.25, config.seed, 3)
  assert saved["indices"] == expected.tolist() and len(split) == len(expected)
  assert (saved["subset_draw"], saved["world_size"]) == ("official", 3)
  config.finetune.subset_draw = "per_rank"
  with pytest.raises(ValueError, match="finetune.subset_draw='per_rank'"):
    classify.labelled_train_split(config, "finetune", None)


def test_cached_linear_probe_from_a_parameter_tree(tiny_config):
  config = _config(tiny_config, "linear")
  mesh = sharding.make_mesh()
  random_encoder = linear_cached.train(config, "", mesh)
  assert random_encoder["steps"] == 6 and len(random_encoder["history"]) == 2
  assert "not the official protocol" in random_encoder["mode"]
  # The same (seeded) encoder passed as a parameter tree gives the same run.
  same = linear_cached.train(config, jax.device_get(_fresh(config, "linear").params), mesh)
  assert same["history"] == random_encoder["history"]


def test_missing_init_names_the_config_key(tiny_config, tmp_path):
  config = _config(tiny_config, "linear")
  config.linear.init = str(tmp_path / "nowhere")
  with pytest.raises(FileNotFoundError, match="linear.init"):
    classify.train(config, tmp_path / "x", "linear", sharding.make_mesh())


def test_optimizer_groups(tiny_config):
  """linear: the head only (SGD), everything else frozen; finetune: every layer, the head at scale 1."""
  params = {
    "pos_embed": np.zeros((1, 1, 25, 4)),
    "blocks_0": {"w": np.zeros((4, 4))},
    "norm": {"scale": np.zeros(4)},
    "head": {"fc_1": {"kernel": np.zeros((4, 3))}},
  }
  tiny_config.model.depth = 1
  for protocol, want in (
    ("linear", ["frozen", "layer_3", "frozen", "frozen"]),
    ("finetune", ["layer_1", "layer_3", "layer_2", "layer_0"]),
  ):
    model = factory.classifier(_config(tiny_config, protocol), protocol, 3)
    labels = optim.param_labels(params, model.depth, classify.FIRST_TUNED[protocol](model.depth))
    assert jax.tree.leaves(labels) == want, protocol  # leaves in sorted key order
