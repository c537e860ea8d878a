"""Cluster metrics on separated and random data; the figures are valid PNG files."""

import numpy as np
import pytest
from threadpoolctl import threadpool_limits

from stars_jax.evaluate.clusters import cluster_metrics, plot_confusion, plot_tsne

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
  from stars_jax.evaluate import clusters

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
