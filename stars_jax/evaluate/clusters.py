"""Cluster quality of frozen features (silhouette, k-means NMI/ARI) and the t-SNE / confusion-matrix figures."""

from collections.abc import Collection, Sequence

import matplotlib
import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from sklearn.cluster import KMeans
from sklearn.manifold import TSNE
from sklearn.metrics import adjusted_rand_score, confusion_matrix, normalized_mutual_info_score, silhouette_score
from sklearn.preprocessing import normalize

SILHOUETTE_MAX_SAMPLES = 10_000  # silhouette is O(N^2): above this, a seeded uniform subsample of this size
KMEANS_N_INIT = 4  # k-means restarts (the best inertia is kept)
TSNE_MAX_POINTS = 3_000  # t-SNE is slow and unreadable beyond a few thousand points
CLASS_COLOURS = matplotlib.colormaps["tab20"]  # qualitative: 20 distinct colours
CLASS_MARKERS = ("o", "s", "^", "D", "v", "P")  # one per 20 classes: 120 distinct (colour, marker) pairs
LEGEND_ROWS = 40  # t-SNE legend entries per column


def _subsample(n: int, max_points: int, seed: int) -> np.ndarray:
  """Sorted indices of a seeded uniform subsample of size min(n, max_points)."""
  if n <= max_points:
    return np.arange(n)
  return np.sort(np.random.default_rng(seed).choice(n, max_points, replace=False))


def cluster_metrics(
  features: np.ndarray, labels: np.ndarray, seed: int = 0, skip: Collection[str] = ()
) -> dict[str, float]:
  """{'silhouette', 'nmi', 'ari'} of L2-normalised features, as fractions (not percent), less those in `skip`
  (`protocols.skipped_protocols`: silhouette needs 2 <= classes <= N - 1, k-means two classes).

  silhouette in [-1, 1]: of the true labels, cosine distance, on at most SILHOUETTE_MAX_SAMPLES samples (a
  seeded subsample). nmi in [0, 1] and ari (<= 1, about 0 for chance, can be slightly negative): k-means with k =
  number of classes present (seeded, KMEANS_N_INIT restarts) against the true labels.
  """
  x = normalize(np.asarray(features, np.float32))  # (N, D)
  labels = np.asarray(labels)
  out = {}
  if "silhouette" not in skip:
    keep = _subsample(len(x), SILHOUETTE_MAX_SAMPLES, seed)
    out["silhouette"] = float(silhouette_score(x[keep], labels[keep], metric="cosine"))
  if "nmi" not in skip or "ari" not in skip:
    kmeans = KMeans(n_clusters=len(np.unique(labels)), n_init=KMEANS_N_INIT, random_state=seed)
    clusters = kmeans.fit_predict(x)  # (N,)
    agreement = {"nmi": normalized_mutual_info_score(labels, clusters), "ari": adjusted_rand_score(labels, clusters)}
    out.update({k: float(v) for k, v in agreement.items() if k not in skip})
  return out


def save_png(fig: Figure, path) -> None:
  """Writes `fig` as a PNG (120 dpi), cropped to its contents."""
  FigureCanvasAgg(fig)
  fig.savefig(path, format="png", dpi=120, bbox_inches="tight")  # "tight": keeps a legend outside the axes


def _class_name(label: int, class_names: Sequence[str] | None) -> str:
  return str(label) if class_names is None else class_names[label]


def tsne_figure(xy: np.ndarray, labels: np.ndarray, title: str, class_names: Sequence[str] | None = None) -> Figure:
  """Scatter of a 2-D embedding xy (n, 2), one colour / marker per label (n,), with a legend outside the axes:
  one entry per label present, named `class_names[label]` (the label itself if None)."""
  fig = Figure(figsize=(7, 7))
  ax = fig.add_subplot()
  present = np.unique(labels)
  for label in present:
    pts = xy[labels == label]  # (n_label, 2)
    ax.scatter(
      pts[:, 0],
      pts[:, 1],
      s=6,
      color=CLASS_COLOURS(label % CLASS_COLOURS.N),
      marker=CLASS_MARKERS[label // CLASS_COLOURS.N % len(CLASS_MARKERS)],
      label=_class_name(int(label), class_names),
    )
  ax.legend(
    loc="upper left",
    bbox_to_anchor=(1.01, 1.0),
    fontsize="x-small",
    markerscale=2,
    ncols=-(-len(present) // LEGEND_ROWS),
    frameon=False,
  )
  ax.set_title(title)
  ax.set_xticks([])
  ax.set_yticks([])
  return fig


def plot_tsne(
  features: np.ndarray,
  labels: np.ndarray,
  path,
  title: str,
  seed: int = 0,
  class_names: Sequence[str] | None = None,
) -> None:
  """2-D t-SNE (cosine, of at most TSNE_MAX_POINTS seeded samples) of `tsne_figure`, written as a PNG."""
  keep = _subsample(len(features), TSNE_MAX_POINTS, seed)
  x = normalize(np.asarray(features, np.float32)[keep])  # (n, D)
  y = np.asarray(labels)[keep]  # (n,)
  tsne = TSNE(n_components=2, metric="cosine", init="pca", perplexity=min(30.0, (len(x) - 1) / 3), random_state=seed)
  xy = tsne.fit_transform(x)  # (n, 2)
  save_png(tsne_figure(xy, y, title, class_names), path)


def confusion_figure(matrix: np.ndarray, title: str, class_names: Sequence[str] | None = None) -> Figure:
  """A (C, C) confusion matrix as an image; with `class_names` (C names) these are the tick labels (the figure
  grows with C to keep them legible)."""
  side = max(7.0, 3.0 + 0.15 * len(matrix))  # inches: room for C tick labels
  fig = Figure(figsize=(7, 6) if class_names is None else (side, side))
  ax = fig.add_subplot()
  image = ax.imshow(matrix, cmap="viridis", vmin=0.0, vmax=1.0)
  fig.colorbar(image, ax=ax, shrink=0.8)
  if class_names is not None:
    ticks = np.arange(len(matrix))
    ax.set_xticks(ticks, class_names, rotation=90, fontsize=7)
    ax.set_yticks(ticks, class_names, fontsize=7)
  ax.set_xlabel("predicted class")
  ax.set_ylabel("true class")
  ax.set_title(title)
  return fig


def plot_confusion(
  y_true: np.ndarray,
  y_pred: np.ndarray,
  num_classes: int,
  path,
  title: str,
  class_names: Sequence[str] | None = None,
) -> np.ndarray:
  """Row-normalised confusion matrix (rows = true class, each row sums to 1 or is empty) of `confusion_figure`,
  written as a PNG; returns it, (C, C)."""
  counts = confusion_matrix(y_true, y_pred, labels=np.arange(num_classes)).astype(np.float64)  # (C, C)
  matrix = counts / np.maximum(counts.sum(axis=1, keepdims=True), 1.0)  # (C, C)
  save_png(confusion_figure(matrix, title, class_names), path)
  return matrix
