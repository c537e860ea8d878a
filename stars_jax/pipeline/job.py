"""The `pipeline` job: plan (checks and measured estimates, WORKDIR/plan.json), then every enabled step in order
under WORKDIR/<step>/, then WORKDIR/report.md and the results (our numbers next to the published ones).

A step is complete when WORKDIR/<step>/results.json exists (written atomically, after its results): a relaunch
skips it, provided the settings that change its numbers are the ones it ran with. An interrupted training step
resumes from WORKDIR/<step>/checkpoints (the runner checkpoints at SIGTERM), so relaunching the same command
continues where it stopped. Each attempt's wall time is kept in WORKDIR/<step>/attempts.json; a step's wall time
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
from stars_jax.data import validate
from stars_jax.evaluate import preflight, report
from stars_jax.pipeline import estimate, inputs, run_step, steps
from stars_jax.pipeline.steps import Step

ATTEMPTS = "attempts.json"


def _now() -> str:
  return datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")


def _devices() -> dict[str, Any]:
  return {"device_kind": jax.devices()[0].device_kind, "devices": jax.device_count()}


def _write(path: pathlib.Path, payload: Any) -> None:
  if jax.process_index() == 0:
    path.parent.mkdir(parents=True, exist_ok=True)
    io.write_json_atomic(path, payload)


def completed(step: Step, allow_change: bool) -> dict[str, Any] | None:
  """The step's saved results if it is complete, else None. A complete step whose result-changing settings
  differ from the config's is refused (listing them) unless `allow_change`."""
  if not step.results_path.is_file():
    return None
  try:
    saved = json.loads(step.results_path.read_text())
  except ValueError as e:
    raise ValueError(f"{step.results_path}: not readable JSON ({e}); delete it to rerun step {step.name}") from e
  now = json.loads(json.dumps(step.settings(), default=str))
  before = saved["settings"]
  changed = [k for k in sorted(set(now) | set(before)) if before.get(k) != now.get(k)]
  diff = [f"{k}: {before.get(k)!r} -> {now.get(k)!r}" for k in changed]
  if diff and not allow_change:
    raise ValueError(
      f"step {step.name} is complete ({step.results_path}) with other settings that change its results "
      f"({'; '.join(diff)}): relaunch with those, delete {step.workdir} to rerun it, or use another --workdir"
    )
  return saved


def _check_inputs(step: Step, by_name: dict[str, Step], done: set[str], shapes) -> dict[str, Any]:
  """Each input checkpoint of a step that is to run: an explicit directory, or an upstream step's output that
  exists or will be made by an enabled step before it. Returns {encoder: the checked path and checkpoint step, or
  where it will come from}."""
  checked: dict[str, Any] = {}
  for encoder, path in step.inputs.items():
    if path is None:
      checked[encoder] = "a random encoder"
      continue
    source = by_name.get(step.sources.get(encoder, ""))
    if source is not None and source.enabled and source.name not in done:
      checked[encoder] = f"made by step {source.name}: {path}"
      continue
    if source is not None and not source.enabled and not path.exists():
      raise inputs.InputError(
        f"steps.{step.name} reads {path}, the output of step {source.name}, which is disabled and has not run: "
        f"enable steps.{source.name} or set steps.{step.name}.input to a checkpoint directory"
      )
    checked[encoder] = inputs.check_checkpoint(path, run_step.config_key(step, encoder), shapes())
  return checked


def plan(config: ml_collections.ConfigDict, resolved: list[Step], mesh: jax.sharding.Mesh) -> dict[str, Any]:
  """Checks every input of the steps still to run, times a warm-up of each, and returns the plan (also for the
  steps already complete, shown as done)."""
  allow = config.allow_config_change
  by_name = {s.name: s for s in resolved}
  done = {s.name: r for s in resolved if s.enabled and (r := completed(s, allow)) is not None}
  datasets: dict[str, Any] = {}
  warmup = config.pipeline.warmup_steps
  entries = []
  for step in resolved:
    if not step.enabled or step.name in done or step.kind == "prepare":
      continue
    step = steps.available(step, by_name)
    if step.config.data.path not in datasets:
      validate.check_data_config(step.config.data, step.config.model.t_patch)  # before any data is made
      datasets[step.config.data.path] = inputs.dataset_summary(step)  # the files' layout, naming the step
      preflight.check_inputs(step.config)  # the data settings and content (finite, non-empty, held-out classes)
    summary = datasets[step.config.data.path]
    inputs.check_classes(step, summary)
    shapes = lambda step=step: inputs.encoder_shapes(step)  # noqa: E731
    step_inputs = _check_inputs(step, by_name, set(done), shapes)
    if warmup <= 0 and step.group and not (step.kind == "linear" and step.config.linear.mode == "cached"):
      estimate.build(step, mesh)  # its settings checked before an earlier step trains (the warm-up builds it too)
    entries.append((step, step_inputs))
  datasets = {p: {k: v for k, v in s.items() if k != "labels"} for p, s in datasets.items()}
  out = []
  pending = {s.name: i for s, i in entries}
  for step in resolved:
    entry: dict[str, Any] = {"name": step.name, "kind": step.kind, "workdir": str(step.workdir)}
    if not step.enabled:
      out.append({**entry, "status": "disabled"})
      continue
    if step.name in done:
      saved = done[step.name]
      out.append({**entry, "status": "done", "wall_s": saved["wall_s"], "estimate_s": None, **saved["device"]})
      continue
    entry["inputs"] = pending.get(step.name, {})
    resume = estimate.resume_step(step) if step.kind in steps.OUTPUTS else 0
    entry["status"] = f"resume from step {resume}" if resume else "to run"
    entry.update(_estimate(step, mesh, warmup))
    out.append(entry)
  todo = [e["estimate_s"] for e in out if e["status"] not in ("done", "disabled")]
  total = None if any(v is None for v in todo) else sum(todo)
  return {"created": _now(), **_devices(), "datasets": datasets, "steps": out, "estimate_total_s": total}


def _estimate(step: Step, mesh, warmup: int) -> dict[str, Any]:
  """The step's measured warm-up and estimate (estimate_s None when `pipeline.warmup_steps` is 0)."""
  if warmup <= 0:
    return {"estimate_s": None}
  logging.info("Plan: warming up step %s (%s)", step.name, step.kind)
  if step.kind == "prepare":
    return {"estimate_s": 0.0}  # its checks ran in the plan (plan_s); the step records them
  if step.kind in steps.FROZEN:
    return estimate.frozen(step, mesh, warmup, step.config.frozen.batch_size)
  if step.kind == "linear" and step.config.linear.mode == "cached":
    return estimate.frozen(step, mesh, warmup, step.config.linear.eval_batch_size)
  return estimate.training(step, mesh, warmup)


def _plan_table(p: dict[str, Any]) -> str:
  rows = [f"Plan on {p['devices']} x {p['device_kind']}:", f"  {'step':<14}{'kind':<10}{'status':<26}{'estimate':>10}"]
  for e in p["steps"]:
    est = e.get("estimate_s")
    shown = "" if est is None else f"{est / 60:.1f} min"
    rows.append(f"  {e['name']:<14}{e['kind']:<10}{e['status']:<26}{shown:>10}")
  if p["estimate_total_s"] is not None:
    rows.append(f"  total still to run: {p['estimate_total_s'] / 60:.1f} min")
  return "\n".join(rows)


def _run(step: Step, mesh, datasets, estimate_s: float | None, earlier, by_name: dict[str, Step]) -> dict[str, Any]:
  """Runs one step, keeping each attempt's wall time (also when it is interrupted); writes its results.json."""
  attempts_path = step.workdir / ATTEMPTS
  attempts = json.loads(attempts_path.read_text()) if attempts_path.is_file() else []
  attempt = {"started": _now(), "estimate_s": estimate_s, **_devices(), "outcome": "failed"}
  t = time.perf_counter()
  logging.info("Step %s (%s) under %s", step.name, step.kind, step.workdir)
  try:
    step.workdir.mkdir(parents=True, exist_ok=True)
    metrics = run_step.run(steps.available(step, by_name), mesh, datasets, earlier)
    attempt["outcome"] = "complete"
  except SystemExit as e:
    attempt["outcome"] = f"interrupted (exit {e.code})"
    raise
  finally:
    attempt["elapsed_s"] = time.perf_counter() - t
    _write(attempts_path, [*attempts, attempt])
  attempts.append(attempt)
  result = {
    "name": step.name,
    "kind": step.kind,
    "metrics": metrics,
    "wall_s": sum(a["elapsed_s"] for a in attempts),
    "attempts": attempts,
    "device": _devices(),
    "settings": json.loads(json.dumps(step.settings(), default=str)),
    "config": step.config.to_dict(),
    "finished": _now(),
  }
  _write(step.results_path, result)
  return result


def table(resolved: list[Step], metrics: dict[str, dict[str, Any]]) -> dict[str, Any]:
  """The pipeline's protocol table, {protocol: {encoder: value}} as report.md shows it: every probe, kNN and
  few-shot entry of the steps that ran, `linear` / `finetune` (best epoch) and `<kind>_last` (last epoch) of each
  downstream step under its input encoder's name, and the protocols the probes skipped (`skipped_protocols`)."""
  out: dict[str, Any] = {}
  for step in resolved:
    m = metrics.get(step.name)
    if m is None:
      continue
    if step.kind in ("linear", "finetune"):
      encoder = next(iter(step.inputs), step.name)
      out.setdefault(step.kind, {})[encoder] = m[step.kind]["best"]
      out.setdefault(f"{step.kind}_last", {})[encoder] = m[step.kind]["last"]
    elif step.kind in steps.FROZEN:
      for protocol, entry in m.items():
        if isinstance(entry, dict) and protocol not in ("clips",):
          out.setdefault(protocol, {}).update(entry)
  return out


def run(config: ml_collections.ConfigDict, workdir: pathlib.Path, mesh: jax.sharding.Mesh) -> dict[str, Any]:
  """The whole pipeline; returns what main writes to WORKDIR/results.json (with the config and devices): the
  protocol table (`table`, at the top level), each step's status (`steps`) and metrics (`step_metrics`), and for
  a paper row its comparison with the published numbers."""
  t0 = time.perf_counter()
  resolved = steps.resolve(config, workdir)
  the_plan = plan(config, resolved, mesh)
  the_plan["plan_s"] = time.perf_counter() - t0
  _write(workdir / "plan.json", the_plan)
  logging.info("%s\n(saved as %s)", _plan_table(the_plan), workdir / "plan.json")
  if config.pipeline.dry_run:
    return {"plan": the_plan}
  estimates = {e["name"]: e.get("estimate_s") for e in the_plan["steps"]}
  by_name = {s.name: s for s in resolved}
  results: dict[str, dict[str, Any]] = {}
  summary = []
  for step in resolved:
    if not step.enabled:
      summary.append({"name": step.name, "kind": step.kind, "status": "disabled"})
      continue
    saved = completed(step, config.allow_config_change)
    status = "skipped (complete)" if saved else "ran"
    if saved is None:
      earlier = {n: r["metrics"] for n, r in results.items()}
      saved = _run(step, mesh, the_plan["datasets"], estimates[step.name], earlier, by_name)
    else:
      logging.info("Step %s is complete (%s): skipped", step.name, step.results_path)
    results[step.name] = saved
    last = saved["attempts"][-1] if saved["attempts"] else {}
    summary.append(
      {
        "name": step.name,
        "kind": step.kind,
        "status": status,
        "wall_s": saved["wall_s"],
        "estimate_s": estimates[step.name] if status == "ran" else last.get("estimate_s"),
        **saved["device"],
      }
    )
  metrics = {n: r["metrics"] for n, r in results.items()}
  out: dict[str, Any] = {**table(resolved, metrics)}
  if "paper" in config:
    ours = report.our_numbers(metrics, {s.name: s.kind for s in resolved})
    out["paper"] = config.paper.to_dict()
    out["comparison"] = report.compare(config.paper.dataset, config.paper.split, ours)
  out.update(
    steps=summary,
    estimate_total_s=the_plan["estimate_total_s"],
    wall_total_s=time.perf_counter() - t0,
    step_metrics=metrics,
  )
  text = report.render({**out, "config": config.to_dict()})
  if jax.process_index() == 0:
    io.write_text_atomic(workdir / "report.md", text)
  logging.info("Report (%s):\n%s", workdir / "report.md", text)
  return out
