"""Tests of the synthetic NTU stand-in: file layout, determinism, skeleton sanity, splits, caching, difficulty."""

import dataclasses
import json
import zipfile

import numpy as np
import pytest
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from stars_jax.data import synthetic
from stars_jax.data import synthetic_motions as motions
from stars_jax.data import synthetic_skeleton as skeleton

# 8 classes include two interactions (handshake, push) and the kick/step and wave/raise-arm pairs.
SMALL = synthetic.SyntheticSpec(num_classes=8, num_subjects=4, num_cameras=2, num_repetitions=1)
TINY = synthetic.SyntheticSpec(num_classes=3, num_subjects=3, num_cameras=2, num_repetitions=1, max_frames=64)
KEYS = ("x_train", "y_train", "x_test", "y_test")


@pytest.fixture(scope="module")
def small():
  return synthetic.generate(SMALL)


@pytest.fixture(scope="module")
def small_files(tmp_path_factory):
  return synthetic.write_splits(SMALL, tmp_path_factory.mktemp("synthetic"))


def _persons(x: np.ndarray) -> np.ndarray:
  return x.reshape(x.shape[:-1] + (2, 25, 3))  # (..., T, M, V, C): index = m*75 + v*3 + c


def test_npz_layout_dtypes_and_uncompressed(small_files, small):
  for name, path in small_files.items():
    assert path.name == {"xsub": "Synthetic_XSub.npz", "xview": "Synthetic_XView.npz"}[name]
    with zipfile.ZipFile(path) as zf:
      assert sorted(i.filename for i in zf.infolist()) == sorted(k + ".npy" for k in KEYS)
      assert all(i.compress_type == zipfile.ZIP_STORED for i in zf.infolist())
    with np.load(path) as f:
      assert sorted(f.files) == sorted(KEYS)
      for split in ("train", "test"):
        x, y = f["x_" + split], f["y_" + split]
        assert x.dtype == np.float32 and x.shape[1:] == (300, 150)
        assert y.dtype == np.float64 and y.shape == (len(x), SMALL.num_classes)
        assert set(np.unique(y)) == {0.0, 1.0} and np.all(y.sum(axis=1) == 1)
      assert len(f["x_train"]) + len(f["x_test"]) == len(small["x"])


def test_generate_is_deterministic_and_seeded(small):
  again = synthetic.generate(SMALL)
  assert set(again) == set(small) >= {"x", "label", "subject", "camera", "repetition"}
  for key in small:
    assert again[key].tobytes() == small[key].tobytes(), key
  other = synthetic.generate(dataclasses.replace(SMALL, seed=1))
  assert not np.array_equal(other["x"], small["x"])


def test_samples_do_not_depend_on_what_else_is_generated(small):
  fewer = synthetic.generate(dataclasses.replace(SMALL, num_classes=5, num_subjects=2))
  keep = (small["label"] < 5) & (small["subject"] <= 2)
  np.testing.assert_array_equal(fewer["x"], small["x"][keep])


def test_chosen_actions_keep_their_samples(small):
  """An action list picks ACTIONS by name, in label order; each action's samples are those it has anywhere."""
  names = tuple(motions.ACTIONS[i].name for i in (6, 2, 0))  # label 0 = ACTIONS[6], label 1 = ACTIONS[2]
  picked = synthetic.generate(dataclasses.replace(SMALL, num_classes=2, actions=names))  # the first two
  assert set(picked["label"]) == {0, 1}
  for label, index in enumerate((6, 2)):
    np.testing.assert_array_equal(picked["x"][picked["label"] == label], small["x"][small["label"] == index])


def test_unknown_or_miscounted_actions_rejected():
  with pytest.raises(ValueError, match="'moonwalk'"):
    synthetic.generate(dataclasses.replace(TINY, num_classes=2, actions=("wave", "moonwalk")))
  with pytest.raises(ValueError, match="num_classes=3"):
    synthetic.generate(dataclasses.replace(TINY, actions=("wave", "bow")))  # fewer names than classes
  with pytest.raises(ValueError, match="distinct"):
    synthetic.generate(dataclasses.replace(TINY, actions=("wave", "bow", "wave")))


def test_ntu_sample_order(small):
  ids = np.stack([small[k] for k in ("camera", "subject", "repetition", "label")], axis=1)
  assert np.all(np.diff(ids[:, 0]) >= 0)
  assert [tuple(r) for r in ids] == sorted(tuple(r) for r in ids)


def test_zero_padding_and_variable_lengths(small):
  x, lengths = small["x"], small["length"]
  assert lengths.min() >= 40 and lengths.max() <= 300 and len(np.unique(lengths)) > 20
  for sample, length in zip(x, lengths):
    assert not sample[length:].any()
    assert np.all(np.abs(sample[:length, :75]).sum(axis=1) > 0)  # actor 1 present in every valid frame


def test_second_person_only_in_interactions(small):
  two_person = np.array([a.two_person for a in motions.ACTIONS[: SMALL.num_classes]])
  assert two_person.sum() >= 2
  for sample, length, label in zip(small["x"], small["length"], small["label"]):
    second = sample[:length, 75:]
    if two_person[label]:
      assert np.all(np.abs(second).sum(axis=1) > 0)
    else:
      assert not second.any()


def test_centred_on_actor1_spine_middle_at_first_frame(small):
  np.testing.assert_array_equal(small["x"][:, 0, 3:6], 0.0)
  first = _persons(small["x"][:, 0])  # (N, M, V, C)
  # Layout check: the head is ~0.6 m above the spine base in every first frame (camera tilt is small).
  height = first[:, 0, skeleton.HEAD, 1] - first[:, 0, skeleton.SPINE_BASE, 1]
  assert np.all((height > 0.3) & (height < 0.9))


def test_bone_lengths_constant_within_a_sample(small):
  for sample, length, label in zip(small["x"], small["length"], small["label"]):
    joints = _persons(sample[:length])  # (T, M, V, C)
    for m in range(1 + motions.ACTIONS[label].two_person):
      child, parent = np.array(skeleton.BONES).T
      bones = np.linalg.norm(joints[:, m, child] - joints[:, m, parent], axis=-1)  # (T, bones)
      median = np.median(bones, axis=0)
      assert np.all(median > 0.02)
      mad = np.median(np.abs(bones - median), axis=0)
      assert np.all(mad < 0.03) and np.median(mad) < 0.015, (label, mad)  # sensor noise: 1 cm, 2 cm at hands


def _sample_index(x_all: np.ndarray) -> dict[bytes, int]:
  return {sample.tobytes(): i for i, sample in enumerate(x_all)}


def test_splits_disjoint_complete_and_cover_every_class(small_files, small):
  index = _sample_index(small["x"])
  members = {}
  for name, path, group in (("xsub", small_files["xsub"], "subject"), ("xview", small_files["xview"], "camera")):
    with np.load(path) as f:
      rows = {s: np.array([index[x.tobytes()] for x in f["x_" + s]]) for s in ("train", "test")}
      for s in rows:
        np.testing.assert_array_equal(f["y_" + s].argmax(axis=1), small["label"][rows[s]])
        assert set(small["label"][rows[s]]) == set(range(SMALL.num_classes)), (name, s)
    assert not set(small[group][rows["train"]]) & set(small[group][rows["test"]])
    members[name] = np.sort(np.concatenate(list(rows.values())))
  np.testing.assert_array_equal(members["xsub"], np.arange(len(small["x"])))
  np.testing.assert_array_equal(members["xview"], members["xsub"])
  assert SMALL.xsub_subjects() == ((1, 2, 4), (3,)) and SMALL.xview_cameras() == ((2,), (1,))


def test_invalid_specs_rejected(tmp_path):
  with pytest.raises(ValueError):
    synthetic.generate(dataclasses.replace(TINY, num_classes=len(motions.ACTIONS) + 1))
  with pytest.raises(ValueError):
    synthetic.write_splits(dataclasses.replace(TINY, train_subjects=(1, 2, 3)), tmp_path)
  with pytest.raises(ValueError):
    synthetic.write_splits(dataclasses.replace(TINY, train_cameras=(1, 2)), tmp_path)
  assert not any(tmp_path.iterdir())


def test_ensure_synthetic_caches_and_regenerates_on_spec_change(tmp_path):
  paths = synthetic.ensure_synthetic(TINY, tmp_path)
  assert set(paths) == {"xsub", "xview"}
  mtimes = {k: p.stat().st_mtime_ns for k, p in paths.items()}
  assert json.loads((tmp_path / "synthetic_spec.json").read_text())["seed"] == TINY.seed
  assert synthetic.ensure_synthetic(TINY, tmp_path) == paths
  assert {k: p.stat().st_mtime_ns for k, p in paths.items()} == mtimes
  with np.load(paths["xsub"]) as f:
    before = f["x_train"].copy()
  changed = dataclasses.replace(TINY, seed=7)
  assert synthetic.ensure_synthetic(changed, tmp_path) == paths
  assert json.loads((tmp_path / "synthetic_spec.json").read_text())["seed"] == 7
  with np.load(paths["xsub"]) as f:
    assert not np.array_equal(f["x_train"], before)
  assert sorted(p.name for p in tmp_path.iterdir()) == [
    "Synthetic_XSub.npz",
    "Synthetic_XView.npz",
    "synthetic_spec.json",
  ]


def test_interrupted_write_leaves_no_file(tmp_path, monkeypatch):
  def crash(file, **arrays):
    file.write(b"PK\x03\x04 half an archive")
    raise KeyboardInterrupt

  monkeypatch.setattr(synthetic.np, "savez", crash)
  with pytest.raises(KeyboardInterrupt):
    synthetic.ensure_synthetic(TINY, tmp_path)
  assert not any(tmp_path.iterdir())


def _velocity_features(x: np.ndarray, lengths: np.ndarray) -> np.ndarray:
  """Crude per-sample features: mean, std and max over time of each joint's speed (N, 3 * M * V)."""
  features = []
  for sample, length in zip(x, lengths):
    speed = np.linalg.norm(np.diff(_persons(sample[:length]), axis=0), axis=-1)  # (T-1, M, V)
    features.append(np.concatenate([speed.mean(0).ravel(), speed.std(0).ravel(), speed.max(0).ravel()]))
  return np.stack(features)


def test_classes_separable_but_not_trivially():
  spec = synthetic.SyntheticSpec()  # the default 12 classes x 10 subjects x 3 cameras x 2 repetitions
  data = synthetic.generate(spec)
  train = np.isin(data["subject"], spec.xsub_subjects()[0])
  labels = data["label"]
  chance = 1 / spec.num_classes
  features = _velocity_features(data["x"], data["length"])
  probe = make_pipeline(StandardScaler(), LogisticRegression(max_iter=1000))
  probe.fit(features[train], labels[train])
  accuracy = probe.score(features[~train], labels[~train])
  # Measured 0.80-0.87 over seeds 0-2.
  assert 0.5 < accuracy < 0.97 and accuracy > 2 * chance
  # Raw coordinates resampled to 30 frames: nearest neighbour is good but imperfect (measured 0.88-0.89).
  frames = np.stack([s[np.linspace(0, n - 1, 30).round().astype(int)] for s, n in zip(data["x"], data["length"])])
  flat = frames.reshape(len(frames), -1).astype(np.float64)  # (N, 30 * 150)
  sq = (flat**2).sum(axis=1)
  distances = sq[~train, None] + sq[None, train] - 2 * flat[~train] @ flat[train].T
  nearest = labels[train][distances.argmin(axis=1)]
  assert 2 * chance < (nearest == labels[~train]).mean() < 0.97
