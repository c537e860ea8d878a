"""Cluster metrics on separated and random data; the figures are valid PNG files, with class names in the t-SNE
legend and on the confusion matrix's ticks."""

import numpy as np
import pytest
from threadpoolctl import threadpool_limits

from stars_jax.evaluate import clusters
from stars_jax.evaluate.clusters import (
  cluster_metrics,
  confusion_figure,
  plot_confusion,
  plot_tsne,
  save_png,
  tsne_figure,
)

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


@pytest.fixture(autouse=True)
def _one_openmp_thread():
  """sklearn's OpenMP loops (t-SNE, k-means) spin for seconds on a busy shared CPU; one thread is fast here."""
  with threadpool_limits(1):
    yield


def _blobs(seed, n_per_class=50, num_classes=4, dim=8, spread=0.05):
  rng = np.random.default_rng(seed)
  centres = np.eye(dim)[:num_classes] * 3.0  # orthogonal directions: cosine distance 1 between classes
  labels = np.repeat(np.arange(num_classes), n_per_class)
  x = centres[labels] + spread * rng.normal(size=(len(labels), dim))
  return x.astype(np.float32), labels


def test_separated_blobs_score_one():
  x, labels = _blobs(0)
  m = cluster_metrics(x, labels)
  assert m["silhouette"] > 0.9
  assert m["nmi"] == pytest.approx(1.0)
  assert m["ari"] == pytest.approx(1.0)


def test_random_labels_score_zero():
  rng = np.random.default_rng(1)
  x = rng.normal(size=(400, 8)).astype(np.float32)
  m = cluster_metrics(x, rng.integers(0, 4, 400))
  assert abs(m["silhouette"]) < 0.05
  assert 0.0 <= m["nmi"] < 0.05
  assert abs(m["ari"]) < 0.05


def test_silhouette_subsample_is_seeded(monkeypatch):
  monkeypatch.setattr(clusters, "SILHOUETTE_MAX_SAMPLES", 60)
  x, labels = _blobs(2, spread=1.0)
  a, b = cluster_metrics(x, labels, seed=3), cluster_metrics(x, labels, seed=3)
  assert a == b
  assert cluster_metrics(x, labels, seed=4)["silhouette"] != a["silhouette"]


def _assert_png(path):
  data = path.read_bytes()
  assert data[:8] == PNG_MAGIC
  assert len(data) > 5_000


def test_tsne_png(tmp_path):
  x, labels = _blobs(3, n_per_class=40)
  plot_tsne(x, labels, tmp_path / "tsne.png", "blobs")
  _assert_png(tmp_path / "tsne.png")


def test_confusion_png_and_rows(tmp_path):
  y_true = np.array([0, 0, 0, 0, 1, 1, 2])
  y_pred = np.array([0, 0, 1, 2, 1, 1, 0])
  m = plot_confusion(y_true, y_pred, 4, tmp_path / "confusion.png", "toy")
  np.testing.assert_allclose(m, [[0.5, 0.25, 0.25, 0], [0, 1, 0, 0], [1, 0, 0, 0], [0, 0, 0, 0]])
  _assert_png(tmp_path / "confusion.png")


NAMES = ("wave", "kick", "bow", "handshake", "jump", "hug")


def test_tsne_legend_names_the_classes_present_by_label():
  """One legend entry per class present, named by its label (a held-out class keeps its index)."""
  labels = np.array([5, 0, 2, 2, 0, 5, 5])
  xy = np.random.default_rng(0).normal(size=(len(labels), 2))
  fig = tsne_figure(xy, labels, "toy", NAMES)
  (ax,) = fig.axes
  assert [t.get_text() for t in ax.get_legend().get_texts()] == ["wave", "bow", "hug"]
  hug = next(c for c in ax.collections if c.get_label() == "hug")
  np.testing.assert_array_equal(hug.get_offsets(), xy[labels == 5])
  unnamed = tsne_figure(xy, labels, "toy").axes[0]
  assert [t.get_text() for t in unnamed.get_legend().get_texts()] == ["0", "2", "5"]


def test_tsne_styles_are_distinct_for_many_classes():
  labels = np.arange(120)
  fig = tsne_figure(np.zeros((120, 2)), labels, "many", [f"action {i}" for i in labels])
  styles = {(tuple(c.get_facecolor()[0]), c.get_paths()[0].vertices.tobytes()) for c in fig.axes[0].collections}
  assert len(styles) == 120


def test_confusion_tick_labels_are_the_names():
  fig = confusion_figure(np.eye(len(NAMES)), "toy", NAMES)
  ax = fig.axes[0]
  assert [t.get_text() for t in ax.get_xticklabels()] == list(NAMES)
  assert [t.get_text() for t in ax.get_yticklabels()] == list(NAMES)
  assert all(t.get_rotation() == 90 for t in ax.get_xticklabels())


def test_plots_pass_the_names_on(tmp_path, monkeypatch):
  saved = []
  monkeypatch.setattr(clusters, "save_png", lambda fig, path: saved.append(fig) or save_png(fig, path))
  x, labels = _blobs(4, n_per_class=20)
  plot_tsne(x, labels, tmp_path / "tsne.png", "blobs", class_names=NAMES)
  plot_confusion(labels, labels, len(NAMES), tmp_path / "confusion.png", "blobs", class_names=NAMES)
  tsne_ax, confusion_ax = saved[0].axes[0], saved[1].axes[0]
  assert [t.get_text() for t in tsne_ax.get_legend().get_texts()] == list(NAMES[:4])
  assert [t.get_text() for t in confusion_ax.get_xticklabels()] == list(NAMES)
  _assert_png(tmp_path / "tsne.png")
  _assert_png(tmp_path / "confusion.png")
