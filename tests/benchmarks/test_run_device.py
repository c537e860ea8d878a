"""benchmarks/run_device.sh: its outputs, its budget and its plan, on CPU (SMOKE=1: tiny sizes)."""

import json
import os
import pathlib
import re
import subprocess
import sys
import tarfile

ROOT = pathlib.Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "benchmarks" / "run_device.sh"
LINE = re.compile(r"^stage=(\S+)\s+rc=(\S+)\s+seconds=(\d+)\s+limit=(\d+)\s+skipped=(.*)$")


def run(tmp_path: pathlib.Path, **settings: str) -> subprocess.CompletedProcess:
  """The script with `settings` in its environment: one CPU device (no forced device count), this interpreter."""
  env = {k: v for k, v in os.environ.items() if k != "XLA_FLAGS"}
  env.update(PY=sys.executable, TMPDIR=str(tmp_path), OUT=str(tmp_path / "out"), **settings)
  return subprocess.run(["bash", str(SCRIPT)], env=env, capture_output=True, text=True, timeout=600)


def summary(tmp_path: pathlib.Path) -> dict[str, tuple[str, int, int, str]]:
  """summary.txt as {stage: (rc, seconds, limit, skipped)}."""
  rows = [LINE.match(line) for line in (tmp_path / "out" / "summary.txt").read_text().splitlines()]
  assert all(rows), rows
  return {m[1]: (m[2], int(m[3]), int(m[4]), m[5]) for m in rows}


def test_smoke_stages_write_the_summary_the_log_and_the_jsons(tmp_path):
  proc = run(tmp_path, SMOKE="1", BUDGET="300", STAGES="versions,mamp_b8_xla")
  assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
  out = tmp_path / "out"
  files = sorted(p.relative_to(out).as_posix() for p in out.rglob("*") if p.is_file())
  assert files == ["log.txt", "results.tgz", "summary.txt"]  # the device returns at most 8 files
  stages = summary(tmp_path)
  assert list(stages) == ["versions", "mamp_b8_xla"]
  for rc, seconds, limit, skipped in stages.values():
    assert rc == "0" and skipped == "no" and seconds <= limit <= 300
  log = (out / "log.txt").read_text()
  assert "== mamp_b8_xla" in log and "ms/step" in log and "of budget 300s; 0 stage(s) failed" in log
  with tarfile.open(out / "results.tgz") as tgz:
    names = set(tgz.getnames())
    assert {"results/versions.log", "results/mamp_b8_xla.log"} <= names
    versions = json.load(tgz.extractfile("results/versions.json"))
    step = json.load(tgz.extractfile("results/mamp_b8_xla.json"))
  assert versions["device_kind"] == "cpu" and versions["packages"]["jax"]
  assert step["device_kind"] == "cpu" and step["execution"]["attention_impl"] == "xla"
  assert step["config"]["batch_size"] == 8 and step["figures"]["clips_per_s"] > 0
  assert not list(tmp_path.glob("run_device_work.*"))  # the working directory is removed


def test_a_tiny_budget_skips_every_stage_and_says_so(tmp_path):
  proc = run(tmp_path, SMOKE="1", BUDGET="1")
  assert proc.returncode == 0, proc.stderr[-3000:]
  stages = summary(tmp_path)
  assert len(stages) >= 10 and "main_synthetic" in stages
  assert all(rc == "-" and skipped.startswith("yes (") and "needs" in skipped for rc, _, _, skipped in stages.values())
  assert (tmp_path / "out" / "results.tgz").is_file()


def test_dry_plan_lists_each_stage_with_its_limit_within_the_budget(tmp_path):
  proc = run(tmp_path, DRY="1", BUDGET="420")
  assert proc.returncode == 0, proc.stderr
  assert not (tmp_path / "out").exists()  # runs nothing, writes nothing
  planned = re.findall(r"^DRY (\S+) limit (\d+)s: (.*)$", proc.stdout, re.M)
  skipped = [m[1] for m in map(LINE.match, proc.stdout.splitlines()) if m]
  total = int(re.search(r"^DRY total (\d+)s of budget 420s", proc.stdout, re.M)[1])
  assert total == sum(int(limit) for _, limit, _ in planned) <= 420
  assert [name for name, _, _ in planned][:3] == ["versions", "device_probe", "mamp_b128_auto"]
  assert skipped and "main_synthetic" in skipped  # the rest would not fit if every stage ran to its limit
  whole = run(tmp_path, DRY="1", BUDGET="100000").stdout
  commands = dict((name, command) for name, _, command in re.findall(r"^DRY (\S+) limit (\d+)s: (.*)$", whole, re.M))
  assert "--attention_impl=xla" in commands["mamp_b256_xla"] and "--stage=stars" in commands["stars_b128_auto"]
  assert "--device_gib=0" in commands["memory_plan"] and "stars_jax.main" in commands["main_synthetic"]
  assert not any(name.startswith("torch") for name in commands)  # only with TORCH_REF and torch
