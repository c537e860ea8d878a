"""STARS on the synthetic default across seeds: stage 1, then stage-2 variants; kNN-1 of each encoder.

  python benchmarks/stars_seeds.py --seeds=0,1,2 --stage1_epochs=20 --variants=merged,full

Writes benchmarks/results/stars_seeds_<device>_e<stage1_epochs>.json (or --out) with the device, per-seed kNN-1
test accuracy of the stage-1 encoder and of each tuned encoder (monitor-selected and last), and wall times.
"""

import json
import pathlib
import time

import jax
from absl import app, flags

from stars_jax import config_lib, sharding
from stars_jax.data import sources
from stars_jax.evaluate import features, knn
from stars_jax.models import factory
from stars_jax.models.mamp import encoder_params
from stars_jax.pipeline import steps as pipeline_steps
from stars_jax.train import pretrain, tune

ROOT = pathlib.Path(__file__).resolve().parents[1]

VARIANTS = {  # overrides of config.stars (dotted paths inside it)
  "merged": {},
  "merged_e20": {"epochs": 20},
  "full": {"recipe": "full"},
  "merged_lr3e-3": {"optim.lr": 3e-3},
  "merged_warm": {"queue.warm_start": True},
  "merged_symmetric": {"loss": "symmetric"},
}
_SEEDS = flags.DEFINE_list("seeds", ["0", "1", "2"], "Seeds.")
_EPOCHS = flags.DEFINE_integer("stage1_epochs", 20, "Stage-1 epochs (configs/synthetic.py has 80).")
_VARIANTS = flags.DEFINE_list("variants", ["merged"], f"Stage-2 variants: {sorted(VARIANTS)}.")
_WORKDIR = flags.DEFINE_string("workdir", "/tmp/stars_seeds", "Where runs are written.")
_OUT = flags.DEFINE_string("out", "", "Output JSON (default under benchmarks/results/).")


def _config(seed: int):
  """The main job's stage-1 and STARS steps as one job config (configs/synthetic.py)."""
  main = config_lib.load_config(str(ROOT / "configs" / "synthetic.py"))
  main.seed = seed
  main.model.compute_dtype = "float32"  # same numerics on CPU and GPU
  config = pipeline_steps.job_config(main, "stage1")
  config.stars = pipeline_steps.job_config(main, "stars").stars
  config.pretrain.epochs = _EPOCHS.value
  return config


def _set(node, dotted: str, value) -> None:
  *parents, leaf = dotted.split(".")
  for key in parents:
    node = node[key]
  node[leaf] = value


def main(argv) -> None:
  del argv
  device = jax.devices()[0].device_kind.replace(" ", "_")
  out = pathlib.Path(_OUT.value or f"benchmarks/results/stars_seeds_{device}_e{_EPOCHS.value}.json")
  root = pathlib.Path(_WORKDIR.value)
  results = {"device": jax.devices()[0].device_kind, "stage1_epochs": _EPOCHS.value, "seeds": {}}
  mesh = sharding.make_mesh()
  for seed in map(int, _SEEDS.value):
    config = _config(seed)
    t0 = time.perf_counter()
    stage1 = pretrain.train(config, root / f"s{seed}_e{_EPOCHS.value}" / "stage1", mesh)
    # Every class (held-out ones included), as before the training stages drop data.held_out_classes.
    train_split, test_split = sources.open_split(config.data, "train"), sources.open_split(config.data, "test")
    embed = features.make_embed_fn(factory.encoder(config), config.data, mesh)

    def knn1(params, embed=embed, train_split=train_split, test_split=test_split):
      params = encoder_params(jax.device_get(params))
      train = features.extract(embed, params, train_split, 128, mesh)
      return knn.knn_accuracy(*train, *features.extract(embed, params, test_split, 128, mesh), k=1)

    row = {"stage1": knn1(stage1.state.params), "stage1_wall_s": time.perf_counter() - t0}
    for name in _VARIANTS.value:
      config = _config(seed)
      for key, value in VARIANTS[name].items():
        _set(config.stars, key, value)
      config.stars.init = str(root / f"s{seed}_e{_EPOCHS.value}" / "stage1" / "checkpoints")
      t0 = time.perf_counter()
      stage2 = tune.train(config, root / f"s{seed}_e{_EPOCHS.value}" / name, mesh)
      summary = stage2.summary
      row[name] = {
        "selected": knn1(stage2.selected.params),
        "last": knn1(stage2.state.params),
        "selected_step": summary["monitor"]["best"].get("step"),
        "steps": summary["steps"],
        "train_wall_s": summary["wall_time_s"],
        "wall_s": time.perf_counter() - t0,
        "final_loss": summary["loss_history"][-1]["loss"],
      }
      print(seed, name, row[name], "stage1", row["stage1"], flush=True)
    results["seeds"][str(seed)] = row
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(results, indent=1))


if __name__ == "__main__":
  app.run(main)
