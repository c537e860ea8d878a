"""Per-seed figures of main-job runs (results.json + a `/usr/bin/time -v` log each) as one JSON, the layout of
results/synthetic_seeds_cpu.json.

  for s in 0 1 2; do /usr/bin/time -v stars-jax --config=configs/nwucla.py --workdir=runs/seeds/s$s \
      --config.seed=$s > runs/seeds_s$s.log 2>&1; done
  python benchmarks/seeds_summary.py --out benchmarks/results/nwucla_seeds_cpu.json \
      --what "stars-jax --config=configs/nwucla.py ..." --device "cpu (2 cores, ...)" \
      0=runs/seeds/s0:runs/seeds_s0.log 1=runs/seeds/s1:runs/seeds_s1.log 2=runs/seeds/s2:runs/seeds_s2.log
"""

import argparse
import datetime
import json
import pathlib
import re

from stars_jax import io

PROTOCOLS = ("knn1", "knn2", "knn5", "knn10", "logistic", "linear", "linear_last", "fewshot", "oneshot")
PROTOCOLS += ("silhouette", "nmi", "ari")


def _wall_seconds(text: str) -> float:
  """`Elapsed (wall clock) time (h:mm:ss or m:ss): 1:02:03.4` -> seconds."""
  match = re.search(r"Elapsed \(wall clock\) time.*: ([\d:.]+)", text)
  if match is None:
    raise ValueError("no '/usr/bin/time -v' wall-clock line")
  seconds = 0.0
  for part in match.group(1).split(":"):
    seconds = 60 * seconds + float(part)
  return seconds


def seed_figures(workdir: pathlib.Path, time_log: pathlib.Path) -> dict:
  results = json.loads((workdir / "results.json").read_text())
  text = time_log.read_text()
  rss = re.search(r"Maximum resident set size \(kbytes\): (\d+)", text)
  steps = results.get("step_metrics", {})  # a pipeline's; a run written before keeps them at the top level
  stage1 = steps["stage1"]["pretrain"] if steps else results["pretrain"]
  stars = steps["stars"]["stars"] if steps else results["stars"]
  figures = {
    "main_job_wall_s": round(_wall_seconds(text), 1),
    "peak_rss_mib": int(rss.group(1)) // 1024 if rss else None,
    "stage1_train_wall_s": round(stage1["wall_time_s"], 1),
    "stars_train_wall_s": round(stars["wall_time_s"], 1),
    "stars_selected": {"split": stars["selection_split"], **stars["monitor"]["best"]},
  }
  figures.update({p: results[p] for p in PROTOCOLS if p in results})
  return figures


def main() -> None:
  parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
  parser.add_argument("--out", required=True)
  parser.add_argument("--what", required=True, help="the command the seeds ran")
  parser.add_argument("--device", required=True, help="the machine and its load")
  parser.add_argument("runs", nargs="+", help="SEED=WORKDIR:TIME_LOG")
  args = parser.parse_args()
  seeds = {}
  for run in args.runs:
    seed, _, paths = run.partition("=")
    workdir, _, log = paths.partition(":")
    seeds[seed] = seed_figures(pathlib.Path(workdir), pathlib.Path(log))
  payload = {"what": args.what, "device": args.device, "date": datetime.date.today().isoformat(), "seeds": seeds}
  io.write_json_atomic(args.out, payload)
  print(f"wrote {args.out}")


if __name__ == "__main__":
  main()
