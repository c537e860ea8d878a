"""Side-by-side training-step throughput: our jitted step vs the official PyTorch model's step.

  python benchmarks/compare_torch.py --torch-reference DIR [--stages mamp stars] [--batch 8] [--steps 3]
      [--precision tf32|fp32] [--runs ours-float32 ours-bfloat16 torch-float32]

DIR holds checkouts DIR/MAMP and DIR/STARS (imported by path; nothing is copied). Same model size (NTU-60:
256-d, 8 blocks, decoder 3, 120 frames), batch and device for both. Each run is a fresh subprocess so that peak
memory is its own: on CPU the process's peak RSS, on GPU the framework's peak device allocation.
  mamp   ours: `pretrain.train_step` (crop/rotate augmentation, masking, loss, AdamW) on raw (N, 300, 150)
         samples; official: Transformer.forward(mask 0.9, tau 0.8) + backward + AdamW (timm decay groups)
         on ready (N, 3, 120, 25, 2) clips.
  stars  'merged' recipe, queue 32768. ours: `tune.train_step` (one encoder pass, SPEC §4.4); official:
         SkeletonNNCLR.forward(x, x, ids) (two encoder passes) + backward + per-tensor clipping + AdamW.
Ours is the stage's step (`pretrain.stage` / `tune.stage`), its state created and the step jitted as `runner.run`
does. `--precision` sets the float32 matmuls of both sides alike: tf32 (JAX jax_default_matmul_precision
'tensorfloat32'; torch allow_tf32 for matmuls and cuDNN, float32 matmul precision 'high') or fp32 (strict:
'highest' on both). A CPU has no TF32, so there both are plain float32; each row's `precision` label says which
ran. A worker that fails is recorded with the end of its stderr (also printed) and the others still run; the exit
status is then 1. Results (rewritten after every run): benchmarks/results/compare_torch_<device>_<precision>.json
and a Markdown table on stdout.
"""

import argparse
import datetime
import json
import os
import pathlib
import re
import resource
import subprocess
import sys
import time

CONFIGS = pathlib.Path(__file__).resolve().parents[1] / "configs"
RESULTS = pathlib.Path(__file__).parent / "results"
RUNS = ("ours-float32", "ours-bfloat16", "torch-float32")
# --precision -> (jax_default_matmul_precision, torch allow_tf32, torch.set_float32_matmul_precision)
PRECISIONS = {"tf32": ("tensorfloat32", True, "high"), "fp32": ("highest", False, "highest")}
STDERR_LINES = 30  # of a failed worker, kept in its row and printed


def precision_label(precision: str, platform: str) -> str:
  """What `precision` means on `platform` ('gpu', 'cpu', ...): TF32 exists only on NVIDIA GPUs."""
  if platform != "gpu":
    return f"float32 ({platform}: no TF32, tf32 and fp32 are both plain float32)"
  return "TF32 matmuls (both)" if precision == "tf32" else "strict FP32 matmuls (both)"


def jax_precision(precision: str) -> str:
  """Sets JAX's float32 matmul precision for `precision`; returns its label on this device."""
  import jax

  jax.config.update("jax_default_matmul_precision", PRECISIONS[precision][0])
  return precision_label(precision, jax.devices()[0].platform)


def torch_precision(precision: str, cuda: bool) -> str:
  """Sets torch's float32 matmul and cuDNN precision for `precision`; returns its label on this device."""
  import torch

  _, tf32, matmul = PRECISIONS[precision]
  torch.backends.cuda.matmul.allow_tf32 = tf32
  torch.backends.cudnn.allow_tf32 = tf32
  torch.set_float32_matmul_precision(matmul)
  return precision_label(precision, "gpu" if cuda else "cpu")


def _peak_rss_mib() -> float:
  return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _timed(step, steps: int, warmup: int) -> list[float]:
  for _ in range(warmup):
    step()
  times = []
  for _ in range(steps):
    start = time.perf_counter()
    step()
    times.append(time.perf_counter() - start)
  return times


def run_ours(stage: str, dtype: str, batch: int, steps: int, warmup: int, precision: str) -> dict:
  import tempfile

  import jax
  import numpy as np

  from stars_jax import config_lib, sharding
  from stars_jax.train import pretrain, tune
  from stars_jax.train import state as state_lib

  label = jax_precision(precision)
  mesh = sharding.make_mesh()
  rng = np.random.default_rng(0)
  x = np.cumsum(rng.normal(scale=0.01, size=(batch, 300, 150)), axis=1).astype(np.float32)
  if stage == "mamp":
    config = config_lib.load_config(f"{CONFIGS}/mamp.py:ntu60_xsub")
    config.pretrain.batch_size = batch
  else:
    config = config_lib.load_config(f"{CONFIGS}/stars.py:ntu60_xsub_merged")
    config.stars.init = ""  # a random encoder: the step time does not depend on the weights
    config.stars.batch_size = batch
  config.model.compute_dtype = dtype
  with tempfile.TemporaryDirectory() as tmp:  # the stage opens its splits when built: these clips, one epoch
    config.data.path = f"{tmp}/clips.npz"
    labels = np.eye(60, dtype=np.float32)[np.arange(batch) % 60]
    np.savez(config.data.path, x_train=x, y_train=labels, x_test=x, y_test=labels)
    st = pretrain.stage(config) if stage == "mamp" else tune.stage(config, mesh)
  state, shardings = state_lib.create_sharded(st.create, mesh, config.sharding, st.rules)
  step_fn = jax.jit(
    st.step,
    in_shardings=(shardings, sharding.batch_sharding(mesh)),
    out_shardings=(shardings, sharding.replicated(mesh)),
    donate_argnums=0,
  )
  batch_dict = sharding.global_batch({"x": x, "index": np.arange(batch, dtype=np.int32)}, mesh)
  batch_dict = {k: batch_dict[k] for k in st.feed}
  box = [state]

  def step():
    box[0], metrics = step_fn(box[0], batch_dict)
    jax.block_until_ready(metrics["loss"])

  times = _timed(step, steps, warmup)
  device = jax.devices()[0]
  stats = device.memory_stats() or {}
  return {
    "device": device.device_kind,
    "precision": label,
    "step_s": times,
    "peak_device_mib": stats.get("peak_bytes_in_use", 0) / 2**20 or None,
  }


def run_torch(stage: str, root: str, batch: int, steps: int, warmup: int, precision: str) -> dict:
  import numpy as np
  import torch

  from stars_jax.interop import parity

  official = parity.load_official(root)
  device = "cuda" if torch.cuda.is_available() else "cpu"
  label = torch_precision(precision, device == "cuda")
  torch.set_num_threads(parity.torch_threads())
  torch.manual_seed(0)
  rng = np.random.default_rng(0)
  x = torch.from_numpy(np.cumsum(rng.normal(scale=0.01, size=(batch, 3, 120, 25, 2)), axis=2).astype(np.float32))
  x = x.to(device)
  encoder = dict(
    dim_in=3,
    dim_feat=256,
    depth=8,
    num_heads=8,
    mlp_ratio=4,
    num_frames=120,
    num_joints=25,
    patch_size=1,
    t_patch_size=4,
    qkv_bias=True,
  )
  if stage == "mamp":
    model = official.mamp.Transformer(decoder_dim_feat=256, decoder_depth=3, norm_skes_loss=True, **encoder)
    model.to(device).train()
    optimizer = torch.optim.AdamW(parity.weight_decay_groups(model, 0.05), lr=1e-3, betas=(0.9, 0.95))
    loss_fn = lambda: model(x, mask_ratio=0.9, motion_stride=1, motion_aware_tau=0.8)[0]  # noqa: E731
    clip = lambda: None  # noqa: E731
  else:
    model = (
      parity.nnclr(
        official,
        pretrain=True,
        feature_dim=256,
        queue_size=32768,
        Temperature=0.07,
        topk=0,
        predictor_hidden_dim=4096,
        mask_ratio=0.0,
        **encoder,
      )
      .to(device)
      .train()
    )
    ids = torch.arange(batch, device=device)
    groups = []
    for name, param in model.encoder_student.named_parameters():
      if name.startswith("blocks") and int(name.split(".")[1]) >= 4:
        groups.append({"params": param, "lr": 1e-3 * 0.45 ** (8 - int(name.split(".")[1]))})
      elif name.startswith(("norm", "head")):
        groups.append({"params": param, "lr": 1e-3})
    optimizer = torch.optim.AdamW(groups, lr=1e-3, betas=(0.9, 0.95))
    loss_fn = lambda: model(x, x.clone(), ids)  # noqa: E731
    clip = lambda: official.clr.clip_gradients(model.encoder_student, 3.0)  # noqa: E731

  def step():
    loss = loss_fn()
    optimizer.zero_grad()
    loss.backward()
    clip()
    optimizer.step()
    if device == "cuda":
      torch.cuda.synchronize()

  if device == "cuda":
    torch.cuda.reset_peak_memory_stats()
  times = _timed(step, steps, warmup)
  name = torch.cuda.get_device_name() if device == "cuda" else _cpu_name()
  peak = torch.cuda.max_memory_allocated() / 2**20 if device == "cuda" else None
  return {
    "device": name,
    "precision": label,
    "torch": torch.__version__,
    "threads": torch.get_num_threads(),
    "step_s": times,
    "peak_device_mib": peak,
  }


def _cpu_name() -> str:
  try:
    text = pathlib.Path("/proc/cpuinfo").read_text()
    return re.search(r"model name\s*:\s*(.*)", text).group(1).strip()
  except (OSError, AttributeError):
    return "cpu"


def worker(args) -> None:
  sizes = (args.batch, args.steps, args.warmup, args.precision)
  if args.worker.startswith("ours"):
    result = run_ours(args.stage, args.worker.split("-")[1], *sizes)
  else:
    result = run_torch(args.stage, args.torch_reference, *sizes)
  result["peak_rss_mib"] = _peak_rss_mib()
  result["load_avg_1m_after"] = os.getloadavg()[0]  # the machine may be shared: step times scale with it
  print("RESULT " + json.dumps(result))


def run_worker(args, stage: str, name: str) -> dict:
  """One run in a fresh subprocess: its RESULT row, or on failure a row with the end of its stderr."""
  cmd = [sys.executable, __file__, "--worker", name, "--stage", stage, "--torch-reference", args.torch_reference]
  cmd += ["--batch", str(args.batch), "--steps", str(args.steps), "--warmup", str(args.warmup)]
  proc = subprocess.run(cmd + ["--precision", args.precision], capture_output=True, text=True)
  lines = [line for line in proc.stdout.splitlines() if line.startswith("RESULT ")]
  if proc.returncode or not lines:
    tail = "\n".join(proc.stderr.splitlines()[-STDERR_LINES:])
    print(f"{stage} {name} failed (exit {proc.returncode}); its stderr ends:\n{tail}", file=sys.stderr)
    return {"stage": stage, "run": name, "precision": args.precision, "returncode": proc.returncode, "error": tail}
  result = json.loads(lines[-1][7:])
  median = sorted(result["step_s"])[len(result["step_s"]) // 2]
  print(f"{stage} {name} ({result['precision']}): {1e3 * median:.0f} ms/step", file=sys.stderr)
  return {"stage": stage, "run": name, "clips_per_s": args.batch / median, "step_ms": 1e3 * median, **result}


def main() -> None:
  parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
  parser.add_argument("--torch-reference", required=True, help="directory with MAMP/ and STARS/ checkouts")
  parser.add_argument("--stages", nargs="+", default=["mamp", "stars"], choices=["mamp", "stars"])
  parser.add_argument("--runs", nargs="+", default=list(RUNS), choices=RUNS, help="which steps to time")
  parser.add_argument("--precision", default="tf32", choices=sorted(PRECISIONS), help="float32 matmuls, both sides")
  parser.add_argument("--batch", type=int, default=8, help="clips per step (x 2 persons)")
  parser.add_argument("--steps", type=int, default=3)
  parser.add_argument("--warmup", type=int, default=1, help="untimed steps first (compilation for ours)")
  parser.add_argument("--out", default=None, help="JSON path (default results/compare_torch_<device>_<precision>.json)")
  parser.add_argument("--worker", default=None, help=argparse.SUPPRESS)
  parser.add_argument("--stage", default=None, help=argparse.SUPPRESS)
  args = parser.parse_args()
  if args.worker:
    worker(args)
    return
  rows = []
  started, load_start = datetime.datetime.now().astimezone().isoformat(timespec="seconds"), os.getloadavg()
  payload = {
    "batch": args.batch,
    "steps": args.steps,
    "warmup": args.warmup,
    "precision": args.precision,
    "device": None,
    "date": started,
    "load_avg_start": load_start,  # os.getloadavg() (1, 5, 15 min) before and after all runs
    "load_avg_end": None,
    "rows": rows,
  }
  out = pathlib.Path(args.out) if args.out else None
  for stage in args.stages:
    for name in args.runs:
      rows.append(run_worker(args, stage, name))
      done = [r for r in rows if "error" not in r]
      payload.update(device=done[0]["device"] if done else None, load_avg_end=os.getloadavg())
      if out is None and done:
        out = RESULTS / f"compare_torch_{re.sub(r'[^A-Za-z0-9]+', '_', payload['device'])}_{args.precision}.json"
      if out is not None:
        out.write_text(json.dumps(payload, indent=2))  # after every run: a stopped comparison keeps what it has
  done = [r for r in rows if "error" not in r]
  for row in done:
    torch_row = next((r for r in done if r["stage"] == row["stage"] and r["run"] == "torch-float32"), None)
    row["speedup_vs_torch"] = row["clips_per_s"] / torch_row["clips_per_s"] if torch_row else None
  if out is not None:
    out.write_text(json.dumps(payload, indent=2))
  print(
    "| stage | run | precision | clips/s | step ms | peak RSS MiB | peak device MiB | vs PyTorch |\n"
    "|---|---|---|---|---|---|---|---|"
  )
  for r in rows:
    if "error" in r:
      print(f"| {r['stage']} | {r['run']} | {r['precision']} | failed (exit {r['returncode']}) | | | | |")
      continue
    peak_dev = f"{r['peak_device_mib']:.0f}" if r["peak_device_mib"] else "n/a"
    speedup = f"{r['speedup_vs_torch']:.2f}x" if r["speedup_vs_torch"] else "n/a"
    print(
      f"| {r['stage']} | {r['run']} | {r['precision']} | {r['clips_per_s']:.2f} | {r['step_ms']:.0f} | "
      f"{r['peak_rss_mib']:.0f} | {peak_dev} | {speedup} |"
    )
  print(
    f"\n{payload['device']}, batch {args.batch}, median of {args.steps} steps after {args.warmup} warm-up, "
    f"load average {load_start[0]:.2f} -> {os.getloadavg()[0]:.2f}; wrote {out}"
  )
  if len(done) < len(rows):
    sys.exit(1)


if __name__ == "__main__":
  main()
