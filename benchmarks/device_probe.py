"""The first look at a device: attention kernels at the model's shapes, and the bf16 matmul ceiling.

  python benchmarks/device_probe.py --out=probe.json [--small]

For each attention shape the MAMP / STARS models produce, forward + backward of `jax.nn.dot_product_attention`
with 'cudnn' and 'xla' in bf16, each against a float32 XLA reference at HIGHEST matmul precision (relative L2
error of the output and of dq), timed (median of 10 after 3 warm-ups), with XLA's FLOP count (a cuDNN custom
call counts none). Then what `stars_jax.device` resolves the official model to here, whether float32 + 'cudnn'
is refused, and the bf16 matmul ceiling: the measured denominator of an MFU, beside the datasheet's peak. A
kernel that cannot run here records its error instead of a time. `--small` divides the batches by 128 and the
matmul size by 16 (a seconds-long CPU check of the script).
"""

import argparse
import datetime
import importlib.metadata
import json
import pathlib
import statistics
import time

import jax
import jax.numpy as jnp
import numpy as np

from stars_jax import device

# (name, sequences B, tokens N, heads H, head dim Dh). MAMP NTU-60 at batch 128 (x 2 persons): the encoder sees
# int(750 * 0.1) = 74 visible tokens, the decoder all 750; STARS tuning encodes all 750; configs/synthetic.py
# (dim 64, 4 heads, 32 frames): 200 tokens, 20 visible.
SHAPES = (
  ("mamp_encoder_b128", 256, 74, 8, 32),
  ("mamp_decoder_b128", 256, 750, 8, 32),
  ("stars_encoder_b128", 128, 750, 8, 32),
  ("synthetic_encoder_b32", 64, 20, 4, 16),
  ("synthetic_decoder_b32", 64, 200, 4, 16),
)
MATMUL_SIZE = 8192  # square bf16 matmul for the ceiling: large enough to reach the tensor cores' plateau
IMPLS = ("xla", "cudnn")


def fwd_bwd(impl: str):
  """jit of q, k, v (B, N, H, Dh) -> (out, (dq, dk, dv)) for the loss sum(out^2) (float32 accumulation)."""

  def loss(q, k, v):
    out = jax.nn.dot_product_attention(q, k, v, implementation=impl)
    return jnp.sum(out.astype(jnp.float32) ** 2), out

  def f(q, k, v):
    (_, out), grads = jax.value_and_grad(loss, argnums=(0, 1, 2), has_aux=True)(q, k, v)
    return out, grads

  return jax.jit(f)


def rel_err(a: jax.Array, b: jax.Array) -> float:
  a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
  return float(np.linalg.norm(a - b) / (np.linalg.norm(b) + 1e-30))


def median_s(fn, args: tuple, reps: int = 10, warmup: int = 3) -> float:
  for _ in range(warmup):
    jax.block_until_ready(fn(*args))
  times = []
  for _ in range(reps):
    t = time.perf_counter()
    jax.block_until_ready(fn(*args))
    times.append(time.perf_counter() - t)
  return statistics.median(times)


def error_text(e: Exception) -> str:
  return f"{type(e).__name__}: {str(e).splitlines()[0][:300] if str(e) else ''}"


def attention_row(name: str, shape: tuple[int, int, int, int], rng: np.random.Generator) -> dict:
  """Both kernels in bf16 at one shape, against the float32 reference."""
  q, k, v = (jnp.asarray(rng.normal(size=shape), jnp.float32) for _ in range(3))  # (B, N, H, Dh)
  with jax.default_matmul_precision("highest"):
    ref_out, (ref_dq, _, _) = fwd_bwd("xla")(q, k, v)
  half = tuple(t.astype(jnp.bfloat16) for t in (q, k, v))
  row = {"name": name, "shape_BNHD": list(shape)}
  for impl in IMPLS:
    try:
      t = time.perf_counter()
      compiled = fwd_bwd(impl).lower(*half).compile()
      row[f"{impl}_compile_s"] = time.perf_counter() - t
      cost = compiled.cost_analysis()
      cost = cost[0] if isinstance(cost, (list, tuple)) and cost else cost
      row[f"{impl}_xla_flops"] = (cost or {}).get("flops")
      out, (dq, _, _) = compiled(*half)
      row[f"{impl}_rel_err_out"] = rel_err(out, ref_out)
      row[f"{impl}_rel_err_dq"] = rel_err(dq, ref_dq)
      row[f"{impl}_fwd_bwd_ms"] = 1e3 * median_s(compiled, half)
    except Exception as e:  # noqa: BLE001  a kernel this device lacks is a finding, not a failure
      row[f"{impl}_error"] = error_text(e)
  return row


def f32_cudnn() -> str:
  """What JAX does with float32 + 'cudnn' (stars_jax.device refuses the config before this point)."""
  q = jnp.ones((2, 74, 8, 32), jnp.float32)
  try:
    jax.jit(lambda q: jax.nn.dot_product_attention(q, q, q, implementation="cudnn"))(q).block_until_ready()
  except Exception as e:  # noqa: BLE001
    return f"refused by jax ({error_text(e)})"
  return "accepted"


def matmul_ceiling_tflops(n: int, rng: np.random.Generator) -> float:
  """bf16 (n, n) @ (n, n) with float32 accumulation: 2 n^3 FLOPs per median call."""
  a = jnp.asarray(rng.normal(size=(n, n)), jnp.bfloat16)
  return 2 * n**3 / median_s(jax.jit(lambda a: a @ a), (a,)) / 1e12


def main() -> None:
  parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
  parser.add_argument("--out", required=True, help="JSON path")
  parser.add_argument("--small", action="store_true", help="batches / 128, matmul / 16: a CPU check of the script")
  args = parser.parse_args()
  rng = np.random.default_rng(0)
  first = jax.devices()[0]
  stats = first.memory_stats() or {}
  chip = device.describe(first)
  info = {
    "timestamp": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
    "device_kind": first.device_kind,
    "platform": first.platform,
    "device_count": jax.device_count(),
    "compute_capability": getattr(first, "compute_capability", None),
    "bytes_limit_gib": stats.get("bytes_limit", 0) / 2**30 or None,
    "versions": {p: importlib.metadata.version(p) for p in ("jax", "jaxlib", "flax")},
    # The official model's heads (256 / 8 = 32 wide), as stars_jax.device resolves 'auto' here.
    "execution_ntu60": device.execution("auto", "auto", chip, (32, 32)).to_dict(),
  }
  rows = []
  for name, b, n, h, dh in SHAPES:
    rows.append(attention_row(name, (max(1, b // 128) if args.small else b, n, h, dh), rng))
    print(json.dumps(rows[-1]), flush=True)
  info["f32_cudnn"] = f32_cudnn()
  n = MATMUL_SIZE // 16 if args.small else MATMUL_SIZE
  info["bf16_matmul_n"] = n
  info["bf16_matmul_tflops"] = matmul_ceiling_tflops(n, rng)
  print(json.dumps(info), flush=True)
  pathlib.Path(args.out).write_text(json.dumps({"info": info, "attention": rows}, indent=2) + "\n")
  print(
    f"{first.device_kind}: bf16 matmul {info['bf16_matmul_tflops']:.1f} TFLOP/s; auto -> "
    f"{info['execution_ntu60']['compute_dtype']} {info['execution_ntu60']['attention_impl']}"
  )


if __name__ == "__main__":
  main()
