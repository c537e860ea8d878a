"""Throughput of `stars-jax prepare ntu60` (files/s) on generated raw `.skeleton` files.

  python benchmarks/prepare_throughput.py [--files 600] [--workers 1,2] [--out benchmarks/results/prepare_cpu.json]

The generated files mimic NTU's mix (measured shape of the real data: ~70-100 frames per file; most files
one body, some two actors, some with short or spread-out noise bodies and empty frames), so parsing,
denoising, transformation and the npz writing are all exercised. The time is the whole `prepare()` call.
"""

import argparse
import datetime
import json
import pathlib
import platform
import tempfile
import time

import numpy as np

from stars_jax.data_prep import ntu, prepare
from stars_jax.data_prep.ntu_skeleton import format_skeleton


def _body(rng: np.random.Generator, frames: int, wide: bool = False) -> np.ndarray:
  """(frames, 25, 3) a tall (or wide) skeleton drifting in space."""
  base = rng.normal(scale=[0.15, 0.5, 0.1], size=(25, 3)) + [0, 0, 3.0]
  if wide:
    base = base[:, [1, 0, 2]]
  drift = np.cumsum(rng.normal(scale=0.01, size=(frames, 1, 3)), axis=0)
  return base + drift + rng.normal(scale=0.005, size=(frames, 25, 3))


def _frames(rng: np.random.Generator) -> list:
  n = int(rng.integers(60, 120))
  kind = rng.choice(["one", "two", "noise"], p=[0.6, 0.3, 0.1])
  a = _body(rng, n)
  frames = [[("72057594037931101", a[t])] for t in range(n)]
  if kind == "two":
    b = _body(rng, n)
    for t in range(n):
      frames[t].append(("72057594037931102", b[t]))
  elif kind == "noise":
    start = int(rng.integers(0, n - 20))
    c = _body(rng, 20, wide=True)
    for t in range(20):
      frames[start + t].append(("72057594037931999", c[t]))
    frames.insert(int(rng.integers(0, n)), [])
  return frames


def generate(folder: pathlib.Path, count: int, seed: int = 0) -> int:
  """`count` raw files S001.. named so both splits are populated; returns their total size in bytes."""
  rng = np.random.default_rng(seed)
  folder.mkdir(parents=True, exist_ok=True)
  size = 0
  for i in range(count):
    name = f"S001C{1 + i % 3:03d}P{1 + (i // 3) % 40:03d}R{1 + (i // 120) % 2:03d}A{1 + (i // 240) % 60:03d}"
    path = folder / f"{name}.skeleton"
    path.write_text(format_skeleton(_frames(rng)))
    size += path.stat().st_size
  return size


def main() -> None:
  parser = argparse.ArgumentParser(description=__doc__)
  parser.add_argument("--files", type=int, default=600)
  parser.add_argument("--workers", default="1,2")
  parser.add_argument("--out", default="benchmarks/results/prepare_cpu.json")
  args = parser.parse_args()
  cpu = platform.processor() or platform.machine()
  for line in pathlib.Path("/proc/cpuinfo").read_text().splitlines() if pathlib.Path("/proc/cpuinfo").exists() else []:
    if line.startswith("model name"):
      cpu = line.split(":", 1)[1].strip()
      break
  runs = []
  with tempfile.TemporaryDirectory() as tmp:
    raw = pathlib.Path(tmp) / "raw"
    size = generate(raw, args.files)
    for workers in map(int, args.workers.split(",")):
      start = time.perf_counter()
      log = prepare.prepare(ntu.ntu_dataset("ntu60", raw), pathlib.Path(tmp) / f"out{workers}", workers)
      seconds = time.perf_counter() - start
      runs.append(
        {
          "workers": workers,
          "seconds": round(seconds, 2),
          "files_per_second": round(args.files / seconds, 1),
          "read_files_per_second": log["files_per_second"],
          "samples": log["samples"],
        }
      )
      print(runs[-1])
  result = {
    "benchmark": "stars-jax prepare ntu60 on generated raw files",
    "cpu": cpu,
    "cpu_cores": prepare.cpu_count(),
    "files": args.files,
    "raw_megabytes": round(size / 2**20, 1),
    "date": datetime.date.today().isoformat(),
    "runs": runs,
  }
  pathlib.Path(args.out).write_text(json.dumps(result, indent=2) + "\n")
  print(json.dumps(result, indent=2))


if __name__ == "__main__":
  main()
