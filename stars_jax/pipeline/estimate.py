"""The plan's time per step on the devices present, from a short measured warm-up, never a constant.

A training stage is built exactly as its run builds it (settings checked, data opened, sharded state created,
step jitted with the runner's shardings); its step is compiled and `steps` further steps on real batches are
timed one at a time (each blocked on: XLA:CPU with forced devices can hang when sharded steps are dispatched
back to back). Its evaluation function (STARS monitor features, classifier logits) is timed per batch likewise,
and one checkpoint save of the warm-up state. The estimate of the remaining run is

  setup + step compile + remaining steps x step + evaluations x (batches per evaluation x eval batch)
  + eval compile + (checkpoint saves + restores) x save

where evaluations, saves and remaining steps follow the step's run length, intervals and newest checkpoint.
kNN, few-shot and probe steps time their encoder's feature batches and count the batches of their splits.
"""

import math
import pathlib
import statistics
import tempfile
import time
from typing import Any

import jax
import numpy as np

from stars_jax import sharding
from stars_jax.data import npz, sources
from stars_jax.data import pipeline as data_pipeline
from stars_jax.evaluate import features, probe
from stars_jax.models import factory
from stars_jax.pipeline.inputs import fewshot_classes
from stars_jax.pipeline.steps import Step
from stars_jax.train import checkpoint, classify, pretrain, runner, tune


def build(step: Step, mesh: jax.sharding.Mesh) -> runner.Stage:
  """The runner stage of a training kind, as its run builds it (settings are checked here)."""
  if step.kind == "pretrain":
    return pretrain.stage(step.config)
  if step.kind == "tune":
    return tune.stage(step.config, mesh)
  return classify.stage(step.config, None, step.kind, init={})


def resume_step(step: Step) -> int:
  """The step a relaunch resumes from: the newest complete checkpoint under WORKDIR/<step>/checkpoints, or 0."""
  directory = step.workdir / "checkpoints"
  steps = [int(p.name) for p in directory.iterdir() if p.name.isdigit()] if directory.is_dir() else []
  return max(steps, default=0)


def _multiples(every: int, start: int, total: int) -> int:
  """How many multiples of `every` lie in (start, total]."""
  return total // every - start // every


def _time_batches(fn: features.EmbedFn, variables: Any, split: npz.SkeletonSplit, batch_size: int, mesh, count: int):
  """(compile_s, seconds per batch) of fn(variables, batch) over the first 1 + `count` global eval batches of
  `split` (reading included, each blocked on; the batches are cycled when the split has fewer)."""
  batches = list(_take(_eval_batches(split, batch_size), 1 + count))
  times = []
  for i in range(1 + count):
    t = time.perf_counter()
    x = sharding.global_batch(batches[i % len(batches)]["x"], mesh)
    jax.block_until_ready(fn(variables, x))
    times.append(time.perf_counter() - t)
  return times[0], statistics.mean(times[1:])


def _eval_batches(split: npz.SkeletonSplit, batch_size: int):
  return data_pipeline.eval_batches(
    split, global_batch_size=batch_size, process_index=jax.process_index(), process_count=jax.process_count()
  )


def _take(iterator, n: int):
  for _, item in zip(range(n), iterator):
    yield item


def _save_seconds(state: Any, scratch: pathlib.Path) -> float:
  """Wall time of one checkpoint save (written and waited for) of `state` into a scratch directory."""
  with tempfile.TemporaryDirectory(dir=scratch, prefix=".estimate_") as tmp:
    ckpt = checkpoint.Checkpointer(pathlib.Path(tmp) / "checkpoints", keep=1)
    t = time.perf_counter()
    ckpt.save(state, {})
    ckpt.wait()
    seconds = time.perf_counter() - t
    ckpt.close()
  return seconds


def _batches(num_samples: int, batch_size: int) -> int:
  return math.ceil(num_samples / batch_size)


def _evaluation(step: Step, st: runner.Stage) -> tuple[int, int, int]:
  """(eval batch size, batches per evaluation, epochs between evaluations) of a training stage's evaluation hook
  (the STARS kNN monitor, the downstream test accuracy); batches 0 for a step without one. Their heads are small
  next to the encoder, so an evaluation batch is timed as the encoder's pooled features of one batch."""
  c = step.config
  if step.kind == "tune":
    m = c.stars.monitor
    test = len(sources.open_seen_split(c.data, "test")) if m.split == "test" else 0
    return m.batch_size, _batches(len(st.train_split), m.batch_size) + _batches(test, m.batch_size), m.every_epochs
  if step.kind in ("linear", "finetune"):
    g = c[step.kind]
    test = len(sources.open_seen_split(c.data, "test"))
    return g.eval_batch_size, _batches(test, g.eval_batch_size), g.eval_every_epochs
  return 0, 0, 1


def training(step: Step, mesh: jax.sharding.Mesh, steps: int) -> dict[str, Any]:
  """Measured warm-up and estimate of a training stage (pretrain, tune, linear, finetune)."""
  c = step.config
  g = c[step.group]
  t0 = time.perf_counter()
  st = build(step, mesh)
  spe, total = runner.run_length(g, len(st.train_split))
  start = min(resume_step(step), total)
  state, step_fn = runner.compile_stage(st, mesh, c.sharding)  # as the run will
  data_iter = data_pipeline.train_iterator(
    st.train_split,
    global_batch_size=g.batch_size,
    seed=c.seed,
    process_index=jax.process_index(),
    process_count=jax.process_count(),
    num_threads=c.data.num_threads,
    prefetch=c.data.prefetch,
  )
  feed = lambda: sharding.global_batch({k: v for k, v in next(data_iter).items() if k in st.feed}, mesh)  # noqa: E731
  batch = feed()
  setup_s = time.perf_counter() - t0
  times = []
  for i in range(1 + steps):
    t = time.perf_counter()
    state, metrics = step_fn(state, batch if i == 0 else feed())
    jax.block_until_ready((state, metrics))
    times.append(time.perf_counter() - t)
  data_iter.close()
  step.workdir.parent.mkdir(parents=True, exist_ok=True)
  save_s = _save_seconds(state, step.workdir.parent)
  eval_bs, eval_batches, every_epochs = _evaluation(step, st)
  eval_compile_s = eval_batch_s = 0.0
  evaluations = 0
  if eval_batches and start < total:
    fn, params = encoder_fn(step, mesh)
    eval_compile_s, eval_batch_s = _time_batches(fn, params, st.train_split, eval_bs, mesh, min(steps, 3))
    evaluations = _multiples(spe * every_epochs, start, total)
    if step.kind != "tune" and total % (spe * every_epochs):
      evaluations += 1  # the final evaluation (AccuracyHook.finish)
  interval = runner.checkpoint_interval(g, spe)
  keep = {e * spe for e in g.keep_epochs if start < e * spe <= total and (e * spe) % interval}
  saves = _multiples(interval, start, total) + (total % interval != 0) + len(keep)
  saves += evaluations if step.kind == "tune" else 0  # the monitor's best state (at most every evaluation)
  restores = int(bool(step.inputs or start)) + int(step.kind == "tune")  # init or resume; the selected state
  step_s = statistics.mean(times[1:])
  remaining = total - start
  estimate = (
    setup_s
    + (times[0] if remaining else 0.0)
    + remaining * step_s
    + evaluations * eval_batches * eval_batch_s
    + (eval_compile_s if evaluations else 0.0)
    + (saves + restores) * save_s
  ) * (remaining > 0)
  return {
    "steps": total,
    "steps_per_epoch": spe,
    "resume_from_step": start,
    "measured": {
      "setup_s": setup_s,
      "compile_s": times[0],
      "step_s": step_s,
      "warmup_steps": steps,
      "eval_compile_s": eval_compile_s,
      "eval_batch_s": eval_batch_s,
      "save_s": save_s,
    },
    "evaluations": evaluations,
    "eval_batches_each": eval_batches,
    "checkpoint_saves": saves,
    "estimate_s": estimate,
  }


def encoder_fn(step: Step, mesh: jax.sharding.Mesh):
  """(jitted pooled-feature fn, a random encoder's parameters, replicated): the frozen protocols' features."""
  c = step.config
  return features.make_embed_fn(factory.encoder(c), c.data, mesh), probe.random_encoder(c, mesh)


def frozen_splits(step: Step) -> dict[str, npz.SkeletonSplit]:
  """The splits a step extracts: a kNN step the seen classes, a few-shot step its novel classes only, a probe all."""
  data = step.config.data
  if step.kind == "probe":
    return {s: sources.open_split(data, s) for s in npz.SPLITS}
  if step.kind != "fewshot":
    return {s: sources.open_seen_split(data, s) for s in npz.SPLITS}
  classes = np.asarray(fewshot_classes(step))
  opened = {s: sources.open_split(data, s) for s in npz.SPLITS}
  return {s: npz.take(split, np.flatnonzero(np.isin(split.labels, classes))) for s, split in opened.items()}


def frozen(step: Step, mesh: jax.sharding.Mesh, steps: int, batch_size: int) -> dict[str, Any]:
  """Measured warm-up and estimate of a step that extracts frozen features of its encoders (kNN, few-shot, the
  cached linear probe): batches of every split, for every encoder."""
  t0 = time.perf_counter()
  fn, params = encoder_fn(step, mesh)
  splits = frozen_splits(step)
  setup_s = time.perf_counter() - t0
  compile_s, batch_s = _time_batches(fn, params, splits["train"], batch_size, mesh, min(steps, 3))
  batches = sum(_batches(len(s), batch_size) for s in splits.values()) * max(len(step.inputs), 1)
  return {
    "clips": {name: len(s) for name, s in splits.items()},
    "encoders": len(step.inputs),
    "measured": {"setup_s": setup_s, "compile_s": compile_s, "eval_batch_s": batch_s},
    "eval_batches_total": batches,
    "estimate_s": setup_s + compile_s + batches * batch_s,
  }
