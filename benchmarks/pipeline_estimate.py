"""The pipeline plan's time estimate against the measured wall time, per stage and in total.

Runs `stars-jax --config=configs/paper.py:synthetic` (or --config) once end to end in a fresh workdir, sampling
the machine's load average while it runs (other jobs on a shared machine slow the run and the warm-up alike), then
writes results/pipeline_estimate_<device>.json: for every stage the plan's estimate (from its measured warm-up),
the stage's measured wall time and their ratio, and the totals (the stages' sum, and the whole command including
the plan's own warm-up).

  python benchmarks/pipeline_estimate.py [--config=configs/paper.py:synthetic] [--workdir=runs/paper_estimate]
"""

import argparse
import datetime
import json
import os
import pathlib
import platform
import shutil
import subprocess
import sys
import threading
import time

REPO = pathlib.Path(__file__).resolve().parents[1]


def _sample_load(samples: list, stop: threading.Event, every_s: float = 10.0) -> None:
  while not stop.wait(every_s):
    samples.append(os.getloadavg()[0])


def main(argv: list[str]) -> int:
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--config", default="configs/paper.py:synthetic")
  parser.add_argument("--workdir", default="runs/paper_estimate")
  parser.add_argument("--out", default="")
  args, overrides = parser.parse_known_args(argv)
  workdir = REPO / args.workdir
  shutil.rmtree(workdir, ignore_errors=True)
  cmd = [sys.executable, "-m", "stars_jax.main", f"--config={args.config}", f"--workdir={workdir}", *overrides]
  env = {k: v for k, v in os.environ.items() if k != "XLA_FLAGS"}
  load_before, samples, stop = os.getloadavg(), [], threading.Event()
  sampler = threading.Thread(target=_sample_load, args=(samples, stop), daemon=True)
  sampler.start()
  t = time.perf_counter()
  proc = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True)
  wall = time.perf_counter() - t
  stop.set()
  if proc.returncode:
    print(proc.stderr[-5000:], file=sys.stderr)
    return proc.returncode
  plan = json.loads((workdir / "plan.json").read_text())
  results = json.loads((workdir / "results.json").read_text())
  stages = []
  for entry in plan["steps"]:
    if entry["status"] == "disabled":
      continue
    saved = json.loads((workdir / entry["name"] / "results.json").read_text())
    est, measured = entry["estimate_s"], saved["wall_s"]
    stages.append(
      {
        "name": entry["name"],
        "kind": entry["kind"],
        "estimate_s": est,
        "measured_s": measured,
        "estimate_over_measured": est / measured if measured > 0 and est else None,
        "warmup": entry.get("measured", {}),
      }
    )
  est_total = plan["estimate_total_s"]
  measured_total = sum(s["measured_s"] for s in stages)
  record = {
    "date": datetime.date.today().isoformat(),
    "command": " ".join(cmd[2:]),
    "device": results["devices"][0],
    "devices": len(results["devices"]),
    "host": {"cpu_count": os.cpu_count(), "machine": platform.machine(), "processor": platform.processor()},
    "load_average": {
      "note": "1-minute os.getloadavg() before the run and every 10 s during it; the machine was shared with "
      "another engineer's CPU jobs, which slow the warm-up and the run alike but not necessarily equally",
      "before": load_before,
      "during_min": min(samples, default=None),
      "during_max": max(samples, default=None),
      "during_mean": sum(samples) / len(samples) if samples else None,
      "after": os.getloadavg(),
    },
    "stages": stages,
    "estimate_total_s": est_total,
    "measured_stages_total_s": measured_total,
    "estimate_over_measured_total": est_total / measured_total,
    "plan_s": plan["plan_s"],
    "command_wall_s": wall,
    "within_30_percent": abs(est_total / measured_total - 1.0) <= 0.30,
  }
  out = (
    pathlib.Path(args.out)
    if args.out
    else REPO / "benchmarks" / "results" / f"pipeline_estimate_{record['device']}.json"
  )
  out.write_text(json.dumps(record, indent=2) + "\n")
  print(json.dumps({k: v for k, v in record.items() if k != "stages"}, indent=2))
  for s in stages:
    print(f"{s['name']:<12} estimate {s['estimate_s'] or 0:8.1f} s  measured {s['measured_s']:8.1f} s")
  return 0


if __name__ == "__main__":
  sys.exit(main(sys.argv[1:]))
