"""Which frozen-feature protocols a pair of splits can run, from their labels alone (known before any training).

A protocol whose minimum sizes a valid but small split does not meet is skipped with the reason, never a crash
after training: kNN-k needs k training clips, logistic two training classes, silhouette 2 <= classes <= clips - 1
on the test split, k-means (NMI, ARI) two test classes, few-shot bank and queries of the held-out classes,
one-shot an exemplar of every held-out class and a query left over, t-SNE two test clips.
"""

from collections.abc import Sequence

import numpy as np

from stars_jax.evaluate.knn import KNN_KS


def skipped_protocols(
  train_y: np.ndarray, test_y: np.ndarray, held_out: Sequence[int] = (), ks: Sequence[int] = KNN_KS
) -> dict[str, str]:
  """{protocol: why it cannot run} for `probe.frozen_protocols` on these labels ((N_train,), (N_test,) ints);
  the standard protocols see the classes outside `held_out`, few-shot and one-shot the held-out ones."""
  train_y, test_y, held_out = np.asarray(train_y), np.asarray(test_y), tuple(held_out)
  seen_tr, seen_te = train_y[~np.isin(train_y, held_out)], test_y[~np.isin(test_y, held_out)]
  train_classes, test_classes = len(np.unique(seen_tr)), len(np.unique(seen_te))
  skips = {f"knn{k}": f"k={k} exceeds the {len(seen_tr)} training clips" for k in ks if k > len(seen_tr)}
  if train_classes < 2:
    skips["logistic"] = f"needs two classes in the training split; it has {train_classes}"
  if not 2 <= test_classes <= len(seen_te) - 1:
    skips["silhouette"] = (
      f"needs 2 <= classes <= clips - 1 on the test split; it has {test_classes} classes in {len(seen_te)} clips"
    )
  if test_classes < 2:
    skips["nmi"] = skips["ari"] = f"k-means against the labels needs two test classes; it has {test_classes}"
  if len(seen_te) < 2:
    skips["tsne"] = f"needs two test clips; it has {len(seen_te)}"
  if held_out:
    bank, queries = np.isin(train_y, held_out).sum(), np.isin(test_y, held_out).sum()
    if not bank or not queries:
      skips["fewshot"] = f"the held-out classes {held_out} have {bank} training and {queries} test clips"
    counts = {c: int((test_y == c).sum()) for c in held_out}
    missing = [c for c, n in counts.items() if not n]
    if missing:
      skips["oneshot"] = f"held-out classes {missing[:10]} have no test clip to draw an exemplar from"
    elif sum(counts.values()) <= len(held_out):
      skips["oneshot"] = "each held-out class has one test clip: no query is left after the exemplars"
  return skips
