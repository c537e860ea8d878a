"""The user-facing entry point, end to end on a tiny synthetic run. The run happens once (module fixture); each
test checks one part of what it leaves, so a failure names what broke."""

import errno
import json
import os
import pathlib
import re
import subprocess
import sys

import pytest

from stars_jax import main as main_module
from stars_jax import workdir_lock

pytestmark = pytest.mark.slow

REPO = pathlib.Path(__file__).resolve().parents[1]
CONFIG = "configs/synthetic.py:tiny"  # the main job at seconds-long sizes


def _main(workdir, data_dir, *extra, config=CONFIG):
  env = {k: v for k, v in os.environ.items() if k != "XLA_FLAGS"}  # one CPU device, as a user runs it
  return subprocess.run(
    [
      sys.executable,
      "-m",
      "stars_jax.main",
      f"--config={config}",
      f"--workdir={workdir}",
      f"--config.data.synthetic.dir={data_dir}",
      *extra,
    ],
    env=env,
    cwd=REPO,
    capture_output=True,
    text=True,
    timeout=600,
  )


@pytest.fixture(scope="module")
def run(tmp_path_factory):
  """(workdir, data dir, results.json) of one tiny main job."""
  tmp = tmp_path_factory.mktemp("main")
  proc = _main(tmp / "run", tmp / "data")
  assert proc.returncode == 0, proc.stderr[-3000:]
  return tmp / "run", tmp / "data", json.loads((tmp / "run" / "results.json").read_text())


def test_stage1_trains_and_its_loss_falls(run):
  workdir, data_dir, results = run
  stage1 = results["step_metrics"]["stage1"]["pretrain"]
  history = stage1["loss_history"]
  assert stage1["steps"] == history[-1]["step"] == 36  # 24 seen-class clips / 8 x 12 epochs
  assert history[-1]["loss"] < 0.7 * history[0]["loss"]
  assert (data_dir / "Synthetic_XSub.npz").is_file()
  assert results["config"]["model"]["dim"] == 32  # the config it ran, overrides included


def test_stars_tunes_with_a_validation_monitor(run):
  workdir, _, results = run
  stars = results["step_metrics"]["stars"]["stars"]
  assert stars["steps"] == stars["loss_history"][-1]["step"] == 6  # stage 2: 24 clips / 8 x 2 epochs
  assert stars["selection_split"] == "val" and [m["step"] for m in stars["monitor"]["history"]] == [3, 6]
  assert any((workdir / "stars" / "best").iterdir())
  for step in ("stage1", "stars"):
    assert any((workdir / step / "tensorboard").iterdir())


def test_every_protocol_of_every_encoder(run):
  _, _, results = run
  for metric in ("knn1", "knn10", "logistic", "fewshot", "oneshot"):
    assert set(results[metric]) == {"stage1", "stars", "stars_last", "random_init"}
    assert all(0.0 <= v <= 100.0 for v in results[metric].values())
  for metric in ("silhouette", "nmi", "ari"):
    assert all(-1.0 <= v <= 1.0 for v in results[metric].values())
  for metric in ("linear", "linear_last"):  # linear probe, 2 epochs: best over epochs and last
    assert set(results[metric]) == {"stage1", "stars", "random_init"}
  assert all(results["linear"][k] >= results["linear_last"][k] for k in ("stage1", "stars", "random_init"))


def results_steps(workdir: pathlib.Path) -> list[dict]:
  return json.loads((workdir / "results.json").read_text())["steps"]


def test_report_and_plots(run):
  workdir, _, _ = run
  report = (workdir / "report.md").read_text()
  assert report.startswith("# Stage 1 (MAMP) vs tuned (STARS) encoder")
  assert "| knn1 |" in report and "| linear (best) |" in report and "| fewshot |" in report
  assert [s["status"] for s in results_steps(workdir)] == ["ran"] * 6
  assert {p.name for p in (workdir / "probe" / "plots").iterdir()} >= {
    "tsne_stage1.png",
    "tsne_stars.png",
    "confusion_knn1_stars.png",
    "loss_stage1.png",
    "loss_stars.png",
    "monitor_stars.png",
  }
  # `stars-jax report DIR` rewrites the same report from results.json (one place for titles and notes).
  before = report
  proc = subprocess.run(
    [
      sys.executable,
      "-c",
      "import sys; from stars_jax.main import run; sys.argv[0] = 'stars-jax'; run()",
      "report",
      str(workdir),
    ],
    capture_output=True,
    text=True,
    cwd=REPO,
  )
  assert proc.returncode == 0, proc.stderr[-2000:]
  assert (workdir / "report.md").read_text() == before


def test_evaluate_stage_reproduces_the_main_jobs_frozen_protocols(run, tmp_path):
  workdir, data_dir, results = run
  evaluate = _main(
    tmp_path / "eval",
    data_dir,
    f"--config.evaluate.stage1={workdir}/stage1/checkpoints",
    f"--config.evaluate.stars={workdir}/stars/best",
    "--config.evaluate.plots=False",
    config="configs/synthetic.py:evaluate,tiny",
  )
  assert evaluate.returncode == 0, evaluate.stderr[-3000:]
  evaluated = json.loads((tmp_path / "eval" / "results.json").read_text())
  for metric in ("knn1", "knn5", "logistic", "fewshot", "oneshot", "silhouette", "nmi", "ari"):
    assert set(evaluated[metric]) == {"stage1", "stars", "random_init"}
    for name, value in evaluated[metric].items():
      assert abs(value - results[metric][name]) < 1e-6, (metric, name, value, results[metric][name])
  assert "| knn1 |" in (tmp_path / "eval" / "report.md").read_text()


def test_relaunching_a_finished_run_trains_no_further(run):
  workdir, data_dir, results = run
  (workdir / "stars" / "results.json").unlink()  # the stars step reruns: it resumes from its last checkpoint
  again = _main(workdir, data_dir)
  assert again.returncode == 0, again.stderr[-3000:]
  rerun = json.loads((workdir / "results.json").read_text())
  assert [s["status"] for s in rerun["steps"]] == ["skipped (complete)", "ran", *["skipped (complete)"] * 4]
  before, after = results["step_metrics"]["stars"]["stars"], rerun["step_metrics"]["stars"]["stars"]
  assert after["loss_history"] == before["loss_history"]  # restored from the checkpoint, not lost or retrained
  assert 0 < after["wall_time_s"] <= before["wall_time_s"]  # the checkpointed total
  assert after["monitor"] == before["monitor"]  # the same monitor history and selection
  assert {k: rerun[k] for k in ("knn1", "linear")} == {k: results[k] for k in ("knn1", "linear")}


def test_bad_dataset_path_names_the_file_and_key(tmp_path):
  proc = _main(tmp_path / "run", tmp_path / "data", f"--config.data.path={tmp_path}/missing.npz")
  assert proc.returncode != 0
  assert "missing.npz" in proc.stderr and "data.path" in proc.stderr


def test_evaluate_names_the_missing_checkpoint_and_key(tmp_path):
  proc = _main(
    tmp_path / "eval",
    tmp_path / "data",
    f"--config.evaluate.stage1={tmp_path}/nowhere",
    "--config.evaluate.stars=",
    config="configs/synthetic.py:evaluate,tiny",
  )
  assert proc.returncode != 0
  assert "nowhere" in proc.stderr and "evaluate.stage1" in proc.stderr


def test_a_second_run_on_a_busy_workdir_is_refused(tmp_path):
  (tmp_path / "run").mkdir()
  with workdir_lock.hold(tmp_path / "run"):
    proc = _main(tmp_path / "run", tmp_path / "data")
  assert proc.returncode == 2
  assert "is in use by another run" in proc.stderr and f'"pid": {os.getpid()}' in proc.stderr
  assert not (tmp_path / "run" / "results.json").exists()


def test_a_diverging_run_stops_with_one_line_and_exit_code_1(tmp_path):
  """A learning rate a million times too high: the run stops at the first non-finite loss, names that step, and
  keeps its last finite checkpoint (nothing non-finite saved)."""
  proc = _main(
    tmp_path / "run",
    tmp_path / "data",
    "--config.steps.stage1.pretrain.optim.lr=1e3",
    "--config.steps.stage1.pretrain.checkpoint_every_steps=1",
  )
  assert proc.returncode == 1, proc.stderr[-3000:]
  match = re.search(
    r"a non-finite loss or gradient \(NaN / inf\) at step (\d+);.*checkpoint \((\d+|None)\)", proc.stderr
  )
  assert match, proc.stderr[-3000:]
  assert "optim.lr" in proc.stderr and "Traceback" not in proc.stderr
  assert not (tmp_path / "run" / "results.json").exists()


def test_an_unknown_config_key_is_one_line_naming_the_keys_there(tmp_path):
  proc = _main(tmp_path / "run", tmp_path / "data", "--config.steps.stage1.pretrain.optim.learning_rate=1e-3")
  assert proc.returncode == 2
  lines = proc.stderr.strip().splitlines()
  assert len(lines) == 1 and "has no key 'steps.stage1.pretrain.optim.learning_rate'" in lines[0]
  assert "lr" in lines[0]
  assert not (tmp_path / "run").exists()


def test_unknown_override_accepts_every_key_of_the_config():
  config = f"--config={REPO / 'configs' / 'synthetic.py'}"
  overrides = [
    "--config.data.window=16",
    "--config.steps.stars.stars.monitor.ks=(1,3)",
    "--config.steps.linear_stars.linear.optim.lr=0.2",
  ]
  assert main_module.unknown_override([config, *overrides]) is None
  problem = main_module.unknown_override([config, "--config.steps.stars.stars.queue.length=3"])
  assert "has no key 'steps.stars.stars.queue.length'" in problem


def test_a_full_disk_is_recognised_through_chained_errors():
  assert main_module._disk_full(OSError(errno.ENOSPC, "No space left on device"))
  assert main_module._disk_full(ValueError('RESOURCE_EXHAUSTED: Error writing "params.w/0" in OCDBT database'))
  try:
    try:
      raise OSError(errno.ENOSPC, "full")
    except OSError as inner:
      raise RuntimeError("save failed") from inner
  except RuntimeError as outer:
    assert main_module._disk_full(outer)
  assert not main_module._disk_full(ValueError("data.path not found"))
