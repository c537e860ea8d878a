"""Training curves of a job's stages as PNGs: the loss and learning rate per logged step (the runner's
`loss_history`), and the STARS kNN monitor's top-1 per k with the selected step marked."""

import pathlib
from collections.abc import Mapping, Sequence
from typing import Any

from matplotlib.figure import Figure

from stars_jax.evaluate.clusters import save_png


def loss_figure(history: Sequence[Mapping[str, float]], title: str) -> Figure | None:
  """Loss vs step of `loss_history` rows ({'step', 'loss', 'lr', ...}, each a mean over its logging window), the
  learning rate on a twin axis; None if the history is empty."""
  if not history:
    return None
  steps = [row["step"] for row in history]
  fig = Figure(figsize=(7, 4))
  ax = fig.add_subplot()
  ax.plot(steps, [row["loss"] for row in history], color="tab:blue", label="loss")
  lr_ax = ax.twinx()
  lr_ax.plot(steps, [row["lr"] for row in history], color="tab:orange", linestyle="--", label="learning rate")
  lr_ax.ticklabel_format(axis="y", style="sci", scilimits=(0, 0))
  lines = ax.get_lines() + lr_ax.get_lines()
  ax.legend(lines, [line.get_label() for line in lines], loc="upper right", fontsize="small")
  ax.set_xlabel("step")
  ax.set_ylabel("loss")
  lr_ax.set_ylabel("learning rate")
  ax.set_title(title)
  return fig


def monitor_figure(monitor: Mapping[str, Any], title: str) -> Figure | None:
  """The kNN monitor's weighted-kNN top-1 (percent) vs step, one line per k (history rows {'step', 'top1',
  'k<k>': value}), the selected (best) step marked; None if the history is empty."""
  history, best = monitor["history"], monitor["best"]
  if not history:
    return None
  steps = [row["step"] for row in history]
  fig = Figure(figsize=(7, 4))
  ax = fig.add_subplot()
  for key in (k for k in history[0] if k not in ("step", "top1")):
    ax.plot(steps, [row[key] for row in history], marker="o", markersize=3, label=f"k = {key[1:]}")
  ax.axvline(best["step"], color="grey", linestyle=":")
  ax.plot(
    [best["step"]],
    [best["top1"]],
    linestyle="none",
    marker="*",
    markersize=12,
    color="black",
    label=f"selected: step {best['step']} ({best['top1']:.1f} %)",
  )
  ax.legend(loc="lower right", fontsize="small")
  ax.set_xlabel("step")
  ax.set_ylabel(f"weighted kNN top-1 (%), {best['split']} split")
  ax.set_title(title)
  return fig


def plot_training_curves(summaries: Mapping[str, Mapping[str, Any]], plot_dir: pathlib.Path) -> list[pathlib.Path]:
  """Writes loss_<name>.png for every named stage summary (a runner's summary) and monitor_<name>.png for those
  with a kNN monitor, skipping empty histories; returns the paths written."""
  figures = {}
  for name, summary in summaries.items():
    figures[f"loss_{name}.png"] = loss_figure(summary["loss_history"], f"{name}: training loss")
    if "monitor" in summary:
      figures[f"monitor_{name}.png"] = monitor_figure(summary["monitor"], f"{name}: kNN monitor")
  plot_dir.mkdir(parents=True, exist_ok=True)
  written = []
  for filename, fig in figures.items():
    if fig is not None:
      save_png(fig, plot_dir / filename)
      written.append(plot_dir / filename)
  return written
