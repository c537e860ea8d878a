"""Memory per clip of the MAMP pretraining step, from XLA's buffer plan of the compiled step (no step is run).

  python benchmarks/memory_plan.py                                   # official + wide config, remat off / on
  python benchmarks/memory_plan.py --batch_sizes=64,128 --out=/tmp/plan.json

For each config file, remat setting and per-device batch, the real train step (pretrain.compile_step on a
1-device mesh) is lowered and compiled, and `compiled.memory_analysis()` gives the bytes of its arguments
(train state + batch), outputs and temporaries (activations saved for the backward pass, scratch). Per-clip
memory is the slope of the temporaries between the two largest batches; the largest batch that fits a device
of --device_gib is extrapolated from it. On a GPU this is that GPU's plan; on a CPU it is the CPU compiler's
plan (different fusion), so it is an estimate for accelerators and is labelled with the device it came from.
"""
import datetime
import importlib.metadata
import json
import logging
import pathlib

import jax
import numpy as np
from absl import app, flags

from stars_jax import recipes
from stars_jax.train import pretrain, sharding

ROOT = pathlib.Path(__file__).resolve().parents[1]
_CONFIGS = flags.DEFINE_list("configs", ["mamp_ntu60_xsub", "mamp_ntu60_xsub_wide"], "Config stems in configs/.")
_BATCHES = flags.DEFINE_list("batch_sizes", ["16", "32"], "Per-device batches to compile (clips).")
_DTYPE = flags.DEFINE_string("compute_dtype", "auto", "'auto' (bf16 on GPU/TPU, f32 on CPU), 'float32', 'bfloat16'.")
_DEVICE_GIB = flags.DEFINE_float("device_gib", 80.0, "Device memory for the largest-batch extrapolation.")
_OUT = flags.DEFINE_string("out", "", "Output JSON; default benchmarks/results/memory_plan_<device kind>.json.")


def plan(config, batch: int) -> dict[str, int]:
  """XLA's memory plan of the train step for `batch` clips on one device."""
  mesh = sharding.make_mesh(jax.devices()[:1])
  config.batch_size = batch
  model = pretrain.build_model(config)
  schedule = pretrain.make_schedule(config, 100)
  state, shardings = pretrain.init_state(config, model, schedule, mesh)
  x = jax.ShapeDtypeStruct((batch, pretrain.RAW_FRAMES, pretrain.RAW_VALUES), np.float32,
                           sharding=sharding.batch_sharding(mesh))
  m = pretrain.compile_step(config, model, schedule, mesh, shardings).lower(state, x).compile().memory_analysis()
  return {k: int(getattr(m, f"{k}_size_in_bytes")) for k in ("argument", "output", "alias", "temp")}


def main(argv) -> None:
  del argv
  device = jax.devices()[0]
  batches = sorted(int(b) for b in _BATCHES.value)
  rows = []
  for stem in _CONFIGS.value:
    for remat in (False, True):
      config = recipes.load_config_file(ROOT / "configs" / f"{stem}.py")
      config.model.update(dict(remat=remat, compute_dtype=_DTYPE.value))
      plans = {b: plan(config, b) for b in batches}
      lo, hi = batches[-2:] if len(batches) > 1 else (0, batches[-1])
      per_clip = (plans[hi]["temp"] - (plans[lo]["temp"] if lo else 0)) / (hi - lo)
      fixed = plans[hi]["argument"] + plans[hi]["temp"] - per_clip * hi  # state + batch-independent scratch
      budget = _DEVICE_GIB.value * 2 ** 30
      rows.append({"config": stem, "remat": remat, "plans": plans, "temp_bytes_per_clip": per_clip,
                   "fixed_bytes": fixed, "largest_batch_estimate": int((budget - fixed) // per_clip)})
      logging.info("%s remat=%s: %.1f MiB/clip, largest batch per %.0f GiB ~ %d", stem, remat,
                   per_clip / 2 ** 20, _DEVICE_GIB.value, rows[-1]["largest_batch_estimate"])
  result = {
      "timestamp": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
      "device_kind": device.device_kind, "platform": jax.default_backend(),
      "compute_dtype": str(np.dtype(pretrain.compute_dtype(_DTYPE.value))), "device_gib": _DEVICE_GIB.value,
      "versions": {p: importlib.metadata.version(p) for p in ("jax", "jaxlib", "flax")}, "rows": rows}
  slug = "".join(c if c.isalnum() else "_" for c in device.device_kind.lower())
  out = pathlib.Path(_OUT.value) if _OUT.value else ROOT / "benchmarks" / "results" / f"memory_plan_{slug}.json"
  out.write_text(json.dumps(result, indent=2) + "\n")
  print("| config | remat | MiB per clip | largest batch per %.0f GiB (estimate) |\n|---|---|---|---|"
        % _DEVICE_GIB.value)
  for r in rows:
    print(f"| {r['config']} | {r['remat']} | {r['temp_bytes_per_clip'] / 2 ** 20:.1f} | "
          f"{r['largest_batch_estimate']} |")


if __name__ == "__main__":
  app.run(main)
