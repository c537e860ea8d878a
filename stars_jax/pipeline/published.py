"""The published numbers a paper row is compared with, and report.md.

Only numbers the official repositories publish (SPEC §5.1, §5.2): the STARS README's linear, kNN-1 and fine-tune
top-1 for NTU-60 XSub / XView and NTU-120 XSub / XSet, and the MAMP README's linear and fine-tune top-1 of its
released stage-1 checkpoints. Neither repository publishes PKU-MMD, few-shot or semi-supervised numbers (the
papers' tables are not reproduced in SPEC), so those rows have no published value here.
"""

from typing import Any

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


def our_numbers(metrics: dict[str, dict[str, Any]], kinds: dict[str, str]) -> dict[str, float]:
  """{protocol: value} of a pipeline's stage metrics (stage name -> metrics; kinds: stage name -> kind): the
  last stage of each kind counts, and kNN / few-shot report their main encoder (the stage's `input`)."""
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


def compare(dataset: str, split: str, ours: dict[str, float]) -> dict[str, dict[str, Any]]:
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


def _fmt(value: float | None, sign: bool = False) -> str:
  return "—" if value is None else (f"{value:+.2f}" if sign else f"{value:.2f}")


def _duration(seconds: float | None) -> str:
  if seconds is None:
    return "—"
  return f"{seconds / 3600:.2f} h" if seconds >= 3600 else f"{seconds / 60:.1f} min"


def report(title: str, comparison: dict[str, dict[str, Any]], stages: list[dict[str, Any]], note: str) -> str:
  """report.md: our numbers next to the published ones, then each stage's wall time, estimate and device."""
  lines = [f"# {title}", "", "| protocol | ours | published | ours − published | MAMP stage 1 (published) |"]
  lines.append("|---|---|---|---|---|")
  for protocol, e in sorted(comparison.items(), key=lambda kv: list(PROTOCOLS).index(kv[0])):
    lines.append(
      f"| {PROTOCOLS[protocol]} | {_fmt(e['ours'])} | {_fmt(e['published'])} | {_fmt(e['difference'], True)} "
      f"| {_fmt(e.get('mamp_stage1_published'))} |"
    )
  lines += ["", note, "", "| stage | kind | status | wall time | plan estimate | device |", "|---|---|---|---|---|---|"]
  for s in stages:
    device = f"{s['devices']} × {s['device_kind']}" if s.get("device_kind") else "—"
    lines.append(
      f"| {s['name']} | {s['kind']} | {s['status']} | {_duration(s.get('wall_s'))} | "
      f"{_duration(s.get('estimate_s'))} | {device} |"
    )
  return "\n".join(lines) + "\n"
