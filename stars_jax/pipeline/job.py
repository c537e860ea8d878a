"""The `pipeline` job: plan (checks and measured estimates, WORKDIR/plan.json), then every enabled stage in order
under WORKDIR/<stage>/, then WORKDIR/report.md and the results (our numbers next to the published ones).

A stage is complete when WORKDIR/<stage>/results.json exists (written atomically, after its results): a relaunch
skips it, provided the settings that change its numbers are the ones it ran with. An interrupted training stage
resumes from WORKDIR/<stage>/checkpoints (the runner checkpoints at SIGTERM), so relaunching the same command
continues where it stopped. Each attempt's wall time is kept in WORKDIR/<stage>/attempts.json; a stage's wall time
is their sum.
"""

import datetime
import json
import logging
import pathlib
import time
from typing import Any

import jax
import ml_collections

from stars_jax import io
from stars_jax.pipeline import estimate, inputs, published, run_stage, stages
from stars_jax.pipeline.stages import Stage

ATTEMPTS = "attempts.json"


def _now() -> str:
  return datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")


def _devices() -> dict[str, Any]:
  return {"device_kind": jax.devices()[0].device_kind, "devices": jax.device_count()}


def _write(path: pathlib.Path, payload: Any) -> None:
  if jax.process_index() == 0:
    path.parent.mkdir(parents=True, exist_ok=True)
    io.write_json_atomic(path, payload)


def completed(stage: Stage, allow_change: bool) -> dict[str, Any] | None:
  """The stage's saved results if it is complete, else None. A complete stage whose result-changing settings
  differ from the config's is refused (listing them) unless `allow_change`."""
  if not stage.results_path.is_file():
    return None
  try:
    saved = json.loads(stage.results_path.read_text())
  except ValueError as e:
    raise ValueError(f"{stage.results_path}: not readable JSON ({e}); delete it to rerun stage {stage.name}") from e
  now = json.loads(json.dumps(stage.settings(), default=str))
  before = saved["settings"]
  changed = [k for k in sorted(set(now) | set(before)) if before.get(k) != now.get(k)]
  diff = [f"{k}: {before.get(k)!r} -> {now.get(k)!r}" for k in changed]
  if diff and not allow_change:
    raise ValueError(
      f"stage {stage.name} is complete ({stage.results_path}) with other settings that change its results "
      f"({'; '.join(diff)}): relaunch with those, delete {stage.workdir} to rerun it, or use another --workdir"
    )
  return saved


def _check_inputs(stage: Stage, by_name: dict[str, Stage], done: set[str], shapes) -> dict[str, Any]:
  """Each input checkpoint of a stage that is to run: an explicit directory, or an upstream stage's output that
  exists or will be made by an enabled stage before it. Returns {encoder: checked path and step, or 'pending'}."""
  checked: dict[str, Any] = {}
  for encoder, path in stage.inputs.items():
    source = by_name.get(encoder) if encoder in stage.upstream else None
    if source is not None and source.enabled and source.name not in done:
      checked[encoder] = f"made by stage {source.name}: {path}"
      continue
    if source is not None and not source.enabled and not path.exists():
      raise inputs.InputError(
        f"stages.{stage.name} reads {path}, the output of stage {source.name}, which is disabled and has not run: "
        f"enable stages.{source.name} or set stages.{stage.name}.input to a checkpoint directory"
      )
    checked[encoder] = inputs.check_checkpoint(path, run_stage._config_key(stage, encoder), shapes())
  return checked


def plan(config: ml_collections.ConfigDict, resolved: list[Stage], mesh: jax.sharding.Mesh) -> dict[str, Any]:
  """Checks every input of the stages still to run, times a warm-up of each, and returns the plan (also for the
  stages already complete, shown as done)."""
  allow = config.allow_config_change
  by_name = {s.name: s for s in resolved}
  done = {s.name: r for s in resolved if s.enabled and (r := completed(s, allow)) is not None}
  datasets: dict[str, Any] = {}
  entries = []
  for stage in resolved:
    if not stage.enabled or stage.name in done or stage.kind == "prepare":
      continue
    summary = datasets.get(stage.config.data.path) or inputs.dataset_summary(stage)
    datasets[stage.config.data.path] = summary
    inputs.check_classes(stage, summary)
    shapes = lambda stage=stage: inputs.encoder_shapes(stage)  # noqa: E731
    stage_inputs = _check_inputs(stage, by_name, set(done), shapes)
    entries.append((stage, stage_inputs))
  datasets = {p: {k: v for k, v in s.items() if k != "labels"} for p, s in datasets.items()}
  warmup = config.pipeline.warmup_steps
  out = []
  pending = {s.name: i for s, i in entries}
  for stage in resolved:
    entry: dict[str, Any] = {"name": stage.name, "kind": stage.kind, "workdir": str(stage.workdir)}
    if not stage.enabled:
      out.append({**entry, "status": "disabled"})
      continue
    if stage.name in done:
      saved = done[stage.name]
      out.append({**entry, "status": "done", "wall_s": saved["wall_s"], "estimate_s": None, **saved["device"]})
      continue
    entry["inputs"] = pending.get(stage.name, {})
    resume = estimate.resume_step(stage) if stage.kind in stages.OUTPUTS else 0
    entry["status"] = f"resume from step {resume}" if resume else "to run"
    entry.update(_estimate(stage, mesh, warmup))
    out.append(entry)
  todo = [e["estimate_s"] for e in out if e["status"] not in ("done", "disabled")]
  total = None if any(v is None for v in todo) else sum(todo)
  return {"created": _now(), **_devices(), "datasets": datasets, "stages": out, "estimate_total_s": total}


def _estimate(stage: Stage, mesh, warmup: int) -> dict[str, Any]:
  """The stage's measured warm-up and estimate (estimate_s None when `pipeline.warmup_steps` is 0)."""
  if warmup <= 0:
    return {"estimate_s": None}
  logging.info("Plan: warming up stage %s (%s)", stage.name, stage.kind)
  if stage.kind == "prepare":
    return {"estimate_s": 0.0}  # its checks ran in the plan (plan_s); the stage records them
  if stage.kind in stages.FROZEN:
    return estimate.frozen(stage, mesh, warmup, stage.config.frozen.batch_size)
  if stage.kind == "linear" and stage.config.linear.mode == "cached":
    return estimate.frozen(stage, mesh, warmup, stage.config.linear.eval_batch_size)
  return estimate.training(stage, mesh, warmup)


def _plan_table(p: dict[str, Any]) -> str:
  rows = [f"Plan on {p['devices']} x {p['device_kind']}:", f"  {'stage':<14}{'kind':<10}{'status':<26}{'estimate':>10}"]
  for e in p["stages"]:
    est = e.get("estimate_s")
    shown = "" if est is None else f"{est / 60:.1f} min"
    rows.append(f"  {e['name']:<14}{e['kind']:<10}{e['status']:<26}{shown:>10}")
  if p["estimate_total_s"] is not None:
    rows.append(f"  total still to run: {p['estimate_total_s'] / 60:.1f} min")
  return "\n".join(rows)


def _run(stage: Stage, mesh, datasets: dict[str, Any], estimate_s: float | None) -> dict[str, Any]:
  """Runs one stage, keeping each attempt's wall time (also when it is interrupted); writes its results.json."""
  attempts_path = stage.workdir / ATTEMPTS
  attempts = json.loads(attempts_path.read_text()) if attempts_path.is_file() else []
  attempt = {"started": _now(), "estimate_s": estimate_s, **_devices(), "outcome": "failed"}
  t = time.perf_counter()
  logging.info("Stage %s (%s) under %s", stage.name, stage.kind, stage.workdir)
  try:
    stage.workdir.mkdir(parents=True, exist_ok=True)
    metrics = run_stage.run(stage, mesh, datasets)
    attempt["outcome"] = "complete"
  except SystemExit as e:
    attempt["outcome"] = f"interrupted (exit {e.code})"
    raise
  finally:
    attempt["elapsed_s"] = time.perf_counter() - t
    _write(attempts_path, [*attempts, attempt])
  attempts.append(attempt)
  result = {
    "name": stage.name,
    "kind": stage.kind,
    "metrics": metrics,
    "wall_s": sum(a["elapsed_s"] for a in attempts),
    "attempts": attempts,
    "device": _devices(),
    "settings": json.loads(json.dumps(stage.settings(), default=str)),
    "config": stage.config.to_dict(),
    "finished": _now(),
  }
  _write(stage.results_path, result)
  return result


def _note(resolved: list[Stage]) -> str:
  """What the numbers are: units, sources, and how the STARS stages selected their state."""
  splits = sorted({s.config.stars.monitor.split for s in resolved if s.kind == "tune" and s.enabled})
  selection = f" The STARS stages keep the state their kNN monitor selects on the '{'/'.join(splits)}' split" * bool(
    splits
  )
  return (
    f"Top-1 accuracy in percent on the test split; differences in points. Published: {published.STARS_SOURCE}; "
    f"MAMP stage 1: {published.MAMP_SOURCE}; '—': not published there.{selection}"
    + (" (the official selection is on the test split, 'test')." if splits else "")
  )


def run(config: ml_collections.ConfigDict, workdir: pathlib.Path, mesh: jax.sharding.Mesh) -> dict[str, Any]:
  """The whole pipeline; returns what main writes to WORKDIR/results.json (with the config and devices)."""
  t0 = time.perf_counter()
  resolved = stages.resolve(config, workdir)
  the_plan = plan(config, resolved, mesh)
  the_plan["plan_s"] = time.perf_counter() - t0
  _write(workdir / "plan.json", the_plan)
  logging.info("%s\n(saved as %s)", _plan_table(the_plan), workdir / "plan.json")
  if config.pipeline.dry_run:
    return {"plan": the_plan}
  estimates = {e["name"]: e.get("estimate_s") for e in the_plan["stages"]}
  results: dict[str, dict[str, Any]] = {}
  summary = []
  for stage in resolved:
    if not stage.enabled:
      summary.append({"name": stage.name, "kind": stage.kind, "status": "disabled"})
      continue
    saved = completed(stage, config.allow_config_change)
    status = "skipped (complete)" if saved else "ran"
    if saved is None:
      saved = _run(stage, mesh, the_plan["datasets"], estimates[stage.name])
    else:
      logging.info("Stage %s is complete (%s): skipped", stage.name, stage.results_path)
    results[stage.name] = saved
    last = saved["attempts"][-1] if saved["attempts"] else {}
    summary.append(
      {
        "name": stage.name,
        "kind": stage.kind,
        "status": status,
        "wall_s": saved["wall_s"],
        "estimate_s": estimates[stage.name] if status == "ran" else last.get("estimate_s"),
        **saved["device"],
      }
    )
  kinds = {s.name: s.kind for s in resolved}
  ours = published.our_numbers({n: r["metrics"] for n, r in results.items()}, kinds)
  comparison = published.compare(config.paper.dataset, config.paper.split, ours)
  title = f"Paper row: {config.paper.dataset} {config.paper.split}"
  text = published.report(title, comparison, summary, _note(resolved))
  if jax.process_index() == 0:
    io.write_text_atomic(workdir / "report.md", text)
  logging.info("Report (%s):\n%s", workdir / "report.md", text)
  return {
    "paper": config.paper.to_dict(),
    "comparison": comparison,
    "stages": summary,
    "estimate_total_s": the_plan["estimate_total_s"],
    "wall_total_s": time.perf_counter() - t0,
    "stage_metrics": {n: r["metrics"] for n, r in results.items()},
  }
