"""What a host runs: package versions, the devices, the cuDNN that JAX and torch load, and jax's environment report.

  python benchmarks/versions.py --out=versions.json

The first stage of benchmarks/run_device.sh (every later figure is read against these). A package that is not
installed is recorded as null; torch is imported only when installed.
"""

import argparse
import importlib.metadata
import importlib.util
import json
import pathlib
import platform
import re

import jax

PACKAGES = ("jax", "jaxlib", "flax", "optax", "orbax-checkpoint", "numpy", "torch", "grain", "ml-collections")
PACKAGES += ("tensorboardX", "protobuf", "absl-py")
# JAX's CUDA plugins and the NVIDIA wheels (cuDNN, cuBLAS, ...) whatever the CUDA major version.
PLUGIN = re.compile(r"^(jax[-_]cuda|jax[-_]rocm|nvidia[-_])", re.I)


def version(name: str) -> str | None:
  try:
    return importlib.metadata.version(name)
  except importlib.metadata.PackageNotFoundError:
    return None


def jax_cudnn() -> int | str | None:
  """The cuDNN version JAX's CUDA plugin loaded (None without one)."""
  try:
    from jax._src.lib import cuda_versions  # private: no public accessor exists

    return cuda_versions.cudnn_get_version() if cuda_versions else None
  except Exception as e:  # noqa: BLE001  an unreadable version is recorded, not fatal
    return f"{type(e).__name__}: {e}"


def torch_info() -> dict | None:
  if importlib.util.find_spec("torch") is None:
    return None
  import torch

  return {
    "version": torch.__version__,
    "cuda": torch.version.cuda,
    "cudnn": torch.backends.cudnn.version() if torch.backends.cudnn.is_available() else None,
    "cuda_available": torch.cuda.is_available(),
  }


def devices() -> list[dict]:
  rows = []
  for d in jax.devices():
    stats = d.memory_stats() or {}
    rows.append(
      {
        "id": d.id,
        "platform": d.platform,
        "device_kind": d.device_kind,
        "compute_capability": getattr(d, "compute_capability", None),
        "bytes_limit_gib": stats.get("bytes_limit", 0) / 2**30 or None,
      }
    )
  return rows


def main() -> None:
  parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
  parser.add_argument("--out", required=True, help="JSON path")
  args = parser.parse_args()
  plugins = {d.metadata["Name"]: d.version for d in importlib.metadata.distributions() if PLUGIN.match(d.name or "")}
  rows = devices()
  info = {
    "device_kind": rows[0]["device_kind"],
    "platform": jax.default_backend(),
    "device_count": len(rows),
    "devices": rows,
    "python": platform.python_version(),
    "packages": {p: version(p) for p in PACKAGES},
    "plugins": dict(sorted(plugins.items())),
    "jax_cudnn": jax_cudnn(),
    "torch": torch_info(),
    "jax_environment": jax.print_environment_info(return_string=True),  # includes nvidia-smi where there is one
  }
  pathlib.Path(args.out).write_text(json.dumps(info, indent=2) + "\n")
  packages = ", ".join(f"{k} {v}" for k, v in info["packages"].items() if v)
  print(f"{len(rows)} x {info['device_kind']} ({info['platform']}); cuDNN {info['jax_cudnn']}; {packages}")


if __name__ == "__main__":
  main()
