"""results.json -> report.md: rows, Δ, best/last labels, skipped entries, seed aggregation, title per report kind
(also of run directories written before the pipeline ran every multi-stage job), a pipeline's steps, CLI."""

import json
import sys

import pytest

from stars_jax.evaluate import report as report_lib
from stars_jax.evaluate.report import main, markdown_table, render, write_report

RESULTS = {
  "config": {"seed": 0, "data": {"name": "synthetic"}},
  "pretrain": {"steps": 10, "loss_history": [{"loss": 1.0}]},
  "devices": ["cpu"],
  "flags": {"probe": True},
  "knn1": {"stage1": 70.0, "stars": 75.5, "random_init": 10.0},
  "linear": {"stage1": {"best": 80.0, "last": 79.0}, "stars": {"best": 82.0, "last": 81.25}},
  "finetune": {"stage1": 90.0},
  "finetune_last": {"stage1": 89.5},
  "nmi": {"stage1": 0.5, "stars": 0.625},
}

TABLE = """\
| protocol | stage1 | stars | Δ (stars − stage1) | random_init |
|---|---|---|---|---|
| finetune (best) | 90.00 | – | – | – |
| finetune (last) | 89.50 | – | – | – |
| knn1 | 70.00 | 75.50 | +5.50 | 10.00 |
| linear (best) | 80.00 | 82.00 | +2.00 | – |
| linear (last) | 79.00 | 81.25 | +2.25 | – |
| nmi | 0.500 | 0.625 | +0.125 | – |
"""


def test_table_of_one_run():
  assert markdown_table(RESULTS) == TABLE


def test_order_of_the_results_does_not_change_the_table():
  """A job's report (results in the order computed) equals `stars-jax report` on its results.json (sorted keys)."""
  reordered = {k: dict(reversed(list(v.items()))) if isinstance(v, dict) else v for k, v in reversed(RESULTS.items())}
  assert markdown_table(reordered) == TABLE
  extras = {"knn1": {"stage1": 1.0, "stars": 2.0, "stars_last": 3.0, "random_init": 4.0}}
  assert markdown_table(extras).splitlines()[0].endswith("| random_init | stars_last |")


def test_single_encoder_has_no_delta():
  table = markdown_table({"knn1": {"stage1": 70.0}, "stars": {"monitor": {"k10": 1.0}}})
  assert table == "| protocol | stage1 |\n|---|---|\n| knn1 | 70.00 |\n"


def test_seeds_are_mean_and_std():
  seed1 = {"knn1": {"stage1": 70.0, "stars": 74.0}, "ari": {"stage1": 0.25, "stars": 0.5}}
  seed2 = {"knn1": {"stage1": 72.0, "stars": 78.0}, "ari": {"stage1": 0.75}}
  lines = markdown_table([seed1, seed2]).splitlines()
  # knn1: stage1 71 ± sqrt(2); stars 76 ± sqrt(8); Δ per seed +4, +6 -> 5 ± sqrt(2). ari: stars in one seed only.
  assert lines[2] == "| ari | 0.500 ± 0.354 | 0.500 (n=1) | +0.250 (n=1) |"
  assert lines[3] == "| knn1 | 71.00 ± 1.41 | 76.00 ± 2.83 | +5.00 ± 1.41 |"


def test_write_report_and_cli(tmp_path, capsys):
  (tmp_path / "results.json").write_text(json.dumps(RESULTS))
  text = write_report(tmp_path)
  assert TABLE in text
  assert (tmp_path / "report.md").read_text() == text
  (tmp_path / "report.md").unlink()
  assert main([str(tmp_path)]) == 0
  assert (tmp_path / "report.md").read_text() == text
  assert capsys.readouterr().out == text
  assert not list(tmp_path.glob("*.tmp"))


@pytest.mark.parametrize(
  "recorded,title",
  [
    ({"job": "pipeline", "pipeline": {"report": "main"}}, "Stage 1 (MAMP) vs tuned (STARS) encoder"),
    ({"job": "pipeline", "pipeline": {"report": "ablation"}}, "Tuning objectives from one stage-1 encoder"),
    ({"job": "evaluate"}, "Frozen-feature protocols"),
    ({"job": "pretrain"}, "Results"),
    ({"stage": "pretrain_tune"}, "Stage 1 (MAMP) vs tuned (STARS) encoder"),  # written before `config.job`
    ({"stage": "ablation"}, "Tuning objectives from one stage-1 encoder"),
    ({"stage": "evaluate"}, "Frozen-feature protocols"),
    ({}, "Results"),
  ],
)
def test_title_follows_the_job_recorded_in_the_results(tmp_path, recorded, title):
  config = {**RESULTS["config"], **recorded}
  text = write_report(tmp_path, {**RESULTS, "config": config})  # given results: no results.json needed
  assert text.startswith(f"# {title}\n\n{TABLE}\n")
  assert (tmp_path / "report.md").read_text() == text
  assert not (tmp_path / "results.json").exists()


def test_explicit_kind_and_title_win(tmp_path):
  recorded = {**RESULTS, "config": {**RESULTS["config"], "job": "evaluate"}}
  assert write_report(tmp_path, recorded, kind="main") == render(RESULTS, "main")
  assert render(RESULTS, "main").startswith("# Stage 1 (MAMP) vs tuned (STARS) encoder\n")
  assert render(RESULTS, "evaluate", title="Mine").startswith(f"# Mine\n\n{TABLE}\n")


def test_cli_several_seeds_and_missing(tmp_path, capsys):
  for seed, acc in enumerate([60.0, 64.0]):
    (tmp_path / str(seed)).mkdir()
    (tmp_path / str(seed) / "results.json").write_text(json.dumps({"knn1": {"stage1": acc}}))
  assert main([str(tmp_path / "0"), str(tmp_path / "1")]) == 0
  out = capsys.readouterr().out
  assert "| knn1 | 62.00 ± 2.83 |" in out
  assert out.startswith(f"# Results, 2 seeds: {tmp_path / '0'}, {tmp_path / '1'}\n")
  assert not (tmp_path / "0" / "report.md").exists()
  assert main([str(tmp_path / "0"), str(tmp_path / "missing")]) == 2


def test_subcommand_entry_point(tmp_path, monkeypatch, capsys):
  from stars_jax.main import run

  (tmp_path / "results.json").write_text(json.dumps(RESULTS))
  monkeypatch.setattr(sys, "argv", ["stars-jax", "report", str(tmp_path)])
  with pytest.raises(SystemExit) as exit_info:
    run()
  assert exit_info.value.code == 0
  assert TABLE in capsys.readouterr().out and (tmp_path / "report.md").is_file()


def test_broken_results_json_is_one_line_naming_the_file(tmp_path, capsys):
  (tmp_path / "results.json").write_text('{"knn1": {"stage1": 70.0,')
  assert main([str(tmp_path)]) == 2
  err = capsys.readouterr().err.strip()
  assert err.startswith("stars-jax report: ") and f"{tmp_path}/results.json: not valid JSON" in err
  assert len(err.splitlines()) == 1


STEP = {"name": "stage1", "kind": "pretrain", "status": "ran", "wall_s": 90.0, "estimate_s": None}


def test_a_pipeline_report_lists_its_steps_and_the_protocols_it_could_not_run():
  results = {
    **RESULTS,
    "config": {"job": "pipeline", "pipeline": {"report": "main"}},
    "steps": [{**STEP, "devices": 1, "device_kind": "cpu"}, {"name": "linear", "kind": "linear", "status": "disabled"}],
    "skipped_protocols": {"silhouette": "needs 2 <= classes <= clips - 1 on the test split"},
  }
  text = render(results)
  assert text.startswith(f"# Stage 1 (MAMP) vs tuned (STARS) encoder\n\n{TABLE}\n")
  assert "Not run (the splits are too small): silhouette: needs 2 <= classes <= clips - 1" in text
  assert "| stage1 | pretrain | ran | 1.5 min | — | 1 × cpu |" in text and "| linear | linear | disabled | — |" in text


def test_a_paper_row_written_before_config_job_still_reports():
  """The layout of a paper-row run directory before the pipeline ran every job: config.stage, stages, comparison."""
  comparison = report_lib.compare("ntu60", "xsub", {"knn1": 80.4, "linear": 86.6})
  stars_step = {"kind": "tune", "enabled": True, "stars": {"monitor": {"split": "val"}}}
  old = {"config": {"stage": "pipeline", "stages": {"tune_merged": stars_step}}, "comparison": comparison}
  old.update(paper={"dataset": "ntu60", "split": "xsub"}, stages=[STEP])
  text = render(old)
  assert text.startswith("# Paper row: ntu60 xsub\n")
  assert "| kNN-1 (knn_eval, SPEC §4.10) | 80.40 | 79.90 | +0.50 | — |" in text
  assert "| 86.60 | 87.10 | -0.50 | 85.00 |" in text  # linear: ours, STARS' and MAMP's published numbers
  assert "selects on the 'val' split" in text and "| stage1 | pretrain | ran | 1.5 min |" in text
