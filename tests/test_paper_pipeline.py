"""The `pipeline` job (configs/paper.py) end to end on a tiny synthetic twin: every stage, preempted by SIGTERM in
the middle stage and relaunched with the same command (it continues where it stopped, to the numbers of an
uninterrupted run), then relaunched once more (every stage skipped); plus the input checks that fail in seconds."""

import ast
import json
import os
import pathlib
import shutil
import signal
import subprocess
import sys
import time

import ml_collections
import pytest
from recipe_files import common

from stars_jax import config_lib, sharding
from stars_jax.evaluate import report as report_lib
from stars_jax.pipeline import inputs, job, steps

REPO = pathlib.Path(__file__).resolve().parents[1]
CONFIG = "configs/paper.py:synthetic,tiny"  # the pipeline at configs/synthetic.py:tiny's sizes
TINY = [  # what this test needs beyond the tiny variant: a tune_second long enough to be preempted
  "--config.steps.tune_second.stars.epochs=12",
  "--config.steps.tune_second.stars.monitor.every_epochs=4",
]


def _command(workdir: pathlib.Path, data: pathlib.Path, *extra: str) -> list[str]:
  overrides = [f"--config.data.synthetic.dir={data}", *TINY, *extra]
  return [sys.executable, "-m", "stars_jax.main", f"--config={CONFIG}", f"--workdir={workdir}", *overrides]


def _env() -> dict[str, str]:
  return {k: v for k, v in os.environ.items() if k != "XLA_FLAGS"}  # one CPU device, as a user runs it


@pytest.fixture(scope="module")
def preempted(tmp_path_factory) -> dict:
  """The tiny pipeline SIGTERMed during tune_second, then relaunched with the same command to the end: its
  workdir, data dir, the stderr of both launches, and the relaunch's plan, results and report."""
  root = tmp_path_factory.mktemp("pipeline")
  workdir, data = root / "run", root / "data"
  proc = subprocess.Popen(_command(workdir, data), env=_env(), cwd=REPO, stderr=subprocess.PIPE, text=True)
  try:
    deadline = time.monotonic() + 300
    while not (workdir / "tune_second" / "checkpoints" / "3").is_dir():  # 1 of its 12 epochs done
      assert proc.poll() is None and time.monotonic() < deadline, "the run ended or stalled before tune_second"
      time.sleep(0.1)
    proc.send_signal(signal.SIGTERM)
    _, first = proc.communicate(timeout=120)
  finally:
    proc.kill()
  assert proc.returncode == 128 + signal.SIGTERM, first[-3000:]
  again = subprocess.run(_command(workdir, data), env=_env(), cwd=REPO, capture_output=True, text=True, timeout=600)
  assert again.returncode == 0, again.stderr[-3000:]
  return {
    "workdir": workdir,
    "data": data,
    "first": first,
    "again": again.stderr,
    "plan": json.loads((workdir / "plan.json").read_text()),
    "results": json.loads((workdir / "results.json").read_text()),
    "report": (workdir / "report.md").read_text(),
  }


def test_the_preempted_stage_stops_at_a_checkpoint_and_nothing_after_it_ran(preempted):
  workdir, first = preempted["workdir"], preempted["first"]
  assert "SIGTERM at step" in first and "checkpoint saved" in first
  attempts = json.loads((workdir / "tune_second" / "attempts.json").read_text())
  assert attempts[0]["outcome"] == "interrupted (exit 143)" and attempts[1]["outcome"] == "complete"
  assert len(json.loads((workdir / "pretrain" / "attempts.json").read_text())) == 1  # not rerun by the relaunch


def test_the_relaunch_plans_done_and_resumed_stages_and_continues(preempted):
  again, plan = preempted["again"], preempted["plan"]
  status = {e["name"]: e["status"] for e in plan["steps"]}
  assert status["prepare"] == status["pretrain"] == "done"
  assert status["tune_second"].startswith("resume from step ") and status["finetune"] == "disabled"
  assert all(status[n] == "to run" for n in ("tune_third", "linear", "knn", "fewshot"))
  resumed = int(status["tune_second"].rsplit(" ", 1)[1])
  assert f"Resumed from step {resumed}" in again and 3 <= resumed < 36  # 12 epochs of 3 steps
  assert "Step pretrain is complete" in again


def test_every_stage_leaves_its_results_and_the_report_compares_them(preempted):
  workdir, results = preempted["workdir"], preempted["results"]
  for name in ("prepare", "pretrain", "tune_second", "tune_third", "linear", "knn", "fewshot"):
    saved = json.loads((workdir / name / steps.RESULTS).read_text())
    assert saved["wall_s"] > 0 and saved["device"]["device_kind"], name
  assert not (workdir / "finetune").exists()
  assert set(results["comparison"]) == {"linear", "linear_last", "knn1", "stage1_knn1", "fewshot_knn1"}
  assert all(e["published"] is None for e in results["comparison"].values())  # no published synthetic row
  metrics = results["step_metrics"]
  assert results["comparison"]["knn1"]["ours"] == metrics["knn"]["knn1"]["tune_third"]
  assert results["comparison"]["stage1_knn1"]["ours"] == metrics["knn"]["knn1"]["pretrain"]
  assert metrics["fewshot"]["classes"] == [1, 4] and metrics["prepare"]["datasets"]
  report = preempted["report"]
  assert "| kNN-1 (knn_eval, SPEC §4.10) |" in report and "| tune_second | tune | ran |" in report


def test_the_resumed_stage_reaches_the_numbers_of_an_uninterrupted_run(preempted, tmp_path):
  """tune_second again without a SIGTERM, from the same stage-1 output: the same loss and monitor histories. Both
  runs execute the same compiled program on one CPU device from bit-identical states (the checkpoint stores
  float32 exactly), so the numbers are compared for equality."""
  workdir, data = preempted["workdir"], preempted["data"]
  shutil.copytree(workdir / "pretrain", tmp_path / "pretrain")
  order = "--config.pipeline.order=('pretrain','tune_second')"
  proc = subprocess.run(
    _command(tmp_path, data, order), env=_env(), cwd=REPO, capture_output=True, text=True, timeout=600
  )
  assert proc.returncode == 0, proc.stderr[-3000:]
  assert "Step pretrain is complete" in proc.stderr
  resumed = json.loads((workdir / "tune_second" / steps.RESULTS).read_text())["metrics"]["stars"]
  straight = json.loads((tmp_path / "tune_second" / steps.RESULTS).read_text())["metrics"]["stars"]
  assert resumed["loss_history"] and resumed["steps"] == straight["steps"] == 36
  strip = lambda h: [{k: v for k, v in e.items() if k != "clips_per_s"} for e in h]  # noqa: E731
  assert strip(resumed["loss_history"]) == strip(straight["loss_history"])
  assert resumed["monitor"] == straight["monitor"]


def test_a_finished_pipeline_relaunched_skips_every_stage(preempted):
  workdir, data = preempted["workdir"], preempted["data"]
  before = {p: p.stat().st_mtime_ns for p in workdir.glob("*/" + steps.RESULTS)}
  results = job.run(_tiny_config(data.parent), workdir, sharding.make_mesh())
  assert {p: p.stat().st_mtime_ns for p in workdir.glob("*/" + steps.RESULTS)} == before
  plan = json.loads((workdir / "plan.json").read_text())
  assert {e["status"] for e in plan["steps"]} == {"done", "disabled"} and plan["estimate_total_s"] == 0
  assert {s["status"] for s in results["steps"]} == {"skipped (complete)", "disabled"}
  assert results["comparison"] == preempted["results"]["comparison"]


def test_the_plan_estimate_adds_up_its_measured_parts(preempted, tmp_path):
  """A dry run of a linear probe and a kNN stage from the finished stage-1 checkpoints: each estimate is the sum
  of its measured parts over the stage's steps, evaluations, checkpoint saves and batches."""
  config = _tiny_config(preempted["data"].parent)
  pretrained = str(preempted["workdir"] / "pretrain" / "checkpoints")
  config.pipeline.update(dict(order=("linear", "knn"), warmup_steps=2, dry_run=True))
  config.steps.linear.input = config.steps.knn.input = pretrained
  config.steps.knn.compare = ()
  plan = job.run(config, tmp_path, sharding.make_mesh())["plan"]
  linear, knn = plan["steps"]
  m = linear["measured"]
  assert (linear["steps"], linear["steps_per_epoch"], linear["evaluations"], linear["checkpoint_saves"]) == (6, 3, 2, 2)
  assert linear["eval_batches_each"] == 1 and linear["inputs"]["steps.linear.input"]["step"] == 36
  parts = m["setup_s"] + m["compile_s"] + 6 * m["step_s"] + 2 * m["eval_batch_s"] + m["eval_compile_s"]
  assert linear["estimate_s"] == pytest.approx(parts + (2 + 1) * m["save_s"])  # 2 saves, 1 restore (init)
  assert knn["clips"] == {"train": 24, "test": 8} and knn["eval_batches_total"] == 2 + 1
  k = knn["measured"]
  assert knn["estimate_s"] == pytest.approx(k["setup_s"] + k["compile_s"] + 3 * k["eval_batch_s"])
  assert plan["estimate_total_s"] == pytest.approx(linear["estimate_s"] + knn["estimate_s"])
  assert not (tmp_path / "linear" / "checkpoints").exists()  # a dry run trains nothing


def _tiny_config(tmp_path: pathlib.Path) -> ml_collections.ConfigDict:
  """The pipeline config of the command line above (TINY), in Python."""
  config = config_lib.load_config(str(REPO / CONFIG))
  for arg in TINY:
    key, text = arg[len("--config.") :].split("=", 1)
    *groups, name = key.split(".")
    node = config
    for group in groups:
      node = node[group]
    node[name] = ast.literal_eval(text)
  config.data.synthetic.dir = str(tmp_path / "data")
  return config


def test_a_completed_stage_with_changed_settings_is_refused(preempted):
  workdir, data = preempted["workdir"], preempted["data"]
  config = _tiny_config(data.parent)
  config.steps.linear.linear.optim.lr = 0.5
  with pytest.raises(ValueError, match=r"step linear is complete .*linear.optim.lr: 0.1 -> 0.5"):
    job.run(config, workdir, sharding.make_mesh())


def test_a_missing_dataset_fails_before_anything_trains_naming_stage_and_file(tmp_path):
  config = _tiny_config(tmp_path)
  config.steps.fewshot.data = ml_collections.ConfigDict({"path": "NTU120_XSub.npz"})
  config.data.root = str(tmp_path / "npz")
  with pytest.raises(inputs.InputError, match=r"steps.fewshot \(data.path=.*npz/NTU120_XSub.npz'\)"):
    job.run(config, tmp_path / "run", sharding.make_mesh())
  assert not (tmp_path / "run").exists()


def test_an_explicit_input_that_is_no_checkpoint_fails_naming_its_key(tmp_path):
  config = _tiny_config(tmp_path)
  config.steps.tune_second.input = str(tmp_path / "nowhere")
  with pytest.raises(inputs.InputError, match=r"nowhere \(config key steps.tune_second.input\)"):
    job.run(config, tmp_path / "run", sharding.make_mesh())


def test_a_disabled_stage_whose_output_is_missing_fails_naming_both(tmp_path):
  config = _tiny_config(tmp_path)
  config.steps.pretrain.enabled = False
  with pytest.raises(inputs.InputError, match=r"steps.tune_second reads .*pretrain/checkpoints.*disabled"):
    job.run(config, tmp_path / "run", sharding.make_mesh())


@pytest.mark.parametrize(
  "arg",
  [
    *(f"{r}{m}" for r in ("ntu60_xsub", "ntu60_xview", "ntu120_xsub") for m in ("", "_merged")),
    "ntu120_xset",
    "pku2_xsub",
    "synthetic",
  ],
)
def test_paper_configs_chain_the_official_recipes(arg):
  config = config_lib.load_config(f"{REPO / 'configs' / 'paper.py'}:{arg}")
  resolved = {s.name: s for s in steps.resolve(config, "W")}
  tunes = [n for n in config.pipeline.order if n.startswith("tune_")]
  assert tunes == (["tune_merged"] if arg.endswith("_merged") else ["tune_second", "tune_third"])
  assert resolved[tunes[0]].config.stars.init == "W/pretrain/checkpoints"
  assert resolved["linear"].config.linear.init == f"W/{tunes[-1]}/best"
  assert resolved["knn"].inputs == {
    tunes[-1]: pathlib.Path(f"W/{tunes[-1]}/best"),
    "pretrain": pathlib.Path("W/pretrain/checkpoints"),
  }
  assert not resolved["finetune"].enabled
  if arg == "synthetic":
    return
  dataset, split = common.parse_dataset_split(arg.removesuffix("_merged"), "test")
  assert resolved["pretrain"].config.pretrain.epochs == 400
  assert resolved["pretrain"].config.data.path == f"data/{common.NPZ_FILES[(dataset, split)]}"
  assert ("fewshot" in resolved) == (arg.startswith("ntu60_xsub"))
  if "fewshot" in resolved:
    assert resolved["fewshot"].config.data.path == "data/NTU120_XSub.npz"
  row = (dataset, split)
  assert (row in report_lib.ROWS) == (dataset != "pku2")
