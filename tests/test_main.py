"""The user-facing entry point, end to end on a tiny synthetic run: results.json, falling loss, resume."""
import json
import os
import subprocess
import sys


TINY = [
    "--config.data.synthetic.num_classes=6", "--config.data.held_out_classes=(1,4)",
    "--config.data.synthetic.num_subjects=4",
    "--config.data.synthetic.num_cameras=2", "--config.data.synthetic.num_repetitions=1",
    "--config.data.window=16", "--config.data.num_threads=1",
    "--config.model.dim=32", "--config.model.depth=2", "--config.model.decoder_dim=32",
    "--config.model.decoder_depth=1", "--config.batch_size=8", "--config.optim.epochs=12",
    "--config.optim.warmup_epochs=1", "--config.log_every_steps=3", "--config.checkpoint_every_steps=12",
    "--config.probe.batch_size=16",
    "--config.stars.epochs=2", "--config.stars.batch_size=8", "--config.stars.head_hidden_dim=32",
    "--config.stars.queue.size=20", "--config.stars.monitor.batch_size=16",
    "--config.stars.monitor.val_fraction=0.25", "--config.stars.monitor.ks=(1,3)",
    "--config.linear.epochs=2", "--config.linear.batch_size=8", "--config.linear.eval_batch_size=16",
]


def _main(workdir, data_dir, *extra, config="configs/synthetic.py"):
  env = {k: v for k, v in os.environ.items() if k != "XLA_FLAGS"}  # one CPU device, as a user runs it
  return subprocess.run(
      [sys.executable, "-m", "stars_jax.main", f"--config={config}", f"--workdir={workdir}",
       f"--config.data.synthetic.dir={data_dir}", *TINY, *extra],
      env=env, cwd=os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
      capture_output=True, text=True, timeout=600)


def test_main_job_end_to_end(tmp_path):
  proc = _main(tmp_path / "run", tmp_path / "data")
  assert proc.returncode == 0, proc.stderr[-3000:]
  results = json.loads((tmp_path / "run" / "results.json").read_text())
  history = results["pretrain"]["loss_history"]
  assert results["pretrain"]["steps"] == history[-1]["step"] == 36  # 24 seen-class clips / 8 x 12 epochs
  assert history[-1]["loss"] < 0.7 * history[0]["loss"]
  stars = results["stars"]
  assert stars["steps"] == stars["loss_history"][-1]["step"] == 6  # stage 2: 24 clips / 8 x 2 epochs
  assert stars["selection_split"] == "val" and [m["step"] for m in stars["monitor"]["history"]] == [3, 6]
  for metric in ("knn1", "knn10", "logistic", "fewshot", "oneshot"):
    assert set(results[metric]) == {"stage1", "stars", "stars_last", "random_init"}
    assert all(0.0 <= v <= 100.0 for v in results[metric].values())
  for metric in ("silhouette", "nmi", "ari"):
    assert all(-1.0 <= v <= 1.0 for v in results[metric].values())
  for metric in ("linear", "linear_last"):  # linear probe, 2 epochs: best over epochs and last
    assert set(results[metric]) == {"stage1", "stars"}
  assert all(results["linear"][k] >= results["linear_last"][k] for k in ("stage1", "stars"))
  report = (tmp_path / "run" / "report.md").read_text()
  assert "| knn1 |" in report and "| linear (best) |" in report and "| fewshot |" in report
  assert {p.name for p in (tmp_path / "run" / "plots").iterdir()} >= {"tsne_stage1.png", "tsne_stars.png",
                                                                         "confusion_knn1_stars.png"}
  assert results["config"]["model"]["dim"] == 32  # the config it ran, overrides included
  assert (tmp_path / "data" / "Synthetic_XSub.npz").is_file()
  for stage in ("stage1", "stars"):
    assert any((tmp_path / "run" / stage / "tensorboard").iterdir())
  assert any((tmp_path / "run" / "stars" / "best").iterdir())
  # Relaunching a finished run resumes at its last checkpoints and trains no further (evaluation skipped here).
  again = _main(tmp_path / "run", tmp_path / "data", "--config.probe.enabled=False")
  assert again.returncode == 0, again.stderr[-3000:]
  rerun = json.loads((tmp_path / "run" / "results.json").read_text())
  assert rerun["pretrain"]["loss_history"] == [] and rerun["stars"]["loss_history"] == []
  assert rerun["stars"]["monitor"] == results["stars"]["monitor"]  # the same monitor history and selection
  # The evaluate stage, on the saved encoders, reproduces the main job's frozen-feature protocols.
  run = tmp_path / "run"
  evaluate = _main(tmp_path / "eval", tmp_path / "data", f"--config.evaluate.stage1={run}/stage1/checkpoints",
                   f"--config.evaluate.stars={run}/stars/best", "--config.evaluate.plots=False",
                   config="configs/evaluate_synthetic.py")
  assert evaluate.returncode == 0, evaluate.stderr[-3000:]
  evaluated = json.loads((tmp_path / "eval" / "results.json").read_text())
  for metric in ("knn1", "knn5", "logistic", "fewshot", "oneshot", "silhouette", "nmi", "ari"):
    assert set(evaluated[metric]) == {"stage1", "stars", "random_init"}
    for name, value in evaluated[metric].items():
      assert abs(value - results[metric][name]) < 1e-6, (metric, name, value, results[metric][name])
  assert "| knn1 |" in (tmp_path / "eval" / "report.md").read_text()


def test_bad_dataset_path_names_the_file_and_key(tmp_path):
  proc = _main(tmp_path / "run", tmp_path / "data", f"--config.data.path={tmp_path}/missing.npz")
  assert proc.returncode != 0
  assert "missing.npz" in proc.stderr and "data.path" in proc.stderr


def test_evaluate_names_the_missing_checkpoint_and_key(tmp_path):
  proc = _main(tmp_path / "eval", tmp_path / "data", f"--config.evaluate.stage1={tmp_path}/nowhere",
               "--config.evaluate.stars=", config="configs/evaluate_synthetic.py")
  assert proc.returncode != 0
  assert "nowhere" in proc.stderr and "evaluate.stage1" in proc.stderr
