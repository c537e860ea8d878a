"""bfloat16 against float32 MAMP pretraining, on the synthetic default and on a PKU-scaled copy of it.

  python benchmarks/precision.py --label=after                  # this checkout
  PYTHONPATH=/path/to/older/checkout python benchmarks/precision.py --label=before

For each dataset — the synthetic default (centred, as the NTU preparation leaves clips) and the same clips moved
2-4 m from the camera and left uncentred, as PKU-MMD's are — stage 1 trains `--steps` steps with compute dtype
float32 and with bfloat16 (same seed, same batches) through `pretrain.train`, the real training path. Recorded:

* `input`: the RMS frame-to-frame motion of the training clips and the RMS error of rounding their coordinates to
  bfloat16 (both in mm): how much of the signal MAMP learns from a bf16 input would keep;
* `loss`: both loss curves and their mean absolute gap;
* `same_params`: the float32-trained encoder run at bfloat16 against float32 on the test split (pooled
  features: relative difference, cosine) — the compute dtype alone;
* `trained`: the bfloat16-trained encoder against the float32-trained one (relative feature difference) and
  the kNN-1 accuracy of each (seen classes, float32 features).

`--label` names the code version: the script imports whichever `stars_jax` is first on the path.
"""

import datetime
import json
import pathlib
import tempfile

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
from absl import app, flags, logging

import stars_jax
from stars_jax import config_lib, sharding
from stars_jax.data import npz, sources
from stars_jax.evaluate import features, knn
from stars_jax.models import factory
from stars_jax.models.mamp import encoder_params
from stars_jax.pipeline import steps as pipeline_steps
from stars_jax.train import pretrain

_LABEL = flags.DEFINE_string("label", "after", "Name of the code version measured (e.g. before / after).")
_STEPS = flags.DEFINE_integer("steps", 200, "Stage-1 steps per run.")
_SEED = flags.DEFINE_integer("seed", 0, "Seed of every run.")
_OUT = flags.DEFINE_string("out", "", "Output JSON; default benchmarks/results/precision_<device>_<label>.json.")

RESULTS_DIR = pathlib.Path(__file__).resolve().parent / "results"
REPO = pathlib.Path(__file__).resolve().parents[1]


def base_config(seed: int, steps: int) -> ml_collections.ConfigDict:
  """configs/synthetic.py's stage 1 (the main job's `stage1` step), cut at `steps` steps."""
  main = config_lib.load_config(str(REPO / "configs" / "synthetic.py"))
  main.seed = seed
  config = pipeline_steps.job_config(main, "stage1")
  config.pretrain.max_steps = steps
  config.pretrain.checkpoint_every_steps = steps
  config.pretrain.log_every_steps = 10
  return config


def pku_scaled_copy(src: pathlib.Path, dst: pathlib.Path, seed: int) -> None:
  """The clips of `src` moved 2-4 m in depth and +-0.5 m sideways per sample (present persons and frames only:
  all-zero frames stay zero, as padding must)."""
  rng = np.random.default_rng(seed)
  arrays = {}
  with np.load(src) as f:
    for key in f.files:
      arrays[key] = f[key]
  for split in npz.SPLITS:
    x = arrays[f"x_{split}"].reshape(-1, 300, npz.NUM_PERSONS, npz.NUM_JOINTS, npz.NUM_COORDS)
    offset = np.stack(
      [rng.uniform(-0.5, 0.5, len(x)), rng.uniform(-0.3, 0.3, len(x)), rng.uniform(2.0, 4.0, len(x))], axis=-1
    )  # (N, 3) metres
    present = np.any(x != 0, axis=(3, 4), keepdims=True)  # (N, 300, M, 1, 1)
    x = x + present * offset[:, None, None, None, :]
    arrays[f"x_{split}"] = x.reshape(len(x), 300, npz.FRAME_WIDTH).astype(np.float32)
  np.savez(dst, **arrays)


def input_figures(split: npz.SkeletonSplit, n: int = 64) -> dict[str, float]:
  """RMS frame-to-frame motion and RMS bfloat16 rounding error of the coordinates, in mm (present frames only)."""
  x = np.stack([npz.read_sample(split, i) for i in range(min(n, len(split)))]).reshape(-1, 300, 2, 25, 3)
  present = np.any(x != 0, axis=(3, 4))  # (n, T, M)
  both = present[:, 1:] & present[:, :-1]
  motion = (x[:, 1:] - x[:, :-1])[both]
  rounded = np.asarray(jnp.asarray(x).astype(jnp.bfloat16).astype(jnp.float32))
  error = (rounded - x)[present]
  return {
    "motion_rms_mm": float(1e3 * np.sqrt(np.mean(motion**2))),
    "bf16_rounding_rms_mm": float(1e3 * np.sqrt(np.mean(error**2))),
    "coordinate_abs_mean_m": float(np.abs(x[present]).mean()),
  }


def compare(a: np.ndarray, b: np.ndarray) -> dict[str, float]:
  """Relative difference ||a - b|| / ||b|| and cosine similarity of rows, averaged."""
  rel = np.linalg.norm(a - b, axis=1) / np.linalg.norm(b, axis=1)
  cos = np.sum(a * b, axis=1) / (np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1))
  return {"relative_difference_mean": float(rel.mean()), "cosine_mean": float(cos.mean())}


def measure(config: ml_collections.ConfigDict, workdir: pathlib.Path, mesh) -> dict:
  train_split = sources.open_seen_split(config.data, "train")
  test_split = sources.open_seen_split(config.data, "test")
  runs = {}
  for dtype in ("float32", "bfloat16"):
    run_config = ml_collections.ConfigDict(config.to_dict())
    run_config.model.compute_dtype = dtype
    result = pretrain.train(run_config, workdir / dtype, mesh)
    runs[dtype] = {
      "loss": [(int(h["step"]), float(h["loss"])) for h in result.summary["loss_history"]],
      "wall_time_s": result.summary["wall_time_s"],
      "params": encoder_params(jax.device_get(result.state.params)),
    }

  def feats(params: dict, dtype: str, split: npz.SkeletonSplit) -> tuple[np.ndarray, np.ndarray]:
    run_config = ml_collections.ConfigDict(config.to_dict())
    run_config.model.compute_dtype = dtype
    embed = features.make_embed_fn(factory.encoder(run_config), config.data, mesh)
    return features.extract(embed, params, split, 128, mesh)

  f32, bf16 = runs["float32"]["params"], runs["bfloat16"]["params"]
  test32, test_y = feats(f32, "float32", test_split)
  losses32 = dict(runs["float32"]["loss"])
  gaps = [abs(loss - losses32[step]) for step, loss in runs["bfloat16"]["loss"] if step in losses32]
  out = {
    "input": input_figures(train_split),
    "loss": {
      "float32": runs["float32"]["loss"],
      "bfloat16": runs["bfloat16"]["loss"],
      "mean_abs_gap": float(np.mean(gaps)),
      "final": {k: runs[k]["loss"][-1][1] for k in runs},
    },
    "wall_time_s": {k: runs[k]["wall_time_s"] for k in runs},
    "same_params": compare(feats(f32, "bfloat16", test_split)[0], test32),
  }
  test16, _ = feats(bf16, "float32", test_split)
  train32, train_y = feats(f32, "float32", train_split)
  train16, _ = feats(bf16, "float32", train_split)
  out["trained"] = {
    **compare(test16, test32),
    "knn1_float32_trained": knn.knn_accuracy(train32, train_y, test32, test_y),
    "knn1_bfloat16_trained": knn.knn_accuracy(train16, train_y, test16, test_y),
  }
  return out


def main(argv):
  del argv
  logging.info("stars_jax from %s", pathlib.Path(stars_jax.__file__).parent)
  config = base_config(_SEED.value, _STEPS.value)
  mesh = sharding.make_mesh()
  results = {}
  with tempfile.TemporaryDirectory() as tmp:
    tmp = pathlib.Path(tmp)
    pku = tmp / "synthetic_pku_scaled.npz"
    pku_scaled_copy(sources.dataset_path(config.data), pku, _SEED.value)
    for name, path in (("synthetic", ""), ("pku_scaled", str(pku))):
      config.data.path = path
      logging.info("%s: float32 and bfloat16, %d steps each", name, _STEPS.value)
      results[name] = measure(config, tmp / name, mesh)
  device = jax.devices()[0].device_kind
  out = pathlib.Path(_OUT.value or RESULTS_DIR / f"precision_{device.lower().replace(' ', '_')}_{_LABEL.value}.json")
  out.write_text(
    json.dumps(
      {
        "what": "bfloat16 vs float32 MAMP pretraining (configs/synthetic.py; benchmarks/precision.py)",
        "label": _LABEL.value,
        "device": device,
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "steps": _STEPS.value,
        "seed": _SEED.value,
        "results": results,
      },
      indent=1,
    )
  )
  print(out)


if __name__ == "__main__":
  app.run(main)
