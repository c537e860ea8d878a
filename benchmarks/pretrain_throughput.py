"""Throughput of the MAMP pretraining step (full-size NTU-60 XSub config) on the local devices, or of the STARS
tuning step (`--stage=stars`: the official 'merged' recipe from a random encoder).

  python benchmarks/pretrain_throughput.py                       # defaults per platform
  python benchmarks/pretrain_throughput.py --batch_size=256 --compute_dtype=bfloat16 --attention_impl=cudnn
  python benchmarks/pretrain_throughput.py --config=configs/mamp.py:ntu60_xsub_wide --remat --trace_dir=/tmp/trace
  python benchmarks/pretrain_throughput.py --stage=stars --batch_size=128 --step_only

Measures (1) the jitted train step exactly as training runs it (`pretrain.stage`: on-device crop/resize/rotation,
masking, forward, backward, AdamW; created and jitted as `runner.run` does), (2) the on-device augmentation
alone, (3) the host grain input pipeline, both on a temporary npz of random raw samples (also the stage's
training split, so its epoch sets the learning-rate schedule), and writes everything to a JSON file. FLOP
convention: stars_jax/train/flops.py (MAMP only: a STARS step reports XLA's count alone, so no MFU).
"""

import datetime
import importlib.metadata
import json
import logging
import pathlib
import re
import statistics
import tempfile
import time

import jax
import numpy as np
from absl import app, flags
from ml_collections import config_flags

from stars_jax import config_lib, sharding
from stars_jax.data import pipeline, transforms
from stars_jax.data.npz import FRAME_WIDTH, open_split
from stars_jax.models import factory
from stars_jax.pipeline import steps as pipeline_steps
from stars_jax.train import flops, pretrain, tune
from stars_jax.train import state as state_lib

CONFIGS = pathlib.Path(__file__).resolve().parents[1] / "configs"
DEFAULT_CONFIGS = {"mamp": f"{CONFIGS}/mamp.py:ntu60_xsub", "stars": f"{CONFIGS}/stars.py:ntu60_xsub_merged"}
_STAGE = flags.DEFINE_enum("stage", "mamp", list(DEFAULT_CONFIGS), "The step: MAMP pretraining or STARS tuning.")
_CONFIG = config_flags.DEFINE_config_file(
  "config",
  None,
  "Config file[:arg] with the stage's group (model, masking, window); default: the official NTU-60 XSub "
  "config of --stage. Batch and dtype come from the flags below.",
)
_BATCH = flags.DEFINE_integer("batch_size", 0, "Global batch (clips); 0: 128 on GPU/TPU, 8 on CPU.")
_STEPS = flags.DEFINE_integer("steps", 0, "Timed steps; 0: 20 on GPU/TPU, 3 on CPU.")
_WARMUP = flags.DEFINE_integer("warmup", 2, "Untimed steps after compilation.")
_DTYPE = flags.DEFINE_string("compute_dtype", "auto", "model.compute_dtype: 'auto' (stars_jax.device), 'float32', ...")
_ATTN = flags.DEFINE_string("attention_impl", "auto", "model.attention_impl: 'auto' (stars_jax.device), 'xla', ...")
_STEP_ONLY = flags.DEFINE_bool("step_only", False, "Time the train step only (no augmentation, host pipeline runs).")
_FSDP = flags.DEFINE_bool("fsdp", None, "Shard parameters and optimizer state over `data` (default: the config's).")
_REMAT = flags.DEFINE_bool("remat", None, "Recompute block activations in the backward pass (default: the config's).")
_TRACE = flags.DEFINE_string(
  "trace_dir",
  "",
  "Write a jax.profiler trace of the pipelined steps here (TensorBoard / "
  "Perfetto), and XLA's optimised HLO of the step beside it.",
)
_HOST_SAMPLES = flags.DEFINE_integer("host_samples", 512, "Samples in the temporary npz for the host test.")
_OUT = flags.DEFINE_string(
  "out",
  "",
  "Output JSON; default benchmarks/results/pretrain_<device kind>_<config>_"
  "b<batch>_<dtype>[_remat][_<attention>].json.",
)

RESULTS_DIR = pathlib.Path(__file__).resolve().parent / "results"
RAW_FRAMES = 300  # official npz sample layout: (300 frames, FRAME_WIDTH = 2 persons x 25 joints x 3)
NTU60_XSUB_TRAIN = 40_091  # training samples (SPEC §3.2): the projection's epoch
PROJECTION_EPOCHS = 400  # the official MAMP pretraining length
PROJECTION_MFU = 0.40  # the MFU assumed for the analytic projection on an accelerator
# Dense peak TFLOP/s per chip, (device-kind pattern, {compute dtype: peak}); first match wins. GPU float32
# is the TF32 tensor-core peak (XLA's default precision for f32 dots on Ampere/Hopper); TPUs publish no
# f32 peak (f32 dots run as bf16 passes), so MFU is null there.
PEAKS = [
  (r"h100.*pcie", {"bfloat16": 756.0, "float32": 378.0}),
  (r"h100", {"bfloat16": 989.4, "float32": 494.7}),  # SXM ("NVIDIA H100 80GB HBM3")
  (r"h200", {"bfloat16": 989.4, "float32": 494.7}),
  (r"a100", {"bfloat16": 312.0, "float32": 156.0}),
  (r"tpu v4", {"bfloat16": 275.0, "float32": None}),
  (r"tpu v5 ?(lite|e)", {"bfloat16": 197.0, "float32": None}),
]


def peak_tflops(device_kind: str, dtype: str) -> float | None:
  for pattern, peaks in PEAKS:
    if re.search(pattern, device_kind.lower()):
      return peaks.get(dtype)
  return None


def config_name(spec: str) -> str:
  """'…/configs/mamp.py:ntu60_xsub' -> 'mamp_ntu60_xsub' (the file's stem, then its argument)."""
  path, _, arg = spec.partition(":")
  return "_".join([pathlib.Path(path).stem] + [arg] * bool(arg))


def slug(text: str) -> str:
  return re.sub(r"[^a-z0-9]+", "_", text.lower()).strip("_") or "unknown"


def summarize(times: list[float]) -> dict[str, float]:
  return {
    "median_s": statistics.median(times),
    "mean_s": statistics.fmean(times),
    "min_s": min(times),
    "max_s": max(times),
    "n": len(times),
  }


def time_each(fn, n: int) -> list[float]:
  """Wall time of n calls of fn(), each followed by block_until_ready on its result."""
  times = []
  for _ in range(n):
    t = time.perf_counter()
    jax.block_until_ready(fn())
    times.append(time.perf_counter() - t)
  return times


def xla_flops(compiled) -> float | None:
  """compiled.cost_analysis()['flops']: the per-device program (under SPMD, about total / devices)."""
  try:
    cost = compiled.cost_analysis()
  except Exception:  # noqa: BLE001  (some backends do not implement it)
    return None
  cost = cost[0] if isinstance(cost, (list, tuple)) and cost else cost
  return float(cost["flops"]) if cost and cost.get("flops", -1) > 0 else None


def raw_samples(n: int, rng: np.random.Generator) -> np.ndarray:
  """(n, 300, 150) float32 raw samples: smooth joint trajectories, a second person in ~40 % of them,
  zero padding after a valid length drawn uniformly from [64, 300] (the official npz layout)."""
  t, width = RAW_FRAMES, FRAME_WIDTH
  x = rng.normal(scale=0.3, size=(n, 1, width)) + np.cumsum(rng.normal(scale=0.01, size=(n, t, width)), 1)
  x[rng.random(n) > 0.4, :, width // 2 :] = 0.0  # single-person samples: person 2 is all zeros
  lengths = rng.integers(64, t + 1, size=n)
  x[np.arange(t)[None, :] >= lengths[:, None]] = 0.0
  return x.astype(np.float32)


def write_npz(path: pathlib.Path, raw: np.ndarray) -> pathlib.Path:
  """Raw samples as an npz in the official layout (x_train/y_train/x_test/y_test, 60 one-hot classes)."""
  labels = np.eye(60, dtype=np.float32)[np.arange(len(raw)) % 60]
  np.savez(path, x_train=raw, y_train=labels, x_test=raw[:8], y_test=labels[:8])
  return path


def bench_train_step(config, raw: np.ndarray, steps: int, warmup: int) -> dict:
  """The stage's step (MAMP or STARS, by --stage), its state created and the step jitted as `runner.run` does."""
  mesh = sharding.make_mesh()
  stage = pretrain.stage(config) if _STAGE.value == "mamp" else tune.stage(config, mesh)
  t = time.perf_counter()
  state, shardings = state_lib.create_sharded(stage.create, mesh, config.sharding, stage.rules)
  jax.block_until_ready(state)
  init_s = time.perf_counter() - t
  fields = {"x": raw, "index": np.arange(len(raw), dtype=np.int32)}  # STARS' queue reads the clips' indices
  x = sharding.global_batch({k: fields[k] for k in stage.feed}, mesh)
  step_fn = jax.jit(
    stage.step,
    in_shardings=(shardings, sharding.batch_sharding(mesh)),
    out_shardings=(shardings, sharding.replicated(mesh)),
    donate_argnums=0,
  )
  t = time.perf_counter()
  compiled = step_fn.lower(state, x).compile()
  compile_s = time.perf_counter() - t
  logging.info("init %.1fs, compile %.1fs; %d warm-up steps", init_s, compile_s, warmup)
  box = {"state": state}

  def one_step():
    box["state"], metrics = compiled(box["state"], x)
    return box["state"], metrics

  first = time_each(one_step, 1)[0]
  time_each(one_step, max(0, warmup - 1))
  logging.info("timing %d blocked steps", steps)
  each = time_each(one_step, steps)
  logging.info("timing %d pipelined steps", steps)
  if _TRACE.value:
    pathlib.Path(_TRACE.value).mkdir(parents=True, exist_ok=True)
    (pathlib.Path(_TRACE.value) / "train_step.hlo.txt").write_text(compiled.as_text())
    jax.profiler.start_trace(_TRACE.value)
  t = time.perf_counter()
  for _ in range(steps):
    _, metrics = one_step()
  jax.block_until_ready(box["state"])
  pipelined = (time.perf_counter() - t) / steps
  if _TRACE.value:
    jax.profiler.stop_trace()
  loss = float(metrics["loss"])
  if not np.isfinite(loss):
    raise FloatingPointError(f"non-finite loss {loss}")
  mem = getattr(jax.devices()[0], "memory_stats", lambda: None)() or {}
  return {
    "init_s": init_s,
    "compile_s": compile_s,
    "first_step_s": first,
    "step": summarize(each),
    "pipelined_step_s": pipelined,
    "xla_cost_flops_per_device": xla_flops(compiled),
    "last_loss": loss,
    "peak_bytes_in_use_device0": mem.get("peak_bytes_in_use"),
    "memory_analysis": memory_analysis(compiled),
  }


def memory_analysis(compiled) -> dict[str, int] | None:
  """XLA's static buffer plan of the compiled step, per device: arguments (state + batch), outputs, temporaries
  (activations kept for the backward pass and scratch). Available on every backend, unlike memory_stats()."""
  try:
    m = compiled.memory_analysis()
  except Exception:  # noqa: BLE001  (not implemented on some backends)
    return None
  if m is None:
    return None
  return {k: int(getattr(m, f"{k}_size_in_bytes")) for k in ("argument", "output", "alias", "temp")}


def projection(clips_per_s: float, flops_per_clip: float, device_kind: str, dtype: str) -> dict:
  """Wall time of the official 400-epoch NTU-60 XSub pretraining at the measured rate, and, for comparison,
  what an H100 (bf16 dense peak) would take at PROJECTION_MFU of its peak (analytic FLOPs)."""
  clips = PROJECTION_EPOCHS * NTU60_XSUB_TRAIN
  h100 = peak_tflops("h100", "bfloat16") * 1e12 * PROJECTION_MFU
  return {
    "epochs": PROJECTION_EPOCHS,
    "clips": clips,
    "train_flops": clips * flops_per_clip,
    "measured_device": device_kind,
    "measured_dtype": dtype,
    "hours_at_measured_rate": clips / clips_per_s / 3600,
    "minutes_h100_bf16_at_assumed_mfu": clips * flops_per_clip / h100 / 60,
    "assumed_mfu": PROJECTION_MFU,
  }


def bench_augmentation(config, raw: np.ndarray, reps: int) -> dict:
  x = sharding.global_batch(raw, sharding.make_mesh())
  augment = jax.jit(lambda key, x: transforms.train_clips(key, x, config.data))
  keys = list(jax.random.split(jax.random.PRNGKey(1), reps + 1))  # split up front: no eager ops timed
  compiled = augment.lower(keys[0], x).compile()
  jax.block_until_ready(compiled(keys[0], x))
  it = iter(keys[1:])
  return {
    "per_batch": summarize(time_each(lambda: compiled(next(it), x), reps)),
    "xla_cost_flops_per_device": xla_flops(compiled),
  }


def bench_host_pipeline(config, path: pathlib.Path, batch_size: int, batches: int) -> dict:
  split = open_split(path, "train")
  it = pipeline.train_iterator(
    split,
    global_batch_size=batch_size,
    seed=0,
    process_index=jax.process_index(),
    process_count=jax.process_count(),
    num_threads=config.data.num_threads,
    prefetch=config.data.prefetch,
  )
  t = time.perf_counter()
  next(it)
  first_s = time.perf_counter() - t
  t = time.perf_counter()
  for _ in range(batches):
    batch = next(it)
  elapsed = time.perf_counter() - t
  it.close()
  assert batch["x"].shape == (batch_size // jax.process_count(), *split.x.shape[1:])
  return {
    "samples_in_npz": len(split),
    "num_threads": config.data.num_threads,
    "prefetch": config.data.prefetch,
    "first_batch_s": first_s,
    "batches": batches,
    "batches_per_s": batches / elapsed,
    "clips_per_s": batches * batch_size / elapsed,
  }


def load(stage: str):
  """The config (the flag's, else the stage's official one), its name in file names, and its group."""
  if _CONFIG.value is None:
    spec, config = DEFAULT_CONFIGS[stage], config_lib.load_config(DEFAULT_CONFIGS[stage])
  else:
    spec, config = config_flags.get_config_filename(flags.FLAGS["config"]), _CONFIG.value
  config = pipeline_steps.stage_config(config, "pretrain" if stage == "mamp" else "tune")  # a pipeline's step
  if stage == "stars":
    config.stars.init = ""  # a random encoder: the step time does not depend on the weights
  return config, config_name(spec), config.pretrain if stage == "mamp" else config.stars


def main(argv) -> None:
  del argv
  device = jax.devices()[0]
  accel = jax.default_backend() in ("gpu", "tpu")
  batch = _BATCH.value or (128 if accel else 8)
  steps = max(1, _STEPS.value or (20 if accel else 3))
  mamp = _STAGE.value == "mamp"
  config, name, group = load(_STAGE.value)
  group.batch_size = batch
  config.model.compute_dtype = _DTYPE.value
  config.model.attention_impl = _ATTN.value
  if _FSDP.value is not None:
    config.sharding.fsdp = _FSDP.value
  if _REMAT.value is not None:
    config.model.remat = _REMAT.value
  execution = factory.execution(config)
  dtype, attention = execution.compute_dtype, execution.attention_impl
  logging.info(
    "%s step: %d x %s (%s), batch %d, %s, attention %s, fsdp %s, remat %s",
    _STAGE.value,
    jax.device_count(),
    device.device_kind,
    jax.default_backend(),
    batch,
    dtype,
    attention,
    config.sharding.fsdp,
    config.model.remat,
  )

  rng = np.random.default_rng(0)
  host_raw = raw_samples(max(_HOST_SAMPLES.value, 2 * batch), rng)
  raw = host_raw[:batch]
  with tempfile.TemporaryDirectory() as tmp:
    config.data.path = str(write_npz(pathlib.Path(tmp) / "bench.npz", host_raw))
    step = bench_train_step(config, raw, steps, _WARMUP.value)
    aug = None if _STEP_ONLY.value else bench_augmentation(config, raw, max(steps, 10))
    host = (
      None
      if _STEP_ONLY.value
      else bench_host_pipeline(config, pathlib.Path(config.data.path), batch, max(50, 4 * config.data.prefetch))
    )  # > prefetch buffer

  analytic = flops.from_config(config, batch) if mamp else None
  step_s = step["pipelined_step_s"]
  achieved = analytic["train"] / step_s / 1e12 if analytic else None
  xla_total = step["xla_cost_flops_per_device"] and step["xla_cost_flops_per_device"] * jax.device_count()
  peak = peak_tflops(device.device_kind, dtype)
  total_peak = peak * jax.device_count() if peak else None
  figures = {
    "clips_per_s": batch / step_s,
    "step_time_s": step_s,
    "tflops_per_s_analytic": achieved,
    "tflops_per_s_xla": xla_total / step_s / 1e12 if xla_total else None,
    "xla_over_analytic_flops": xla_total / analytic["train"] if xla_total and analytic else None,
    "peak_tflops_per_device": peak,
    "mfu": achieved / total_peak if total_peak and achieved else None,
  }
  if not _STEP_ONLY.value:
    figures["augmentation_fraction_of_step"] = aug["per_batch"]["median_s"] / step["step"]["median_s"]
    figures["host_clips_per_s_over_step_clips_per_s"] = host["clips_per_s"] / (batch / step_s)
  memory = step["memory_analysis"]
  if memory:
    figures["step_temp_bytes_per_clip"] = memory["temp"] / (batch / jax.device_count())
  model = config.model
  result = {
    "timestamp": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
    "stage": _STAGE.value,
    "device_kind": device.device_kind,
    "platform": jax.default_backend(),
    "device_count": jax.device_count(),
    "process_count": jax.process_count(),
    "versions": {p: importlib.metadata.version(p) for p in ("jax", "jaxlib", "flax", "optax", "grain")},
    "execution": execution.to_dict(),
    "config": {
      "config_file": name,
      "batch_size": batch,
      "compute_dtype": dtype,
      "attention_impl": attention,
      "fsdp": config.sharding.fsdp,
      "remat": model.remat,
      "steps": steps,
      "warmup": _WARMUP.value,
      "model": model.to_dict(),
      "window": config.data.window,
      "mask_ratio": config.pretrain.masking.mask_ratio if mamp else None,
      "recipe": None if mamp else config.stars.recipe,
      "tokens": config.data.window // model.t_patch * model.num_joints,
      "visible_tokens": analytic["visible"] if analytic else None,
    },
    "figures": figures,
    "flops_analytic": {k: analytic[k] for k in ("embed", "encoder", "decoder", "heads", "forward", "train")}
    if analytic
    else None,
    "train_step": step,
    "augmentation": aug,
    "host_pipeline": host,
    "projection": projection(batch / step_s, analytic["train"] / batch, device.device_kind, dtype) if mamp else None,
  }
  name = "_".join([name, f"b{batch}", dtype] + ["remat"] * model.remat + [attention])
  prefix = "pretrain" if mamp else "tune"
  out = pathlib.Path(_OUT.value) if _OUT.value else RESULTS_DIR / f"{prefix}_{slug(device.device_kind)}_{name}.json"
  out.parent.mkdir(parents=True, exist_ok=True)
  out.write_text(json.dumps(result, indent=2) + "\n")
  logging.info("wrote %s", out)
  mfu = f"{figures['mfu']:.1%}" if figures["mfu"] is not None else "n/a"
  rate = f"{achieved:.2f} TFLOP/s" if achieved else f"{figures['tflops_per_s_xla'] or 0:.2f} TFLOP/s (XLA's count)"
  inputs = (
    ""
    if _STEP_ONLY.value
    else (f"; augment {aug['per_batch']['median_s'] * 1e3:.1f} ms/batch; host {host['clips_per_s']:.0f} clips/s")
  )
  print(
    f"{_STAGE.value}: {device.device_kind} x{jax.device_count()} batch {batch} {dtype} {attention}: "
    f"{step_s * 1e3:.1f} ms/step, {figures['clips_per_s']:.1f} clips/s, {rate}, MFU {mfu}{inputs}"
  )


if __name__ == "__main__":
  app.run(main)
