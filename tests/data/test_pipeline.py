"""grain pipeline: epoch coverage, determinism, host sharding, resumable state, padded eval."""

import itertools
import json

import numpy as np
import pytest
from recipe_files import common

from stars_jax.data import npz, pipeline, sources

N, T, B = 37, 300, 8  # 4 full batches per epoch, 5 left over


@pytest.fixture(scope="module")
def split(tmp_path_factory) -> npz.SkeletonSplit:
  path = tmp_path_factory.mktemp("pipeline") / "skel.npz"
  x = np.random.default_rng(0).standard_normal((N, T, 150)).astype(np.float32)
  x[:, :, 0] = np.arange(N)[:, None]  # the sample index is encoded in the data
  y = np.eye(6)[np.arange(N) % 6]
  np.savez(path, x_train=x, y_train=y)
  return npz.open_split(path, "train")


def _take(it, n: int) -> list[dict[str, np.ndarray]]:
  return list(itertools.islice(it, n))


def _check_batch(batch: dict[str, np.ndarray], size: int) -> None:
  assert batch["x"].shape == (size, T, 150) and batch["x"].dtype == np.float32
  assert batch["label"].dtype == np.int32 and batch["index"].dtype == np.int32
  real = batch.get("valid", np.ones(size, bool))
  np.testing.assert_array_equal(batch["x"][real, 0, 0], batch["index"][real])
  np.testing.assert_array_equal(batch["label"][real], batch["index"][real] % 6)


def _assert_same(a: list[dict], b: list[dict]) -> None:
  assert len(a) == len(b)
  for x, y in zip(a, b):
    assert x.keys() == y.keys()
    for k in x:
      np.testing.assert_array_equal(x[k], y[k])


def test_steps_per_epoch():
  assert pipeline.steps_per_epoch(N, B) == 4
  assert pipeline.steps_per_epoch(40, 8) == 5
  assert pipeline.steps_per_epoch(7, 8) == 0
  with pytest.raises(ValueError):
    pipeline.steps_per_epoch(7, 0)


def test_train_epochs_cover_each_sample_once_and_reshuffle(split):
  it = pipeline.train_iterator(split, global_batch_size=B, seed=3)
  batches = _take(it, 12)  # three epochs
  for b in batches:
    _check_batch(b, B)
  epochs = [np.concatenate([b["index"] for b in batches[e * 4 : (e + 1) * 4]]) for e in range(3)]
  for order in epochs:
    assert len(order) == 32 and len(np.unique(order)) == 32  # drop_last: 5 samples skipped
    assert order.min() >= 0 and order.max() < N
  assert not np.array_equal(epochs[0], epochs[1]) and not np.array_equal(epochs[1], epochs[2])
  assert it.step == 12
  it.close()


def test_train_seed_determinism(split):
  a = _take(pipeline.train_iterator(split, global_batch_size=B, seed=5), 6)
  b = _take(pipeline.train_iterator(split, global_batch_size=B, seed=5, num_threads=4, prefetch=1), 6)
  c = _take(pipeline.train_iterator(split, global_batch_size=B, seed=6), 6)
  _assert_same(a, b)
  assert not all(np.array_equal(x["index"], y["index"]) for x, y in zip(a, c))


def test_two_hosts_concatenate_to_one(split):
  one = _take(pipeline.train_iterator(split, global_batch_size=B, seed=1), 6)
  hosts = [
    _take(pipeline.train_iterator(split, global_batch_size=B, seed=1, process_index=p, process_count=2), 6)
    for p in range(2)
  ]
  for step, batch in enumerate(one):
    for k in batch:
      np.testing.assert_array_equal(np.concatenate([hosts[0][step][k], hosts[1][step][k]]), batch[k])
    assert hosts[0][step]["x"].shape[0] == B // 2


def test_bad_host_layout(split):
  with pytest.raises(ValueError, match="multiple of process_count 3"):
    pipeline.train_iterator(split, global_batch_size=B, seed=0, process_count=3)
  with pytest.raises(ValueError, match="process_index"):
    pipeline.train_iterator(split, global_batch_size=B, seed=0, process_index=2, process_count=2)
  with pytest.raises(ValueError, match="fewer than one global batch"):
    pipeline.train_iterator(split, global_batch_size=40, seed=0)


@pytest.mark.parametrize("resume_at", [2, 3, 4, 7])  # mid-epoch, before/at/after an epoch boundary
def test_state_round_trip_resumes_bit_identically(split, resume_at):
  kwargs = dict(global_batch_size=B, seed=11, process_index=1, process_count=2)
  reference = _take(pipeline.train_iterator(split, **kwargs), resume_at + 5)
  it = pipeline.train_iterator(split, **kwargs)
  _take(it, resume_at)
  state = json.loads(json.dumps(it.get_state()))
  assert state["step"] == resume_at
  after = _take(it, 5)
  _assert_same(after, reference[resume_at:])

  fresh = pipeline.train_iterator(split, **kwargs)
  fresh.set_state(state)
  _assert_same(_take(fresh, 5), reference[resume_at:])
  it.set_state(state)  # rewinding a used iterator works too
  _assert_same(_take(it, 5), reference[resume_at:])
  it.close()
  fresh.close()


def test_set_state_rejects_other_stream(split):
  it = pipeline.train_iterator(split, global_batch_size=B, seed=11)
  state = it.get_state()
  other = pipeline.train_iterator(split, global_batch_size=B, seed=12)
  with pytest.raises(ValueError, match="seed"):
    other.set_state(state)
  with pytest.raises(ValueError, match="missing"):
    other.set_state({"step": 3})


@pytest.mark.parametrize("process_count", [1, 2, 4])
def test_eval_covers_all_samples_once_with_padding(split, process_count):
  hosts = [
    list(pipeline.eval_batches(split, global_batch_size=B, process_index=p, process_count=process_count))
    for p in range(process_count)
  ]
  assert all(len(h) == 5 for h in hosts)  # ceil(37 / 8)
  merged = [{k: np.concatenate([h[step][k] for h in hosts]) for k in hosts[0][step]} for step in range(5)]
  for batch in merged:
    _check_batch(batch, B)
    assert batch["valid"].dtype == bool
  valid = np.concatenate([b["valid"] for b in merged])
  index = np.concatenate([b["index"] for b in merged])
  np.testing.assert_array_equal(valid, np.arange(40) < N)
  np.testing.assert_array_equal(index[valid], np.arange(N))
  assert (index[~valid] == -1).all()
  assert (merged[-1]["x"][~merged[-1]["valid"]] == 0).all()


def test_a_non_finite_sample_is_reported_with_its_file_and_row(tmp_path):
  """One NaN in sample 13 of the training split: reading it names the file, the split and the row in the file,
  also through a subset view (the row is the file's, not the view's)."""
  path = tmp_path / "nan.npz"
  x = np.zeros((20, 300, 150), np.float32)
  x[13, 5, 7] = np.nan
  np.savez(path, x_train=x, y_train=np.eye(2)[np.arange(20) % 2], x_test=x[:4], y_test=np.eye(2)[[0, 1, 0, 1]])
  split = npz.take(npz.open_split(path, "train"), np.arange(10, 20))  # row 13 of the file is item 3 here
  it = pipeline.train_iterator(split, global_batch_size=10, seed=0, num_threads=1)
  try:
    with pytest.raises(npz.NpzFormatError, match=r"nan.npz: sample 13 of x_train holds non-finite values"):
      next(it)
  finally:
    it.close()


def test_an_empty_split_is_refused_naming_the_file(tmp_path):
  path = tmp_path / "empty_test.npz"
  x = np.zeros((4, 300, 150), np.float32)
  np.savez(path, x_train=x, y_train=np.eye(2)[[0, 1, 0, 1]], x_test=x[:0], y_test=np.zeros((0, 2)))
  data = common.data(str(path))
  assert len(sources.open_seen_split(data, "train")) == 4
  with pytest.raises(ValueError, match=r"empty_test.npz: the test split has no samples"):
    sources.open_seen_split(data, "test")
  data.held_out_classes = (0, 1)
  with pytest.raises(ValueError, match=r"the train split has no samples outside data.held_out_classes"):
    sources.open_seen_split(data, "train")
