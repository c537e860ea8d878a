"""Training-curve figures: the loss and learning-rate lines, the kNN monitor per k with the selected step, and
the PNG files (empty histories skipped)."""

import numpy as np
from matplotlib.image import imread

from stars_jax.evaluate.curves import loss_figure, monitor_figure, plot_training_curves

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
# Rows as the runner logs them (means over each logging window) and the STARS monitor's state.
LOSS_HISTORY = [
  {"step": 2, "loss": 1.0, "lr": 1e-4, "grad_norm": 3.0, "clips_per_s": 50.0},
  {"step": 4, "loss": 0.6, "lr": 2e-4, "grad_norm": 2.0, "clips_per_s": 55.0},
  {"step": 6, "loss": 0.5, "lr": 5e-5, "grad_norm": 1.5, "clips_per_s": 52.0},
]
MONITOR = {
  "history": [
    {"step": 3, "top1": 40.0, "k10": 40.0, "k20": 35.0, "k40": 30.0},
    {"step": 6, "top1": 55.0, "k10": 50.0, "k20": 55.0, "k40": 45.0},
    {"step": 9, "top1": 52.0, "k10": 52.0, "k20": 51.0, "k40": 49.0},
  ],
  "best": {"step": 6, "top1": 55.0, "split": "val"},
}


def _legend_texts(ax) -> list[str]:
  return [t.get_text() for t in ax.get_legend().get_texts()]


def test_loss_figure_has_loss_and_lr_lines():
  fig = loss_figure(LOSS_HISTORY, "stage1: training loss")
  loss_ax, lr_ax = fig.axes  # the loss axis and its twin
  (loss_line,), (lr_line,) = loss_ax.get_lines(), lr_ax.get_lines()
  np.testing.assert_array_equal(loss_line.get_xdata(), [2, 4, 6])
  np.testing.assert_array_equal(loss_line.get_ydata(), [1.0, 0.6, 0.5])
  np.testing.assert_array_equal(lr_line.get_ydata(), [1e-4, 2e-4, 5e-5])
  assert _legend_texts(loss_ax) == ["loss", "learning rate"]
  assert loss_ax.get_title() == "stage1: training loss"


def test_monitor_figure_has_one_line_per_k_and_the_selected_step():
  fig = monitor_figure(MONITOR, "stars: kNN monitor")
  (ax,) = fig.axes
  assert _legend_texts(ax) == ["k = 10", "k = 20", "k = 40", "selected: step 6 (55.0 %)"]
  lines = {line.get_label(): line for line in ax.get_lines()}
  np.testing.assert_array_equal(lines["k = 20"].get_xdata(), [3, 6, 9])
  np.testing.assert_array_equal(lines["k = 20"].get_ydata(), [35.0, 55.0, 51.0])
  selected = lines["selected: step 6 (55.0 %)"]
  assert (list(selected.get_xdata()), list(selected.get_ydata())) == ([6], [55.0])
  assert "val split" in ax.get_ylabel()


def test_empty_history_has_no_figure():
  assert loss_figure([], "t") is None
  assert monitor_figure({"history": [], "best": {}}, "t") is None


def _assert_png(path):
  assert path.read_bytes()[:8] == PNG_MAGIC
  height, width, channels = imread(path).shape
  assert height > 100 and width > 100 and channels in (3, 4)


def test_plot_training_curves_writes_pngs(tmp_path):
  summaries = {"stage1": {"loss_history": LOSS_HISTORY}, "stars": {"loss_history": LOSS_HISTORY, "monitor": MONITOR}}
  written = plot_training_curves(summaries, tmp_path / "plots")
  assert [p.name for p in written] == ["loss_stage1.png", "loss_stars.png", "monitor_stars.png"]
  assert sorted(p.name for p in (tmp_path / "plots").iterdir()) == sorted(p.name for p in written)
  for path in written:
    _assert_png(path)


def test_plot_training_curves_skips_empty_histories(tmp_path):
  summaries = {
    "stage1": {"loss_history": []},
    "stars": {"loss_history": LOSS_HISTORY, "monitor": {"history": [], "best": {}}},
  }
  written = plot_training_curves(summaries, tmp_path)
  assert written == [tmp_path / "loss_stars.png"]
  assert [p.name for p in tmp_path.iterdir()] == ["loss_stars.png"]
