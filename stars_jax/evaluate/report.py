"""Every job's report.md, and `stars-jax report WORKDIR [WORKDIR ...]` (the same from results.json, also of run
directories written before the pipeline ran every multi-stage job): the table of protocols (rows) and encoders
(columns: stage1, stars, then the others, e.g. random_init, by name) with the stars - stage1 difference; a paper
row's comparison with the published numbers above it; the protocols the splits were too small for; a pipeline's
steps (wall time, estimate, device) below.

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
from typing import Any

from stars_jax import io
from stars_jax.evaluate.fewshot import mean_std

Cells = dict[str, dict[str, float]]  # row -> encoder -> value

_UNITS = "Accuracies in percent (test split); silhouette, NMI and ARI as fractions (test features)."
# Title and note of report.md per report kind (a pipeline's `pipeline.report`, or the single-stage evaluate job).
REPORTS: dict[str, tuple[str, str]] = {
  "main": (
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
  "paper": ("Paper row", _UNITS),
}
# The report kind of results written before `config.job` (their `config.stage`).
_LEGACY_KINDS = {"pretrain_tune": "main", "ablation": "ablation", "evaluate": "evaluate", "pipeline": "paper"}
_DEFAULT_REPORT = (
  "Results",
  "Accuracies in percent; silhouette, NMI and ARI as fractions. (best): best epoch "
  "(the official convention, selected on the test split); (last): last epoch.",
)

# The published numbers a paper row is compared with: only those the official repositories publish (SPEC §5.1,
# §5.2), the STARS README's linear, kNN-1 and fine-tune top-1 for NTU-60 XSub / XView and NTU-120 XSub / XSet,
# and the MAMP README's linear and fine-tune top-1 of its released stage-1 checkpoints. Neither publishes PKU-MMD,
# few-shot or semi-supervised numbers (the papers' tables are not reproduced in SPEC).
ROWS = (("ntu60", "xsub"), ("ntu60", "xview"), ("ntu120", "xsub"), ("ntu120", "xset"))
STARS_SOURCE = "STARS README, Results (SPEC §5.1)"
MAMP_SOURCE = "MAMP README, released stage-1 checkpoints (SPEC §5.2)"
STARS = {
  "linear": dict(zip(ROWS, (87.1, 90.9, 79.9, 80.8))),
  "knn1": dict(zip(ROWS, (79.9, 88.6, 67.6, 67.7))),
  "finetune": dict(zip(ROWS, (93.0, 97.5, 89.9, 91.4))),
}
MAMP = {
  "linear": dict(zip(ROWS, (85.0, 89.0, 78.1, 79.5))),
  "finetune": dict(zip(ROWS, (93.0, 97.5, 89.8, 91.5))),
}
PROTOCOLS = {
  "linear": "linear probe, best epoch (official: max over epochs on the test split)",
  "linear_last": "linear probe, last epoch",
  "knn1": "kNN-1 (knn_eval, SPEC §4.10)",
  "fewshot_knn1": "few-shot kNN-1 on unseen classes (SPEC §1.9)",
  "finetune": "fine-tune, best epoch",
  "finetune_last": "fine-tune, last epoch",
  "stage1_knn1": "kNN-1 of the stage-1 (MAMP) encoder",
}


def our_numbers(metrics: Mapping[str, Mapping[str, Any]], kinds: Mapping[str, str]) -> dict[str, float]:
  """{protocol: value} of a paper row's step metrics (step name -> metrics; kinds: step name -> kind): the last
  step of each kind counts, and kNN / few-shot report their main encoder (the step's `input`)."""
  ours: dict[str, float] = {}
  for name, m in metrics.items():
    kind = kinds[name]
    if kind in ("linear", "finetune"):
      ours[kind], ours[f"{kind}_last"] = float(m[kind]["best"]), float(m[kind]["last"])
    elif kind == "knn":
      ours["knn1"] = float(m["knn1"][m["encoder"]])
      for encoder, value in m["knn1"].items():
        if encoder != m["encoder"] and kinds.get(encoder) == "pretrain":
          ours["stage1_knn1"] = float(value)
    elif kind == "fewshot":
      ours["fewshot_knn1"] = float(m["fewshot_knn1"][m["encoder"]])
  return ours


def compare(dataset: str, split: str, ours: Mapping[str, float]) -> dict[str, dict[str, Any]]:
  """{protocol: {ours, published, difference (ours - published), source}} (published None where neither
  repository publishes the number), and the MAMP stage-1 number beside it where there is one."""
  row = (dataset, split)
  out = {}
  for protocol, value in ours.items():
    base = protocol.removesuffix("_last")
    published = STARS.get(base, {}).get(row) if protocol != "stage1_knn1" else None
    entry = {
      "ours": value,
      "published": published,
      "difference": None if published is None else value - published,
      "source": STARS_SOURCE if published is not None else "not published in the official repositories",
    }
    if base in MAMP and row in MAMP[base]:
      entry["mamp_stage1_published"] = MAMP[base][row]
    out[protocol] = entry
  return out


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


def _fmt(value: float | None, sign: bool = False) -> str:
  return "—" if value is None else (f"{value:+.2f}" if sign else f"{value:.2f}")


def _duration(seconds: float | None) -> str:
  if seconds is None:
    return "—"
  return f"{seconds / 3600:.2f} h" if seconds >= 3600 else f"{seconds / 60:.1f} min"


def _comparison_table(comparison: Mapping[str, Mapping[str, Any]]) -> list[str]:
  """A paper row's numbers next to the published ones (report kind 'paper')."""
  lines = ["| protocol | ours | published | ours − published | MAMP stage 1 (published) |", "|---|---|---|---|---|"]
  for protocol, e in sorted(comparison.items(), key=lambda kv: list(PROTOCOLS).index(kv[0])):
    lines.append(
      f"| {PROTOCOLS[protocol]} | {_fmt(e['ours'])} | {_fmt(e['published'])} | {_fmt(e['difference'], True)} "
      f"| {_fmt(e.get('mamp_stage1_published'))} |"
    )
  return lines


def _paper_note(config: Mapping) -> str:
  """What a paper row's numbers are: units, sources, and how its STARS steps selected their state."""
  steps = (config.get("steps") or config.get("stages") or {}).values()
  splits = sorted({s["stars"]["monitor"]["split"] for s in steps if s.get("kind") == "tune" and s.get("enabled")})
  selection = (
    f" The STARS steps keep the state their kNN monitor selects on the '{'/'.join(splits)}' split (the official "
    "selection is on the test split, 'test')."
  )
  return (
    f"Top-1 accuracy in percent on the test split; differences in points. Published: {STARS_SOURCE}; "
    f"MAMP stage 1: {MAMP_SOURCE}; '—': not published there." + (selection if splits else "")
  )


def _steps_table(steps: Sequence[Mapping[str, Any]]) -> list[str]:
  """Each pipeline step's status, wall time, plan estimate and device."""
  lines = ["| step | kind | status | wall time | plan estimate | device |", "|---|---|---|---|---|---|"]
  for s in steps:
    device = f"{s['devices']} × {s['device_kind']}" if s.get("device_kind") else "—"
    lines.append(
      f"| {s['name']} | {s['kind']} | {s['status']} | {_duration(s.get('wall_s'))} | "
      f"{_duration(s.get('estimate_s'))} | {device} |"
    )
  return lines


def render(results: Mapping | Sequence[Mapping], kind: str | None = None, title: str = "") -> str:
  """report.md text of one results dict (or several: seeds) of a job of report `kind` (default: the one its
  config records): the title, a paper row's comparison with the published numbers, the table of every protocol
  and encoder, the note, and a pipeline's steps (wall time, estimate, device)."""
  one = results if isinstance(results, Mapping) else results[0]
  kind = kind or report_kind(one)
  default_title, note = REPORTS.get(kind, _DEFAULT_REPORT)
  config = one.get("config") if isinstance(one.get("config"), Mapping) else {}
  if kind == "paper" and "paper" in one:
    default_title = f"Paper row: {one['paper']['dataset']} {one['paper']['split']}"
  lines = [f"# {title or default_title}", ""]
  if isinstance(results, Mapping) and "comparison" in results:
    lines += [*_comparison_table(results["comparison"]), "", _paper_note(config), ""]
  table = markdown_table(results)
  if table.count("\n") > 2:  # a header, its rule, and at least one row
    lines += [table, note, ""] if kind != "paper" else [table]
  elif kind != "paper":
    lines += [note, ""]
  skipped = results.get("skipped_protocols") if isinstance(results, Mapping) else None
  if isinstance(skipped, Mapping) and skipped:
    lines += [
      "Not run (the splits are too small): " + "; ".join(f"{p}: {why}" for p, why in sorted(skipped.items())),
      "",
    ]
  steps = one.get("steps", one.get("stages")) if isinstance(results, Mapping) else None
  if isinstance(steps, list):
    lines += [*_steps_table(steps), ""]
  return "\n".join(lines).rstrip("\n") + "\n"


def report_kind(results: Mapping) -> str | None:
  """The report kind of a results dict: its pipeline's `pipeline.report`, or its (single-stage) job; results
  written before `config.job` name it by their `config.stage`."""
  config = results.get("config")
  if not isinstance(config, Mapping):
    return None
  if "job" not in config:
    return _LEGACY_KINDS.get(config.get("stage"), config.get("stage"))
  if config["job"] == "pipeline":
    return config.get("pipeline", {}).get("report")
  return config["job"]


def _load(workdir: pathlib.Path) -> dict:
  path = workdir / "results.json"
  try:
    return json.loads(path.read_text())
  except json.JSONDecodeError as e:
    raise ValueError(f"{path}: not valid JSON ({e.msg} at line {e.lineno}, column {e.colno})") from None


def write_report(workdir: str | pathlib.Path, results: Mapping | None = None, kind: str | None = None) -> str:
  """Writes workdir/report.md (atomically) from `results` (default: workdir/results.json) of report `kind`
  (default: the one recorded in the results' config); returns its text."""
  workdir = pathlib.Path(workdir)
  results = _load(workdir) if results is None else results
  text = render(results, kind)
  io.write_text_atomic(workdir / "report.md", text)
  return text


def main(argv: list[str]) -> int:
  """One workdir: write and print its report.md. Several (seeds): print mean ± std per cell, write nothing."""
  parser = argparse.ArgumentParser(prog="stars-jax report", description=__doc__.split("\n\n")[0])
  parser.add_argument("workdirs", nargs="+", type=pathlib.Path, help="directories holding results.json")
  workdirs = parser.parse_args(argv).workdirs
  missing = [str(w) for w in workdirs if not (w / "results.json").is_file()]
  if missing:
    print(f"stars-jax report: no results.json in: {', '.join(missing)}", file=sys.stderr)
    return 2
  try:
    runs = [_load(w) for w in workdirs]
  except ValueError as e:
    print(f"stars-jax report: {e}", file=sys.stderr)
    return 2
  if len(workdirs) == 1:
    print(write_report(workdirs[0], runs[0]), end="")
  else:
    default_title, _ = REPORTS.get(report_kind(runs[0]), _DEFAULT_REPORT)
    title = f"{default_title}, {len(workdirs)} seeds: " + ", ".join(map(str, workdirs))
    print(render(runs, title=title), end="")
  return 0
