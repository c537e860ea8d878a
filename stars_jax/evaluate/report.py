"""`stars-jax report WORKDIR [WORKDIR ...]`: results.json as a markdown table, one row per protocol, one
column per encoder (stage1, stars, then the others, e.g. random_init, by name) and the stars - stage1 difference;
rows sorted by protocol.

A protocol entry is `{encoder: number}` or `{encoder: {"best": x, "last": y}}`; a `<protocol>_last` entry holds
the last-epoch values of `<protocol>`. Both become rows labelled "(best)" (best epoch, the official convention)
and "(last)" (last epoch, no selection on the test split). Other entries (config, training summaries) are
skipped. Several workdirs are several seeds: each cell is mean ± std (ddof 1) over the seeds that have it.
"""

import argparse
import json
import pathlib
import sys
from collections.abc import Mapping, Sequence

from stars_jax import io
from stars_jax.evaluate.fewshot import mean_std

Cells = dict[str, dict[str, float]]  # row -> encoder -> value

_UNITS = "Accuracies in percent (test split); silhouette, NMI and ARI as fractions (test features)."
# Title and note of report.md per job (config.stage); the one place both the job and `stars-jax report` read.
_REPORTS: dict[str, tuple[str, str]] = {
  "pretrain_tune": (
    "Stage 1 (MAMP) vs tuned (STARS) encoder",
    f"{_UNITS} knn<k>, logistic, linear and clusters: seen classes; fewshot (kNN-1) and oneshot: classes held "
    "out of both training stages. stars: the state selected by the kNN monitor on a validation split carved "
    "from the training set; linear (best): best epoch on the test split (the official convention); linear "
    "(last): last epoch.",
  ),
  "ablation": (
    "Tuning objectives from one stage-1 encoder",
    f"{_UNITS} knn<k>, logistic and clusters: seen classes; fewshot (kNN-1) and oneshot: classes held out of "
    "both training stages. stage1: the MAMP encoder every objective starts from; nnclr (STARS), moco, dino: the "
    "state each tuning run's kNN monitor selected on a validation split carved from the training set.",
  ),
  "evaluate": (
    "Frozen-feature protocols",
    f"{_UNITS} knn<k>, logistic and clusters: classes outside data.held_out_classes; fewshot (kNN-1: bank = "
    "their training clips, queries = their test clips) and oneshot: the held-out classes.",
  ),
}
_DEFAULT_REPORT = (
  "Results",
  "Accuracies in percent; silhouette, NMI and ARI as fractions. (best): best epoch "
  "(the official convention, selected on the test split); (last): last epoch.",
)


def _is_number(value) -> bool:
  return isinstance(value, (int, float)) and not isinstance(value, bool)


def _is_best_last(value) -> bool:
  return isinstance(value, Mapping) and set(value) == {"best", "last"} and all(map(_is_number, value.values()))


def _cells(results: Mapping) -> Cells:
  """The table's rows of one results.json, sorted by protocol, `X_last` placed right after `X` (sorted, not in
  file order, so a job's report and `stars-jax report` on its results.json, written with sorted keys, agree)."""
  rows: Cells = {}
  for protocol, entry in sorted(results.items()):
    if not isinstance(entry, Mapping) or not entry:
      continue
    if not all(_is_number(v) or _is_best_last(v) for v in entry.values()):
      continue
    for name, value in entry.items():
      if _is_number(value):
        rows.setdefault(protocol, {})[name] = float(value)
      else:
        rows.setdefault(f"{protocol} (best)", {})[name] = float(value["best"])
        rows.setdefault(f"{protocol} (last)", {})[name] = float(value["last"])
  ordered: Cells = {}
  for row, values in rows.items():
    if row.endswith("_last") and row[: -len("_last")] in rows:
      continue
    if f"{row}_last" in rows:
      ordered[f"{row} (best)"] = values
      ordered[f"{row} (last)"] = rows[f"{row}_last"]
    else:
      ordered[row] = values
  return ordered


def _format(values: list[float], runs: int, decimals: int, sign: str = "") -> str:
  if not values:
    return "–"
  if len(values) == 1:
    text = f"{values[0]:{sign}.{decimals}f}"
  else:
    mean, std = mean_std(values)
    text = f"{mean:{sign}.{decimals}f} ± {std:.{decimals}f}"
  return text if len(values) == runs else f"{text} (n={len(values)})"


def markdown_table(results: Mapping | Sequence[Mapping], columns: Sequence[str] = ("stage1", "stars")) -> str:
  """Markdown table of one results dict, or of a list of them (seeds: cells are mean ± std). Columns: those of
  `columns` present, Δ = columns[-1] - columns[0] (per seed, then averaged) when both are, then the other
  encoders sorted by name. Values with |x| <= 1 in the whole row get 3 decimals, others 2."""
  runs = [_cells(results)] if isinstance(results, Mapping) else [_cells(r) for r in results]
  rows = list(dict.fromkeys(row for run in runs for row in run))
  present = list(dict.fromkeys(name for run in runs for row in run.values() for name in row))
  leading = [c for c in columns if c in present]
  extras = sorted(n for n in present if n not in columns)
  delta = len(columns) > 1 and columns[0] in present and columns[-1] in present
  header = ["protocol", *leading, *([f"Δ ({columns[-1]} − {columns[0]})"] if delta else []), *extras]
  lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
  for row in rows:
    cells = {n: [run[row][n] for run in runs if n in run.get(row, {})] for n in leading + extras}
    decimals = 3 if all(abs(v) <= 1 for values in cells.values() for v in values) else 2
    out = [row, *(_format(cells[n], len(runs), decimals) for n in leading)]
    if delta:
      diffs = [
        run[row][columns[-1]] - run[row][columns[0]]
        for run in runs
        if columns[0] in run.get(row, {}) and columns[-1] in run.get(row, {})
      ]
      out.append(_format(diffs, len(runs), decimals, sign="+"))
    out += [_format(cells[n], len(runs), decimals) for n in extras]
    lines.append("| " + " | ".join(out) + " |")
  return "\n".join(lines) + "\n"


def render(results: Mapping | Sequence[Mapping], stage: str | None, title: str = "") -> str:
  """report.md text of one results dict (or several: seeds) of a job with `config.stage` = stage."""
  default_title, note = _REPORTS.get(stage, _DEFAULT_REPORT)
  return f"# {title or default_title}\n\n{markdown_table(results)}\n{note}\n"


def _stage(results: Mapping) -> str | None:
  config = results.get("config")
  return config.get("stage") if isinstance(config, Mapping) else None


def _load(workdir: pathlib.Path) -> dict:
  path = workdir / "results.json"
  try:
    return json.loads(path.read_text())
  except json.JSONDecodeError as e:
    raise ValueError(f"{path}: not valid JSON ({e.msg} at line {e.lineno}, column {e.colno})") from None


def write_report(workdir: str | pathlib.Path, results: Mapping | None = None, stage: str | None = None) -> str:
  """Writes workdir/report.md (atomically) from `results` (default: workdir/results.json) of a `stage` job
  (default: the stage recorded in the results' config); returns its text."""
  workdir = pathlib.Path(workdir)
  results = _load(workdir) if results is None else results
  text = render(results, stage or _stage(results))
  io.write_text_atomic(workdir / "report.md", text)
  return text


def main(argv: list[str]) -> int:
  """One workdir: write and print its report.md. Several (seeds): print mean ± std per cell, write nothing."""
  parser = argparse.ArgumentParser(prog="stars-jax report", description=__doc__.split("\n\n")[0])
  parser.add_argument("workdirs", nargs="+", type=pathlib.Path, help="directories holding results.json")
  workdirs = parser.parse_args(argv).workdirs
  missing = [str(w) for w in workdirs if not (w / "results.json").is_file()]
  if missing:
    print(f"no results.json in: {', '.join(missing)}", file=sys.stderr)
    return 1
  try:
    runs = [_load(w) for w in workdirs]
  except ValueError as e:
    print(f"stars-jax report: {e}", file=sys.stderr)
    return 1
  if len(workdirs) == 1:
    print(write_report(workdirs[0], runs[0]), end="")
  else:
    default_title, _ = _REPORTS.get(_stage(runs[0]), _DEFAULT_REPORT)
    title = f"{default_title}, {len(workdirs)} seeds: " + ", ".join(map(str, workdirs))
    print(render(runs, _stage(runs[0]), title), end="")
  return 0
