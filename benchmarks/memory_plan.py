"""Memory per clip of the MAMP pretraining step, from XLA's buffer plan of the compiled step (no step is run).

  python benchmarks/memory_plan.py                                   # official + wide config, remat off / on
  python benchmarks/memory_plan.py --batch_sizes=64,128 --attention_impl=xla --out=/tmp/plan.json

For each config, remat setting and per-device batch, the real train step (`pretrain.stage`, its state created
and its step jitted as `runner.run` does, on a 1-device mesh) is lowered and compiled, and
`compiled.memory_analysis()` gives the bytes of its arguments
(train state + batch), outputs and temporaries (activations saved for the backward pass, scratch). Per-clip
memory is the slope of the temporaries between the two largest batches; the largest batch that fits the
device's own memory (or --device_gib) is extrapolated from it. On a GPU this is that GPU's plan; on a CPU it is
the CPU compiler's plan (different fusion), so it is an estimate for accelerators, labelled with its device.
"""

import datetime
import importlib.metadata
import json
import logging
import pathlib
import tempfile

import jax
import numpy as np
from absl import app, flags

from stars_jax import config_lib, sharding
from stars_jax.data.npz import FRAME_WIDTH
from stars_jax.models import factory
from stars_jax.pipeline import steps as pipeline_steps
from stars_jax.train import pretrain
from stars_jax.train import state as state_lib

ROOT = pathlib.Path(__file__).resolve().parents[1]
RAW_FRAMES = 300  # official npz sample layout: (300 frames, FRAME_WIDTH values)
_CONFIGS = flags.DEFINE_list(
  "configs",
  ["mamp.py:ntu60_xsub", "mamp.py:ntu60_xsub_wide"],
  "Pretraining configs in configs/, file[:arg] as --config takes them.",
)
_BATCHES = flags.DEFINE_list("batch_sizes", ["16", "32"], "Per-device batches to compile (clips).")
_REMAT = flags.DEFINE_list("remat", ["false", "true"], "model.remat settings to plan.")
_DTYPE = flags.DEFINE_string("compute_dtype", "auto", "model.compute_dtype: 'auto' (stars_jax.device), 'float32', ...")
_ATTN = flags.DEFINE_string("attention_impl", "auto", "model.attention_impl: 'auto' (stars_jax.device), 'xla', ...")
_DEVICE_GIB = flags.DEFINE_float(
  "device_gib", 0.0, "Device memory for the largest-batch extrapolation; 0: the device's own (80 GiB if unknown)."
)
ASSUMED_GIB = 80.0  # one H100: the extrapolation's memory where the device reports none (CPU)
_OUT = flags.DEFINE_string("out", "", "Output JSON; default benchmarks/results/memory_plan_<device kind>.json.")


def placeholder_npz(path: pathlib.Path, num_samples: int) -> str:
  """An all-zero npz in the official layout: the stage opens its training split when built (no step reads it)."""
  x = np.zeros((num_samples, RAW_FRAMES, FRAME_WIDTH), np.float32)
  y = np.eye(60, dtype=np.float32)[np.arange(num_samples) % 60]
  np.savez(path, x_train=x, y_train=y, x_test=x[:1], y_test=y[:1])
  return str(path)


def config_name(spec: str) -> str:
  """'mamp.py:ntu60_xsub' -> 'mamp_ntu60_xsub'."""
  path, _, arg = spec.partition(":")
  return "_".join([pathlib.Path(path).stem] + [arg] * bool(arg))


def plan(config, batch: int) -> dict[str, int]:
  """XLA's memory plan of the train step for `batch` clips on one device."""
  mesh = sharding.make_mesh(jax.devices()[:1])
  config.pretrain.batch_size = batch
  stage = pretrain.stage(config)
  state, shardings = state_lib.create_sharded(stage.create, mesh, config.sharding, stage.rules)
  step = jax.jit(
    stage.step,
    in_shardings=(shardings, sharding.batch_sharding(mesh)),
    out_shardings=(shardings, sharding.replicated(mesh)),
    donate_argnums=0,
  )
  x = {"x": jax.ShapeDtypeStruct((batch, RAW_FRAMES, FRAME_WIDTH), np.float32, sharding=sharding.batch_sharding(mesh))}
  m = step.lower(state, x).compile().memory_analysis()
  return {k: int(getattr(m, f"{k}_size_in_bytes")) for k in ("argument", "output", "alias", "temp")}


def device_gib(device: jax.Device) -> tuple[float, str]:
  """(GiB, where it came from): the flag, else the memory the device's allocator may use, else ASSUMED_GIB."""
  if _DEVICE_GIB.value:
    return _DEVICE_GIB.value, "flag"
  limit = (device.memory_stats() or {}).get("bytes_limit")
  return (limit / 2**30, "device") if limit else (ASSUMED_GIB, "assumed")


def main(argv) -> None:
  del argv
  device = jax.devices()[0]
  gib, gib_source = device_gib(device)
  execution = None
  batches = sorted(int(b) for b in _BATCHES.value)
  rows = []
  with tempfile.TemporaryDirectory() as tmp:
    data_path = placeholder_npz(pathlib.Path(tmp) / "placeholder.npz", batches[-1])
    for spec in _CONFIGS.value:
      stem = config_name(spec)
      for remat in (r.lower() == "true" for r in _REMAT.value):
        config = pipeline_steps.stage_config(config_lib.load_config(str(ROOT / "configs" / spec)), "pretrain")
        config.data.path = data_path
        config.model.update(dict(remat=remat, compute_dtype=_DTYPE.value, attention_impl=_ATTN.value))
        execution = factory.execution(config)
        plans = {b: plan(config, b) for b in batches}
        lo, hi = batches[-2:] if len(batches) > 1 else (0, batches[-1])
        per_clip = (plans[hi]["temp"] - (plans[lo]["temp"] if lo else 0)) / (hi - lo)
        fixed = plans[hi]["argument"] + plans[hi]["temp"] - per_clip * hi  # state + batch-independent scratch
        budget = gib * 2**30
        rows.append(
          {
            "config": stem,
            "remat": remat,
            "plans": plans,
            "temp_bytes_per_clip": per_clip,
            "fixed_bytes": fixed,
            "largest_batch_estimate": int((budget - fixed) // per_clip),
          }
        )
        logging.info(
          "%s remat=%s: %.1f MiB/clip, largest batch per %.0f GiB ~ %d",
          stem,
          remat,
          per_clip / 2**20,
          gib,
          rows[-1]["largest_batch_estimate"],
        )
  result = {
    "timestamp": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
    "device_kind": device.device_kind,
    "platform": jax.default_backend(),
    "compute_dtype": execution.compute_dtype,
    "attention_impl": execution.attention_impl,
    "execution": execution.to_dict(),
    "device_gib": gib,
    "device_gib_source": gib_source,
    "versions": {p: importlib.metadata.version(p) for p in ("jax", "jaxlib", "flax")},
    "rows": rows,
  }
  slug = "".join(c if c.isalnum() else "_" for c in device.device_kind.lower())
  out = pathlib.Path(_OUT.value) if _OUT.value else ROOT / "benchmarks" / "results" / f"memory_plan_{slug}.json"
  out.write_text(json.dumps(result, indent=2) + "\n")
  print(
    f"{execution.compute_dtype}, attention {execution.attention_impl}\n"
    f"| config | remat | MiB per clip | largest batch per {gib:.0f} GiB ({gib_source}; estimate) |\n|---|---|---|---|"
  )
  for r in rows:
    print(f"| {r['config']} | {r['remat']} | {r['temp_bytes_per_clip'] / 2**20:.1f} | {r['largest_batch_estimate']} |")


if __name__ == "__main__":
  app.run(main)
